"""D4/D5 (RELIABILITY.md): partial bulk failures and a full spool.

A dedicated Elasticsearch node with a write thread pool of one thread and a queue of one, so a
bulk request that spans many daily indices gets some of its items rejected with 429. D4 and D5
run the real forwarder (Forwarder + Spool + StoreSink) in-process, D4 recording every bulk item
sent. All criteria are exact counts. D6 (the spool's disk full) is in ``test_spool_disk_full``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import orjson
import pytest
from elasticsearch import Elasticsearch

from sensors.forwarder import Backoff, Batcher, DeadLetterFile, Forwarder, Spool, StoreSink
from soc_core.devnode import DevNode, free_port
from soc_core.events import Event, make_event
from soc_core.store.base import BulkResult, PreparedEvents
from soc_core.store.elasticsearch import ElasticsearchStore
from tests.shared_data import dev_node
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.elasticsearch, pytest.mark.slow]

TINY_WRITE_POOL = {"thread_pool.write.size": "1", "thread_pool.write.queue_size": "1"}
FAST = Backoff(initial=0.02, maximum=0.2, jitter=0.0)


@pytest.fixture(scope="module")
def node() -> Iterator[DevNode]:
    with dev_node("tinypool", heap_mb=512, extra_settings=dict(TINY_WRITE_POOL)) as dev:
        store = ElasticsearchStore(dev.url, request_timeout=30)
        store.setup()
        store.close()
        yield dev


@pytest.fixture
def client(node: DevNode) -> Iterator[Elasticsearch]:
    es = Elasticsearch(node.url, request_timeout=30)
    yield es
    es.close()


class RecordingStore:
    """Wraps ``add_prepared`` of a real store (what the sensors' sink calls): the ids sent and
    the status answered, per call."""

    def __init__(self, store: ElasticsearchStore) -> None:
        self.store = store
        self.calls: list[list[tuple[str, str]]] = []
        original = store.add_prepared

        def add_prepared(prepared: PreparedEvents) -> BulkResult:
            result = original(prepared)
            self.calls.append([(item.id, item.status) for item in result.items])
            assert [item.id for item in result.items] == [e["event.id"] for e in prepared.events]
            return result

        store.add_prepared = add_prepared  # type: ignore[method-assign]


def app_event(tenant: str, seq: int, day: int, **fields: object) -> Event:
    moment = datetime(2026, 1, 1, 12, tzinfo=UTC) + timedelta(days=day)
    raw = f"job done seq={seq}".encode()
    return make_event(
        tenant=tenant,
        dataset="app.test",
        sensor_id=f"{tenant}-sensor",
        source="test",
        position=seq,
        raw=raw,
        timestamp=moment,
        fields={"message": raw.decode(), **fields},
    )


def store_all(store: ElasticsearchStore, events: list[Event]) -> None:
    """Seed events directly (429s retried here too), all must end up stored."""
    todo = events
    for _ in range(200):
        result = store.add_events(todo)
        assert all(item.status in ("created", "duplicate", "retry") for item in result.items), result
        todo = [e for e, item in zip(todo, result.items, strict=True) if item.status == "retry"]
        if not todo:
            return
        time.sleep(0.05)
    raise AssertionError("could not seed the events")


def stored_ids(client: Elasticsearch, tenant: str) -> list[str]:
    client.indices.refresh(index=f"canhgac-events-{tenant}-*")
    body = client.search(
        index=f"canhgac-events-{tenant}-*", size=10_000, query={"match_all": {}}, source_includes=["event.id"]
    )
    return [hit["_id"] for hit in body["hits"]["hits"]]


def drain(forwarder: Forwarder) -> None:
    def pumped() -> dict[str, int]:
        forwarder.pump(flush=True)
        return dict(forwarder.counters())

    wait_for(pumped, "the forwarder to drain", until=lambda _: forwarder.drained, poll=0.01)


# --------------------------------------------------------------------------------------- D4
def test_d4_partial_bulk_failures_retry_only_failed_items(node: DevNode, client: Elasticsearch, tmp_path: Path) -> None:
    tenant, days, new_count, dup_count, bad_count = "d4", 60, 600, 50, 20
    store = ElasticsearchStore(node.url, request_timeout=30)
    try:
        seed = app_event(tenant, 10_000, 0, **{"user.name": "alice"})  # `user` is an object on day 0
        dups = [app_event(tenant, 20_000 + i, i % days) for i in range(dup_count)]
        store_all(store, [seed, *dups])
        new = [app_event(tenant, i, i % days) for i in range(new_count)]
        bad = [app_event(tenant, 30_000 + i, 0, user=f"bob{i}") for i in range(bad_count)]
        events = [*new, *dups, *bad]
        random.Random(4).shuffle(events)

        recorder = RecordingStore(store)
        dead = DeadLetterFile(tmp_path / "dead.jsonl")
        forwarder = Forwarder(
            StoreSink(store, dead_letters=dead),
            Spool(tmp_path / "spool"),
            batcher=Batcher(max_items=200, max_age=0.0),
            backoff=FAST,
        )
        assert all(forwarder.submit(event) for event in events)
        drain(forwarder)
        counters = forwarder.counters()
        forwarder.close(timeout=1)
    finally:
        store.close()

    # only the items answered "retry" are sent again, and nothing else is ever re-sent
    sent: dict[str, int] = {}
    pending: list[str] = []
    retried_items = 0
    for call in recorder.calls:
        ids = [event_id for event_id, _ in call]
        if pending:
            assert ids == pending, "a retry must carry exactly the items that failed, in order"
        else:
            assert not any(event_id in sent for event_id in ids), "a finished item was sent again"
        for event_id in ids:
            sent[event_id] = sent.get(event_id, 0) + 1
        pending = [event_id for event_id, status in call if status == "retry"]
        retried_items += len(pending)
    assert not pending
    statuses = [status for call in recorder.calls for _, status in call]
    assert statuses.count("retry") == retried_items == counters["retried"]
    assert retried_items > 0, "the tiny write pool answered no 429: the scenario did not happen"
    assert sum(len(call) for call in recorder.calls) == len(events) + retried_items
    assert statuses.count("created") == new_count
    assert statuses.count("duplicate") == dup_count
    assert statuses.count("rejected") == bad_count

    # 400s: in the dead-letter file with their reason, and counted
    letters = [orjson.loads(line) for line in (tmp_path / "dead.jsonl").read_bytes().splitlines()]
    assert sorted(letter["event"]["event.id"] for letter in letters) == sorted(e["event.id"] for e in bad)
    for letter in letters:
        assert letter["reason"].startswith("400 "), letter["reason"]
        assert "parsing_exception" in letter["reason"], letter["reason"]
    assert counters["dead_lettered"] == bad_count
    # 409: a success, counted as a duplicate
    assert counters["duplicates"] == dup_count
    assert counters["events_out"] == new_count + dup_count
    assert counters["events_out"] + counters["dead_lettered"] == len(events)

    # 429s eventually indexed: the store holds every good event exactly once
    ids = stored_ids(client, tenant)
    assert len(ids) == len(set(ids)) == 1 + dup_count + new_count
    assert set(ids) == {seed["event.id"]} | {e["event.id"] for e in [*dups, *new]}
    print(f"D4: {len(recorder.calls)} bulk calls, {retried_items} items retried (429), counters {counters}")


# --------------------------------------------------------------------------------------- D5
def closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def spool_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("segment-*.log"))


def test_d5_block_pauses_the_source_and_loses_nothing(node: DevNode, client: Elasticsearch, tmp_path: Path) -> None:
    tenant, count, limit = "d5b", 400, 64 * 1024
    down = ElasticsearchStore(closed_url(), request_timeout=1.0)
    up = ElasticsearchStore(node.url, request_timeout=30)
    acked: list[str] = []
    events = [app_event(tenant, i, i % 10) for i in range(count)]
    try:
        spool = Spool(tmp_path / "spool", max_bytes=limit, segment_bytes=16 * 1024)
        forwarder = Forwarder(
            StoreSink(down, dead_letters=DeadLetterFile(tmp_path / "dead.jsonl")),
            spool,
            batcher=Batcher(max_items=100, max_age=0.0),
            when_full="block",
            backoff=FAST,
        )
        offset = 0  # the source's read position: it moves only over events the forwarder took
        refusals = 0
        while offset < count and refusals < 20:
            event = events[offset]
            if forwarder.submit(event, ack=partial(acked.append, event["event.id"])):
                offset += 1
            else:
                refusals += 1  # the source pauses and offers the same event again
            forwarder.pump()
        paused_at = offset
        assert 0 < paused_at < count, "the spool never filled: the scenario did not happen"
        assert spool_bytes(tmp_path / "spool") == spool.size <= limit
        assert acked == [] and forwarder.counters()["spool_full"] == refusals == 20
        forwarder.sink = StoreSink(up, dead_letters=DeadLetterFile(tmp_path / "dead.jsonl"))
        while offset < count:
            event = events[offset]
            if forwarder.submit(event, ack=partial(acked.append, event["event.id"])):
                offset += 1
            forwarder.pump()
            assert spool_bytes(tmp_path / "spool") <= limit
        assert forwarder.close(timeout=60)
        counters = forwarder.counters()
    finally:
        down.close()
        up.close()
    ids = stored_ids(client, tenant)
    assert len(ids) == len(set(ids)) == count
    assert set(ids) == {e["event.id"] for e in events}
    assert acked == [e["event.id"] for e in events]
    assert counters["dropped"] == 0 and counters["events_out"] == count
    print(f"D5 block: source paused at event {paused_at} of {count}, spool ≤ {limit} bytes")


def test_d5_drop_newest_counts_every_drop(node: DevNode, client: Elasticsearch, tmp_path: Path) -> None:
    tenant, count = "d5d", 400
    down = ElasticsearchStore(closed_url(), request_timeout=1.0)
    up = ElasticsearchStore(node.url, request_timeout=30)
    acked: list[str] = []
    try:
        spool = Spool(tmp_path / "spool", max_bytes=64 * 1024, segment_bytes=16 * 1024)
        forwarder = Forwarder(
            StoreSink(down, dead_letters=DeadLetterFile(tmp_path / "dead.jsonl")),
            spool,
            batcher=Batcher(max_items=100, max_age=0.0),
            when_full="drop_newest",
            backoff=FAST,
        )
        events = [app_event(tenant, i, i % 10) for i in range(count)]
        for event in events:
            assert forwarder.submit(event, ack=partial(acked.append, event["event.id"]))
            forwarder.pump()  # the store is down: nothing goes
        assert spool.size <= spool.max_bytes
        down_counters = forwarder.counters()
        assert down_counters["events_out"] == 0 and down_counters["store_failures"] >= 1
        dropped = down_counters["dropped"]
        assert 0 < dropped < count
        forwarder.sink = StoreSink(up, dead_letters=DeadLetterFile(tmp_path / "dead.jsonl"))
        assert forwarder.close(timeout=60)
        counters = forwarder.counters()
    finally:
        down.close()
        up.close()
    ids = stored_ids(client, tenant)
    assert len(ids) == len(set(ids))
    assert counters["dropped"] + len(ids) == count
    assert counters["events_out"] == len(ids) and counters["dead_lettered"] == 0
    # what was kept is the oldest part, and every event was acknowledged exactly once
    assert set(ids) == {e["event.id"] for e in events[: count - dropped]}
    assert sorted(acked) == sorted(e["event.id"] for e in events)
    print(f"D5 drop_newest: {dropped} dropped + {len(ids)} indexed == {count}")
