"""Forwarder against a scripted store double: at least once, no duplicates, dead letters.

The double answers like a bulk API: per-item ``created``/``duplicate``/``retry``/``rejected``,
or :class:`StoreUnavailable` for the whole batch.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import pytest

from sensors.forwarder import Backoff, Batcher, DeadLetterFile, Forwarder, Spool, StoreSink
from sensors.forwarder.forwarder import WINDOW, Ack
from soc_core.errors import ConfigError, StoreUnavailable
from soc_core.events import Event
from soc_core.store.base import BulkResult, ItemResult, PreparedEvents
from tests.support.waiting import wait_for


class FlakyStore:
    """Keeps events by id; fails on a script."""

    name = "flaky"

    def __init__(self) -> None:
        self.events: dict[str, Event] = {}
        self.down = False
        self.retry_once: set[str] = set()
        self.reject: set[str] = set()
        self.calls = 0

    def setup(self) -> None:
        """Nothing to create (StoreSink calls it before the first write)."""

    def prepare_events(self, events: Sequence[Event], *, encoded: Sequence[bytes] | None = None) -> PreparedEvents:
        return PreparedEvents(events, encoded)

    def add_prepared(self, prepared: PreparedEvents) -> BulkResult:
        return self.add_events(prepared.events, encoded=prepared.encoded)

    def add_events(self, events: Sequence[Event], *, encoded: Sequence[bytes] | None = None) -> BulkResult:
        self.calls += 1
        if self.down:
            raise StoreUnavailable("store is down", where="flaky://")
        items = []
        for event in events:
            key = event["event.id"]
            if key in self.retry_once:
                self.retry_once.discard(key)
                items.append(ItemResult(key, "retry", "429 too many requests"))
            elif key in self.reject:
                items.append(ItemResult(key, "rejected", "mapping error on field x"))
            elif key in self.events:
                items.append(ItemResult(key, "duplicate"))
            else:
                self.events[key] = event
                items.append(ItemResult(key, "created"))
        return BulkResult(items)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def event(n: int) -> Event:
    return {"event.id": f"id-{n:05d}", "message": f"line {n}", "organization.id": "t1"}


def make(tmp_path: Path, store: FlakyStore, clock: Clock, **options: object) -> Forwarder:
    spool = Spool(tmp_path / "spool", max_bytes=options.pop("max_bytes", 1 << 20), segment_bytes=4096)  # type: ignore[arg-type]
    sink = StoreSink(store, dead_letters=DeadLetterFile(tmp_path / "dead.jsonl"))  # type: ignore[arg-type]
    return Forwarder(
        sink,
        spool,
        batcher=Batcher(max_items=10, max_bytes=1 << 20, max_age=1.0),
        backoff=Backoff(initial=1.0, maximum=8.0, jitter=0.0),
        clock=clock,
        sleep=clock.sleep,
        **options,  # type: ignore[arg-type]
    )


def run(forwarder: Forwarder, clock: Clock, *, limit: int = 1000) -> None:
    for _ in range(limit):
        forwarder.pump(flush=True)
        if forwarder.drained:
            return
        clock.now += 1.0
    raise AssertionError("forwarder never drained")


def test_acks_run_in_order_only_after_delivery(tmp_path: Path) -> None:
    store, clock = FlakyStore(), Clock()
    forwarder = make(tmp_path, store, clock)
    acked: list[int] = []
    for n in range(25):
        assert forwarder.submit(event(n), partial(acked.append, n))
    forwarder.pump()  # two full batches of 10; 5 wait for age
    assert acked == list(range(20))
    clock.now += 1.0
    forwarder.pump()
    assert acked == list(range(25))
    assert forwarder.counters()["events_out"] == 25
    forwarder.close()


def test_store_down_keeps_everything_and_backs_off(tmp_path: Path) -> None:
    store, clock = FlakyStore(), Clock()
    forwarder = make(tmp_path, store, clock)
    acked: list[int] = []
    store.down = True
    for n in range(30):
        forwarder.submit(event(n), partial(acked.append, n))
    forwarder.pump(flush=True)
    calls = store.calls
    forwarder.pump(flush=True)
    assert store.calls == calls  # backing off, not hammering
    clock.now += 100
    forwarder.pump(flush=True)
    assert acked == [] and forwarder.backing_off
    assert forwarder.last_error and "unavailable" in forwarder.last_error
    store.down = False
    run(forwarder, clock)
    assert acked == list(range(30))
    assert len(store.events) == 30
    forwarder.close()


def test_per_item_results_retry_only_failed_items_and_dead_letter_rejects(tmp_path: Path) -> None:
    store, clock = FlakyStore(), Clock()
    store.retry_once = {f"id-{n:05d}" for n in (1, 4, 7)}
    store.reject = {f"id-{n:05d}" for n in (2, 8)}
    store.events["id-00005"] = event(5)  # already stored: a 409 counts as success
    forwarder = make(tmp_path, store, clock)
    acked: list[int] = []
    for n in range(10):
        forwarder.submit(event(n), partial(acked.append, n))
    run(forwarder, clock)
    counters = forwarder.counters()
    assert sorted(store.events) == [f"id-{n:05d}" for n in range(10) if n not in (2, 8)]
    assert counters["retried"] == 3
    assert counters["dead_lettered"] == 2
    assert counters["duplicates"] == 1
    assert counters["events_out"] + counters["dead_lettered"] == 10
    assert acked == list(range(10))
    letters = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert [(x["event"]["event.id"], x["reason"]) for x in letters] == [
        ("id-00002", "mapping error on field x"),
        ("id-00008", "mapping error on field x"),
    ]
    forwarder.close()


def test_crash_before_delivery_redelivers_without_duplicates(tmp_path: Path) -> None:
    store, clock = FlakyStore(), Clock()
    forwarder = make(tmp_path, store, clock)
    for n in range(35):
        forwarder.submit(event(n))
    forwarder.pump()  # 30 delivered, 5 waiting: then the process "dies"
    forwarder.spool.close()
    again = make(tmp_path, store, clock)
    run(again, clock)
    assert sorted(store.events) == [f"id-{n:05d}" for n in range(35)]
    again.close()


def test_block_refuses_when_full_and_drop_newest_counts(tmp_path: Path) -> None:
    store, clock = FlakyStore(), Clock()
    store.down = True
    blocking = make(tmp_path / "a", store, clock, max_bytes=4096)
    accepted = 0
    while blocking.submit(event(accepted)):
        accepted += 1
    assert blocking.counters()["spool_full"] == 1 and blocking.counters()["dropped"] == 0
    store.down = False
    run(blocking, clock)
    assert blocking.submit(event(accepted))  # room again after delivery
    blocking.close(timeout=5)

    store = FlakyStore()
    store.down = True
    dropping = make(tmp_path / "b", store, clock, max_bytes=4096, when_full="drop_newest")
    acked: list[int] = []
    for n in range(500):
        assert dropping.submit(event(n), partial(acked.append, n))
    store.down = False
    run(dropping, clock)
    counters = dropping.counters()
    assert counters["dropped"] > 0
    assert counters["dropped"] + len(store.events) == 500
    assert sorted(acked) == list(range(500))
    dropping.close()


def test_close_flushes_within_the_timeout(tmp_path: Path) -> None:
    store, clock = FlakyStore(), Clock()
    forwarder = make(tmp_path, store, clock)
    for n in range(3):
        forwarder.submit(event(n))
    assert forwarder.close(timeout=5)
    assert len(store.events) == 3


def test_close_gives_up_at_the_timeout_and_keeps_the_spool(tmp_path: Path) -> None:
    store, clock = FlakyStore(), Clock()
    store.down = True
    forwarder = make(tmp_path, store, clock)
    forwarder.submit(event(1))
    assert not forwarder.close(timeout=5)
    assert clock.now <= 6
    store.down = False
    again = make(tmp_path, store, clock)
    run(again, clock)
    assert list(store.events) == ["id-00001"]
    again.close()


def test_unknown_when_full_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="when_full"):
        make(tmp_path, FlakyStore(), Clock(), when_full="drop_oldest")


# ------------------------------------------------------------------------- background sender
class GatedStore(FlakyStore):
    """Answers only when the test opens the gate, and records which thread sent."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.threads: set[str] = set()
        self.crash_with: Exception | None = None

    def add_events(self, events: Sequence[Event], *, encoded: Sequence[bytes] | None = None) -> BulkResult:
        self.threads.add(threading.current_thread().name)
        assert self.gate.wait(10)
        if self.crash_with is not None:
            raise self.crash_with
        return super().add_events(events, encoded=encoded)


