"""DetectionEngine with worker processes: the alerts of one process, batches never lost or doubled."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from detections import lifecycle, workers
from detections.engine import CHECKPOINT_ID, CHECKPOINT_KIND, DetectionEngine
from detections.evaluation import Evaluator
from detections.loader import RuleSet, load_rules, shipped_rules_dir
from soc_api.runtime import EngineThread, build_engine
from soc_core.config import Settings, load_settings
from soc_core.errors import ConfigError
from soc_core.events import Event, make_event
from soc_core.store import ElasticsearchStore, Store
from soc_core.store.base import Position
from soc_core.store.sqlite import SqliteStore
from tests.detections.test_differential import finish, otrf_events, shipped_sample_events
from tests.shared_data import shared_data
from tests.support.waiting import wait_for

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
POISON = "poison-event"
SIGMAHQ_STEP = 2  # every second SigmaHQ rule file: ~1,500 rules


def clock() -> datetime:
    return NOW


def stats_of(engine: DetectionEngine) -> tuple[Any, ...]:
    stats = engine.evaluator.stats
    return stats.events, stats.skipped_events, stats.matches, stats.correlation_hits, stats.rule_failures


def stored(tmp_path: Path, name: str, events: list[dict[str, Any]]) -> SqliteStore:
    store = SqliteStore(tmp_path / f"{name}.db")
    store.setup()
    result = store.add_events(events)
    assert all(item.stored for item in result.items)
    return store


def outcome(store: Store) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every alert document (id included) and the saved checkpoint with correlation state."""
    alerts = sorted(
        (dict(doc.body, id=doc.id) for doc in store.list_docs("alerts", size=10_000).items), key=lambda a: a["id"]
    )
    return alerts, store.get_doc(CHECKPOINT_KIND, CHECKPOINT_ID).body


def run(rules: RuleSet, store: Store, *, workers: int, limit: int) -> tuple[Any, ...]:
    with DetectionEngine(rules, store, workers=workers, clock=clock) as engine:
        result = engine.run_until_idle(limit=limit)
        return result, stats_of(engine), outcome(store)


def worker_pids(engine: DetectionEngine) -> list[int | None]:
    assert engine._pool is not None
    return [proc.pid if proc is not None else None for proc in engine._pool.processes]


def assert_no_workers_left() -> None:
    assert [proc.name for proc in multiprocessing.active_children()] == []


@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    rules = load_rules([shipped_rules_dir()])
    assert not rules.errors
    return rules


@pytest.fixture
def sample_events() -> list[dict[str, Any]]:
    return [finish(event) for event in shipped_sample_events()]


@pytest.fixture
def reference(
    tmp_path: Path, shipped: RuleSet, sample_events: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], tuple[Any, ...], tuple[Any, ...]]:
    """The events and what one process makes of them, 40 events a batch."""
    _, stats, found = run(shipped, stored(tmp_path, "reference", sample_events), workers=1, limit=40)
    assert found[0] and stats[3] > 0  # alerts, and correlations among them
    return sample_events, stats, found


@pytest.mark.parametrize("count", [2, 3])
def test_shipped_rules_workers_write_the_alerts_of_one_process(
    tmp_path: Path, shipped: RuleSet, reference: tuple[Any, ...], count: int
) -> None:
    events, stats, found = reference
    result, got_stats, got = run(shipped, stored(tmp_path, "workers", events), workers=count, limit=40)
    assert result.redone_in_process == 0
    assert got == found
    assert got_stats == stats
    assert_no_workers_left()


def test_sigmahq_subset_over_otrf_workers_write_the_alerts_of_one_process(tmp_path: Path) -> None:
    files = sorted(shared_data("sigmahq/rules").rglob("*.yml"))[::SIGMAHQ_STEP]
    shared_data("otrf/datasets")
    rules = load_rules([shipped_rules_dir(), *files])
    events = [finish(event) for event in otrf_events(3000)] + [finish(event) for event in shipped_sample_events()]
    assert len(rules.rules) > 1500 and len(events) > 3000
    one = run(rules, stored(tmp_path, "one", events), workers=1, limit=700)
    two = run(rules, stored(tmp_path, "two", events), workers=2, limit=700)
    assert len(one[2][0]) > 50  # plenty of alerts to compare
    assert two[0].redone_in_process == 0
    assert two == one
    assert_no_workers_left()


