"""Sharded matching (detections.workers) gives the detections of one process, correlations included."""

from __future__ import annotations

from typing import Any

import pytest

from detections.alerts import Detection
from detections.engine import Evaluator, compile_ruleset
from detections.loader import load_rules, shipped_rules_dir
from detections.workers import ShardedEvaluator, WorkerError, round_robin
from soc_core.errors import ConfigError
from tests.detections.test_differential import finish, shipped_sample_events


def summary(detections: list[Detection]) -> list[tuple[Any, ...]]:
    return [
        (d.rule.id, d.tenant, tuple(sorted(d.group.items())), tuple(d.event_ids), d.count, d.first_seen, d.last_seen)
        for d in detections
    ]


@pytest.fixture(scope="module")
def corpus() -> tuple[Any, list[dict[str, Any]]]:
    compiled = compile_ruleset(load_rules([shipped_rules_dir()]), only_enabled=False)
    events = [finish(event) for event in shipped_sample_events()]
    events.append({"event.id": "no-tenant", "event.dataset": "system.auth", "message": "x"})
    return compiled, events


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_sharded_equals_single_process(corpus: tuple[Any, list[dict[str, Any]]], workers: int) -> None:
    compiled, events = corpus
    single = Evaluator(compiled)
    expected = single.evaluate(events)
    assert single.stats.correlation_hits > 0  # the samples do exercise correlation
    with ShardedEvaluator(compiled, round_robin(events), workers=workers) as sharded:
        got = sharded.run()
        assert sharded.run() == []  # each shard was read once
        stats = sharded.evaluator.stats
    assert summary(got) == summary(expected)
    assert (stats.events, stats.skipped_events, stats.matches, stats.correlation_hits) == (
        single.stats.events,
        single.stats.skipped_events,
        single.stats.matches,
        single.stats.correlation_hits,
    )


def test_a_failing_reader_raises_worker_error(corpus: tuple[Any, list[dict[str, Any]]]) -> None:
    compiled, _ = corpus

    def broken(shard: int, shards: int) -> list[tuple[int, dict[str, Any]]]:
        raise OSError(f"shard {shard}/{shards} unreadable")

    with ShardedEvaluator(compiled, broken, workers=2) as sharded, pytest.raises(WorkerError, match="unreadable"):
        sharded.run()


def test_at_least_one_worker(corpus: tuple[Any, list[dict[str, Any]]]) -> None:
    with pytest.raises(ConfigError):
        ShardedEvaluator(corpus[0], round_robin([]), workers=0)