def ack_with_thread(acked: list[tuple[int, str]], n: int) -> Ack:
    """An ack that records which thread ran it."""

    def ack() -> None:
        acked.append((n, threading.current_thread().name))

    return ack


def test_background_send_lets_the_source_go_on_and_acks_in_the_callers_thread(tmp_path: Path) -> None:
    store, clock = GatedStore(), Clock()
    forwarder = make(tmp_path, store, clock, background=True)
    acked: list[tuple[int, str]] = []
    for n in range(25):
        assert forwarder.submit(event(n), ack_with_thread(acked, n))
    assert forwarder.pump() == 0  # first batch handed over; pump does not wait for the store
    assert forwarder.sending and not forwarder.drained
    for n in range(25, 40):  # the source keeps spooling while the batch is on the wire
        assert forwarder.submit(event(n), ack_with_thread(acked, n))
    assert forwarder.backlog == 40 and acked == []
    store.gate.set()
    forwarder.wait(5)
    done = 0
    while not forwarder.drained:
        done += forwarder.pump(flush=True)
        forwarder.wait(5)
    assert done == 40 and sorted(store.events) == [event(n)["event.id"] for n in range(40)]
    assert [n for n, _ in acked] == list(range(40))  # in submission order
    assert {name for _, name in acked} == {threading.current_thread().name}
    assert store.threads and all(name.startswith("forwarder-send") for name in store.threads)
    assert forwarder.close(timeout=5)