@pytest.mark.elasticsearch
def test_shipped_rules_workers_write_the_alerts_of_one_process_on_elasticsearch(
    es_store: ElasticsearchStore, shipped: RuleSet, sample_events: list[dict[str, Any]]
) -> None:
    """The same on the real node: each worker reads its blocks by ``_seq_no`` span over its own
    connection, and the batches (several indices each) come out in the same stream order."""
    assert all(item.stored for item in es_store.add_events(sample_events).items)
    found = {}
    for count in (1, 2, 3):
        for doc in es_store.list_docs("alerts", size=1000).items:  # each run from the start
            es_store.delete_doc("alerts", doc.id)
        es_store.delete_doc(CHECKPOINT_KIND, CHECKPOINT_ID)
        result, stats, got = run(shipped, es_store, workers=count, limit=40)
        assert result.events == len(sample_events) and result.redone_in_process == 0
        found[count] = (stats, got)
        assert_no_workers_left()
    assert found[1][1][0] and found[1][0][3] > 0  # alerts, and correlations among them
    assert found[2] == found[1] and found[3] == found[1]


EVERY_AUTH_EVENT = """
title: Every auth event
id: 0a5c3f4e-1d2b-4c6a-9e8f-7b6a5c4d3e2f
status: test
logsource:
    product: linux
    service: auth
detection:
    selection:
        event.dataset: system.auth
    condition: selection
level: low
"""


def auth_events(writer: int, batch: int, count: int) -> list[dict[str, Any]]:
    return [
        make_event(
            tenant=("police", "health")[position % 2],
            dataset="system.auth",
            sensor_id=f"w{writer}",
            source="/var/log/auth.log",
            position=batch * 1000 + position,
            raw=f"line {position}".encode(),
            timestamp=NOW + timedelta(days=position % 3, seconds=position),  # three daily indices
            fields={"message": f"line {position}", "process.name": "sshd"},
        )
        for position in range(count)
    ]


def test_concurrent_writes_every_event_is_evaluated_exactly_once(store: Store, tmp_path: Path) -> None:
    """Two writers add events while two-worker engines run batch after batch, one engine
    replacing another from its saved checkpoint every few batches (a restart); on both stores."""
    (tmp_path / "rule.yml").write_text(EVERY_AUTH_EVENT)
    rules = load_rules([tmp_path / "rule.yml"])
    assert not rules.errors
    written: list[str] = []
    lock = threading.Lock()
    engines_ran = threading.Event()

    def writer(n: int) -> None:
        own = store.reopened()
        try:
            for batch in range(12):
                if batch == 6:  # half-way, let the engines run a few batches first
                    assert engines_ran.wait(timeout=60)
                events = auth_events(n, batch, 60)
                assert all(item.stored for item in own.add_events(events).items)
                with lock:
                    written.extend(str(event["event.id"]) for event in events)
        finally:
            own.close()

    emitted: list[str] = []

    def engine() -> DetectionEngine:
        built = DetectionEngine(rules, store, workers=2, clock=clock)
        real = built.evaluator.emit

        def emit(matches: Iterable[tuple[Mapping[str, Any], Sequence[Any]]]) -> list[Any]:
            pairs = list(matches)
            emitted.extend(str(event["event.id"]) for event, _ in pairs)
            return real(pairs)

        built.evaluator.emit = emit  # type: ignore[method-assign]
        return built

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    batches = 0
    current = engine()
    try:
        while any(thread.is_alive() for thread in threads):
            current.run_batch(limit=(37, 200, 91)[batches % 3])
            batches += 1
            if batches == 8:
                engines_ran.set()
            if batches % 5 == 0:
                current.close()
                current = engine()
        for thread in threads:
            thread.join()
        current.run_until_idle(limit=150)
    finally:
        current.close()
    assert len(written) == 2 * 12 * 60
    assert [event_id for event_id, seen in Counter(emitted).items() if seen > 1] == []
    assert sorted(emitted) == sorted(written)
    assert batches >= 8  # the engines really ran while the writers wrote
    assert_no_workers_left()


