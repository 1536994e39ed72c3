"""The worker pool (detections.workers) reads and matches planned batches from the store and
gives the detections of one process, correlations included; a failed worker emits nothing."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from detections import workers
from detections.alerts import Detection
from detections.evaluation import CompiledRuleSet, Evaluator, compile_ruleset
from detections.loader import load_rules, shipped_rules_dir
from detections.workers import WorkerError, WorkerPool
from soc_core.errors import ConfigError
from soc_core.store.base import Position, ReadPlan
from soc_core.store.sqlite import SqliteStore
from tests.detections.test_differential import finish, shipped_sample_events


def summary(detections: list[Detection]) -> list[tuple[Any, ...]]:
    return [
        (d.rule.id, d.tenant, tuple(sorted(d.group.items())), tuple(d.event_ids), d.count, d.first_seen, d.last_seen)
        for d in detections
    ]


def counters(evaluator: Evaluator) -> tuple[int, int, int, int]:
    stats = evaluator.stats
    return stats.events, stats.skipped_events, stats.matches, stats.correlation_hits


@pytest.fixture(scope="module")
def compiled() -> CompiledRuleSet:
    return compile_ruleset(load_rules([shipped_rules_dir()]), only_enabled=False)


@pytest.fixture
def planned(tmp_path: Path) -> tuple[SqliteStore, ReadPlan, list[dict[str, Any]]]:
    """The shipped samples (and an event without tenant) stored, and one plan over all of them."""
    events = [finish(event) for event in shipped_sample_events()]
    store = SqliteStore(tmp_path / "events.db")
    store.setup()
    store.add_events(events)
    with store._tx() as conn:  # an event without tenant: validate_event would refuse it
        conn.execute(
            "INSERT INTO events (id, tenant, ts, dataset, doc) VALUES ('no-tenant', '', '', '', ?)",
            ('{"event.id": "no-tenant", "event.dataset": "system.auth", "message": "x"}',),
        )
    plan, _ = store.plan_new_events(None, limit=10_000)
    stored = [event for _, event in store.read_plan(plan)]
    assert len(stored) == len(events) + 1 and len(plan.blocks) >= 8
    return store, plan, stored


@pytest.mark.parametrize("count", [1, 2, 3])
def test_pool_equals_single_process(
    compiled: CompiledRuleSet, planned: tuple[SqliteStore, ReadPlan, list[Any]], count: int
) -> None:
    store, plan, events = planned
    single = Evaluator(compiled)
    expected = single.evaluate(events)
    assert single.stats.correlation_hits > 0  # the samples do exercise correlation
    assert single.stats.skipped_events == 1
    pooled = Evaluator(compiled)
    with WorkerPool(pooled, store, workers=count) as pool:
        got = pool.evaluate(plan)
        again = pool.evaluate(plan)  # the same workers serve batch after batch
        assert pool.restarts == 0
    assert summary(got) == summary(expected)
    assert counters(pooled)[:2] == (2 * len(events), 2)
    replay = Evaluator(compiled)  # the second batch met windows holding the first
    replay.evaluate(events)
    assert summary(again) == summary(replay.evaluate(events))


def test_blocks_are_claimed_once_each_and_stale_tokens_skipped() -> None:
    pipe = workers._TokenPipe()
    try:
        pipe.deal(1, 5, 2)  # a batch that failed: its tokens are left in the pipe
        pipe.deal(2, 600, 3)  # more tokens than one atomic write
        claims = [list(workers._claimed(pipe.read_end, 2)) for _ in range(3)]
    finally:
        pipe.close()
    assert claims[0] == list(range(600)) and claims[1:] == [[], []]


def test_a_failing_read_raises_worker_error_and_emits_nothing(
    compiled: CompiledRuleSet, planned: tuple[SqliteStore, ReadPlan, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, plan, _ = planned
    real = SqliteStore.read_plan

    def read_plan(self: SqliteStore, plan: ReadPlan, blocks: Iterable[int] | None = None) -> list[Any]:
        if blocks is not None and 5 in blocks:
            raise OSError("block 5 unreadable")
        return real(self, plan, blocks)

    monkeypatch.setattr(SqliteStore, "read_plan", read_plan)  # before the workers are forked
    evaluator = Evaluator(compiled)
    with WorkerPool(evaluator, store, workers=2) as pool, pytest.raises(WorkerError, match="block 5 unreadable"):
        pool.evaluate(plan)
    assert counters(evaluator) == (0, 0, 0, 0)
    assert not evaluator.correlation.keys


def test_a_worker_dying_after_some_blocks_emits_nothing_and_is_restarted(
    compiled: CompiledRuleSet,
    planned: tuple[SqliteStore, ReadPlan, list[Any]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    store, plan, events = planned
    real = workers.match_shard
    calls = 0
    died = tmp_path / "died"

    def match_shard(evaluator: Evaluator, part: Iterable[tuple[Position, Any]]) -> workers.ShardResult:
        nonlocal calls
        calls += 1
        if calls == 3:
            try:
                died.touch(exist_ok=False)  # one worker of all dies, once
            except FileExistsError:
                pass
            else:
                os._exit(3)
        return real(evaluator, part)

    monkeypatch.setattr(workers, "match_shard", match_shard)  # before the workers are forked
    evaluator = Evaluator(compiled)
    with WorkerPool(evaluator, store, workers=2) as pool:
        with pytest.raises(WorkerError, match="died"):
            pool.evaluate(plan)
        assert counters(evaluator) == (0, 0, 0, 0)
        assert summary(pool.evaluate(plan)) == summary(Evaluator(compiled).evaluate(events))
        assert pool.restarts == 1


def test_at_least_one_worker(compiled: CompiledRuleSet, sqlite_store: SqliteStore) -> None:
    with pytest.raises(ConfigError):
        WorkerPool(Evaluator(compiled), sqlite_store, workers=0)