def test_background_outage_backs_off_and_a_bug_surfaces_in_the_callers_thread(tmp_path: Path) -> None:
    store, clock = GatedStore(), Clock()
    store.gate.set()
    forwarder = make(tmp_path, store, clock, background=True)
    for n in range(10):
        forwarder.submit(event(n))
    store.down = True
    forwarder.pump()
    forwarder.wait(5)
    assert forwarder.pump() == 0 and forwarder.backing_off and not forwarder.saturated
    assert forwarder.counters()["store_failures"] == 1 and "store is down" in (forwarder.last_error or "")
    store.down = False
    clock.sleep(2.0)  # past the backoff
    forwarder.pump()
    forwarder.wait(5)
    assert forwarder.pump() == 10 and forwarder.drained
    store.crash_with = RuntimeError("a bug in the sink")
    forwarder.submit(event(99))
    forwarder.pump(flush=True)
    forwarder.wait(5)
    with pytest.raises(RuntimeError, match="a bug in the sink"):
        forwarder.pump(flush=True)
    store.crash_with = None  # the batch was kept: it goes again
    assert forwarder.close(timeout=5) and "id-00099" in store.events


def test_background_window_queues_the_next_batch_and_never_acks_past_an_unfinished_one(tmp_path: Path) -> None:
    store, clock = GatedStore(), Clock()
    forwarder = make(tmp_path, store, clock, background=True)
    acked: list[int] = []
    for n in range(30):
        assert forwarder.submit(event(n), partial(acked.append, n))
    store.retry_once = {event(3)["event.id"]}  # one item of the first batch answers 429
    forwarder.pump()
    # one batch on the wire and the next queued behind it: no pump needed between the two
    assert sum(batch.answer is not None for batch in forwarder._window) == WINDOW == 2
    store.gate.set()
    wait_for(lambda: store.calls, "the second batch sent", until=lambda calls: calls >= 2, stall=10, poll=0.01)
    assert store.calls == 2  # the second was sent without waiting for the caller
    forwarder.wait(5)
    assert forwarder.pump() == 0  # the second batch is done, the first waits for its retry
    assert acked == [] and forwarder.counters()["events_out"] == 19 and forwarder.backing_off
    assert forwarder.spool.uncommitted
    clock.sleep(2.0)  # past the backoff
    forwarder.pump()
    forwarder.wait(5)
    assert forwarder.pump() == 20 and acked == list(range(20))  # both batches, in order
    for _ in range(100):
        if forwarder.drained:
            break
        forwarder.pump(flush=True)
        forwarder.wait(5)
    assert acked == list(range(30)) and sorted(store.events) == [event(n)["event.id"] for n in range(30)]
    assert forwarder.counters()["duplicates"] == 0 and forwarder.close(timeout=5)