def test_workers_start_once_and_close_cleanly(tmp_path: Path, shipped: RuleSet, sample_events: list[Any]) -> None:
    engine = DetectionEngine(shipped, stored(tmp_path, "s", sample_events), workers=2, clock=clock)
    assert engine._pool is None  # nothing forked until there is something to match
    engine.run_once(limit=30)
    assert engine._pool is not None and engine._pool.pending is not None  # the next batch, sent ahead
    pids = worker_pids(engine)
    procs = list(engine._pool.processes) if engine._pool else []
    while engine.run_once(limit=30):
        assert worker_pids(engine) == pids
    assert engine._pool is not None and engine._pool.restarts == 0
    engine.close()
    engine.close()
    assert engine._pool is None
    assert all(proc is not None and proc.exitcode == 0 for proc in procs)  # they exited when asked
    assert_no_workers_left()


def dying_in(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """Make pool workers forked from now on die (or fail) on the batch holding POISON."""
    real = workers.match_shard

    def match_shard(evaluator: Evaluator, events: Iterable[tuple[Position, Event]]) -> workers.ShardResult:
        events = list(events)
        if any(event.get("event.id") == POISON for _, event in events):
            if how == "dies":
                os._exit(3)
            raise RuntimeError("matcher crashed")
        return real(evaluator, events)

    monkeypatch.setattr(workers, "match_shard", match_shard)


@pytest.mark.parametrize("how", ["dies", "raises"])
def test_a_failed_batch_is_redone_in_process_neither_lost_nor_doubled(
    tmp_path: Path,
    shipped: RuleSet,
    sample_events: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    events = [*sample_events, finish({"event.id": POISON, "event.dataset": "system.auth", "message": "x"})]
    events[60:60] = [events.pop()]  # in the second batch of 40
    _, stats, found = run(shipped, stored(tmp_path, "one", events), workers=1, limit=40)
    dying_in(monkeypatch, how)
    store = stored(tmp_path, "two", events)
    with DetectionEngine(shipped, store, workers=2, clock=clock) as engine:
        assert engine.run_batch(limit=40).redone_in_process == 0
        pids = worker_pids(engine)
        assert engine.run_batch(limit=40).redone_in_process == 1
        engine.run_until_idle(limit=40)
        restarted = [old != new for old, new in zip(pids, worker_pids(engine), strict=True)]
        assert engine._pool is not None
        assert engine._pool.restarts == (1 if how == "dies" else 0)
        # whichever worker claimed the block holding POISON died, and only that one
        assert restarted.count(True) == (1 if how == "dies" else 0)
        assert (stats_of(engine), outcome(store)) == (stats, found)
    assert_no_workers_left()


def test_a_worker_killed_between_batches_is_started_again(
    tmp_path: Path, shipped: RuleSet, reference: tuple[Any, ...]
) -> None:
    events, stats, found = reference
    store = stored(tmp_path, "s", events[:400])  # whole batches of 40, as in the reference
    with DetectionEngine(shipped, store, workers=2, clock=clock) as engine:
        engine.run_until_idle(limit=40)  # idle: no batch was sent ahead
        assert engine._pool is not None and engine._pool.pending is None
        store.add_events(events[400:])
        pids = worker_pids(engine)
        assert pids[0] is not None
        os.kill(pids[0], signal.SIGKILL)
        assert engine._pool is not None and engine._pool.processes[0] is not None
        engine._pool.processes[0].join()
        assert engine.run_until_idle(limit=40).redone_in_process == 0
        assert engine._pool.restarts == 1 and worker_pids(engine)[1] == pids[1]
        assert (stats_of(engine), outcome(store)) == (stats, found)


def test_a_worker_that_stops_answering_is_stopped_and_its_batch_redone(
    tmp_path: Path, shipped: RuleSet, reference: tuple[Any, ...]
) -> None:
    events, stats, found = reference
    store = stored(tmp_path, "s", events)
    with DetectionEngine(shipped, store, workers=2, clock=clock) as engine:
        engine.run_once(limit=40)
        assert engine._pool is not None
        engine._pool.reply_timeout = 0.5
        stuck = worker_pids(engine)[1]
        assert stuck is not None
        os.kill(stuck, signal.SIGSTOP)
        # the first batch it has not answered yet (maybe the one sent ahead) is redone
        assert engine.run_until_idle(limit=40).redone_in_process == 1
        with pytest.raises(ProcessLookupError):  # killed, and reaped
            os.kill(stuck, 0)
        assert engine._pool.restarts == 1
        assert (stats_of(engine), outcome(store)) == (stats, found)


def test_a_batch_read_ahead_is_not_used_when_the_last_batch_failed_after_matching(
    tmp_path: Path, shipped: RuleSet, sample_events: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writing batch 2's alerts fails once: batch 3, read ahead meanwhile, must wait for batch 2."""
    real = DetectionEngine._write_alerts
    calls = {1: 0, 2: 0}

    def write_alerts(self: DetectionEngine, detections: Any, result: Any) -> None:
        calls[self.workers] += 1
        if calls[self.workers] == 2:
            raise OSError("disk full")
        real(self, detections, result)

    monkeypatch.setattr(DetectionEngine, "_write_alerts", write_alerts)
    outcomes = []
    for count in (1, 2):
        store = stored(tmp_path, f"w{count}", sample_events)
        with DetectionEngine(shipped, store, workers=count, clock=clock) as engine:
            engine.run_batch(limit=40)
            after_first = engine.checkpoint
            with pytest.raises(OSError, match="disk full"):
                engine.run_batch(limit=40)
            assert engine.checkpoint == after_first
            engine.run_until_idle(limit=40)
            assert engine.evaluator.stats.events == len(sample_events) + 40  # batch 2 twice, none skipped
            outcomes.append((stats_of(engine), outcome(store)))
    assert outcomes[1] == outcomes[0]
    assert_no_workers_left()


@pytest.fixture
def thread_store(tmp_path: Path, sample_events: list[dict[str, Any]]) -> Iterator[SqliteStore]:
    store = stored(tmp_path, "thread", sample_events)
    yield store
    store.close()


def test_engine_thread_closes_the_engines_it_drops_and_stops(thread_store: SqliteStore) -> None:
    settings = Settings(detection={"workers": 2})
    built: list[DetectionEngine] = []

    def rebuild() -> DetectionEngine:
        built.append(build_engine(settings, thread_store))
        return built[-1]

    thread = EngineThread(rebuild(), interval=0.05, batch_size=50, rebuild=rebuild)
    assert built[0].workers == 2
    thread.start()

    def first_engine() -> tuple[object, bool]:
        assert thread.is_alive()
        return built[0].checkpoint, built[0]._pool is not None

    wait_for(first_engine, "the first engine's checkpoint and pool", until=lambda seen: seen[0] is not None and seen[1])
    assert built[0]._pool is not None
    first = [proc for proc in built[0]._pool.processes if proc is not None]
    lifecycle.bump_generation(thread_store)

    def engines() -> int:
        assert thread.is_alive()
        return len(built)

    wait_for(engines, "the engine rebuilt for the new generation", until=lambda count: count >= 2)
    thread.stop_event.set()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert first and all(not proc.is_alive() for proc in first)
    assert all(engine._pool is None for engine in built)
    assert_no_workers_left()


def test_workers_setting(tmp_path: Path) -> None:
    assert Settings().detection.workers == 1
    assert Settings(detection={"workers": 4}).detection.workers == 4
    for bad in (0, 17):
        path = tmp_path / f"{bad}.yml"
        path.write_text(f"detection:\n  workers: {bad}\n")
        with pytest.raises(ConfigError, match=r"detection\.workers"):
            load_settings(path)


def test_at_least_one_worker(shipped: RuleSet, sqlite_store: SqliteStore) -> None:
    with pytest.raises(ConfigError):
        DetectionEngine(shipped, sqlite_store, workers=0)
