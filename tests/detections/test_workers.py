"""Sharded matching (detections.workers) gives the detections of one process, correlations included."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from detections import workers
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


@pytest.mark.parametrize("part", [7, 1024])
def test_parts_streamed_back_are_merged_in_stream_order(
    corpus: tuple[Any, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch, part: int
) -> None:
    compiled, events = corpus
    expected = Evaluator(compiled).evaluate(events)
    monkeypatch.setattr(workers, "PART_EVENTS", part)  # read by the workers forked below
    with ShardedEvaluator(compiled, round_robin(events), workers=2) as sharded:
        assert summary(sharded.run()) == summary(expected)


@pytest.mark.parametrize("how", ["raises", "dies"])
def test_a_worker_failing_after_some_parts_emits_nothing(
    corpus: tuple[Any, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    compiled, events = corpus
    monkeypatch.setattr(workers, "PART_EVENTS", 10)

    def reader(shard: int, shards: int) -> Iterator[tuple[int, dict[str, Any]]]:
        for position in range(shard, len(events), shards):
            if shard == 1 and position > len(events) // 2:  # parts of it were sent already
                if how == "dies":
                    os._exit(3)
                raise OSError("shard 1 unreadable half-way")
            yield position, events[position]

    with ShardedEvaluator(compiled, reader, workers=2) as sharded:
        with pytest.raises(WorkerError, match="unreadable half-way" if how == "raises" else "died"):
            sharded.run()
        stats = sharded.evaluator.stats
        assert (stats.events, stats.matches, stats.correlation_hits) == (0, 0, 0)
        assert not sharded.evaluator.correlation.keys


def test_dealt_blocks_cover_every_position_once_in_stream_order() -> None:
    from detections.workers import DEAL_BLOCK, dealt  # noqa: PLC0415

    for count, shards in [(0, 2), (5, 3), (10, 2), (1000, 2), (24_784, 2), (1001, 3)]:
        parts = [list(dealt(count, shards, shard)) for shard in range(shards)]
        assert sorted(p for part in parts for p in part) == list(range(count))
        assert all(part == sorted(part) for part in parts)
        if count >= 8 * shards * DEAL_BLOCK:  # large batches: whole blocks, sizes within one block
            assert parts[0][:DEAL_BLOCK] == list(range(DEAL_BLOCK))
            assert max(map(len, parts)) - min(map(len, parts)) <= DEAL_BLOCK
    assert list(dealt(10, 2, 1)) == [1, 3, 5, 7, 9]  # small batches: one position at a time
