"""The Elasticsearch reader of new events (per-index ``_seq_no`` watermarks) on a real node.

The contract suite proves the ordinary case on both stores; these prove what only the
Elasticsearch reader can get wrong: concurrent bulks to many indices, restarts, retention
deleting an index, an index re-created under its old name, and the checkpoint of the earlier
reader by ``event.ingested``.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from soc_core.errors import StoreError
from soc_core.events import Event, format_timestamp, make_event, utcnow
from soc_core.store import ElasticsearchStore
from soc_core.store.elasticsearch import _blocks, _readable_seq_no, _ReadState, _share, event_index

BASE = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
TENANTS = ("police", "health", "edu")


def events(tenant: str, count: int, *, day: int = 0, sensor: str = "s1", start: int = 0) -> list[Event]:
    return [
        make_event(
            tenant=tenant,
            dataset="system.auth",
            sensor_id=f"{tenant}-{sensor}",  # event ids hash sensor, source, position and raw only
            source="/var/log/auth.log",
            position=day * 100_000 + position,
            raw=f"line {position}".encode(),
            timestamp=BASE + timedelta(days=day, seconds=position),
            fields={"message": f"line {position}", "host.name": "web-01"},
        )
        for position in range(start, start + count)
    ]


def ids(batch: list[Event]) -> list[str]:
    return [str(event["event.id"]) for event in batch]


def drain(store: ElasticsearchStore, checkpoint: str | None, *, limit: int) -> tuple[list[str], str]:
    """Read until a call returns nothing."""
    got: list[str] = []
    while True:
        batch, checkpoint = store.read_new_events(checkpoint, limit=limit)
        got.extend(ids(batch))
        if not batch:
            return got, checkpoint


def index_of(store: ElasticsearchStore, tenant: str, day: int) -> str:
    return event_index(events(tenant, 1, day=day)[0], store.prefix)


@pytest.mark.elasticsearch
def test_concurrent_writers_every_event_read_exactly_once(es_store: ElasticsearchStore) -> None:
    """Four writers bulk to 3 tenants x 3 days (re-sending some batches: 409s) while the
    reader reads with varying limits and restarts from its saved checkpoint every few calls."""
    written: list[str] = []
    lock = threading.Lock()
    failures: list[BaseException] = []

    def writer(n: int) -> None:
        store = ElasticsearchStore(es_store.url, prefix=es_store.prefix, request_timeout=60)
        try:
            previous: list[Event] = []
            for k in range(15):
                batch = [
                    event
                    for i, tenant in enumerate(TENANTS)
                    for event in events(tenant, 50, day=(k + i) % 3, sensor=f"w{n}", start=k * 50)
                ]
                result = store.add_events(batch)
                assert result.created == len(batch), result
                with lock:
                    written.extend(ids(batch))
                if k % 5 == 4:  # a sensor re-sending a batch after a lost answer
                    again = store.add_events(previous)
                    assert again.duplicates == len(previous)
                previous = batch
        except BaseException as exc:
            failures.append(exc)
            raise
        finally:
            store.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    got: list[str] = []
    checkpoint: str | None = None
    reader = ElasticsearchStore(es_store.url, prefix=es_store.prefix, request_timeout=60)
    calls = 0
    limits = (1, 97, 500, 5000, 13)
    while any(thread.is_alive() for thread in threads):
        batch, checkpoint = reader.read_new_events(checkpoint, limit=limits[calls % len(limits)])
        got.extend(ids(batch))
        calls += 1
        if calls % 7 == 0:  # a restart: a new store object and only the saved string
            reader.close()
            reader = ElasticsearchStore(es_store.url, prefix=es_store.prefix, request_timeout=60)
    for thread in threads:
        thread.join()
    assert not failures
    rest, checkpoint = drain(reader, checkpoint, limit=333)
    reader.close()
    got.extend(rest)
    assert len(written) == 4 * 15 * 150
    duplicates = [event_id for event_id, count in Counter(got).items() if count > 1]
    assert duplicates == []
    assert set(got) == set(written)
    assert len(json.loads(checkpoint)["indices"]) == 9
    assert calls > 10  # the reader really ran while the writers wrote


@pytest.mark.elasticsearch
def test_restart_from_a_saved_checkpoint_mid_index(es_store: ElasticsearchStore) -> None:
    first = events("police", 40) + events("health", 40, day=1)
    es_store.add_events(first)
    batch, checkpoint = es_store.read_new_events(None, limit=30)  # stops inside both indices
    assert len(batch) == 30
    later = events("police", 10, start=40) + events("edu", 5, day=2)
    es_store.add_events(later)
    restarted = ElasticsearchStore(es_store.url, prefix=es_store.prefix)
    try:
        rest, checkpoint = drain(restarted, checkpoint, limit=7)
    finally:
        restarted.close()
    assert sorted(ids(batch) + rest) == sorted(ids(first + later))
    assert es_store.read_new_events(checkpoint, limit=100)[0] == []


@pytest.mark.elasticsearch
def test_retention_deleting_an_index_mid_way(es_store: ElasticsearchStore) -> None:
    old, kept = events("police", 50, day=0), events("police", 50, day=1)
    es_store.add_events(old + kept)
    batch, checkpoint = es_store.read_new_events(None, limit=30)
    doomed = index_of(es_store, "police", 0)
    assert doomed in json.loads(checkpoint)["indices"]
    es_store.client.indices.delete(index=doomed)
    new = events("police", 10, day=1, start=50) + events("police", 10, day=2)
    es_store.add_events(new)
    rest, checkpoint = drain(es_store, checkpoint, limit=20)
    got = ids(batch) + rest
    assert len(got) == len(set(got))
    assert set(ids(kept + new)) <= set(got) <= set(ids(old + kept + new))
    assert doomed not in json.loads(checkpoint)["indices"]


@pytest.mark.elasticsearch
def test_an_index_recreated_under_its_old_name_is_read_from_its_start(es_store: ElasticsearchStore) -> None:
    es_store.add_events(events("police", 40))
    got, checkpoint = drain(es_store, None, limit=1000)
    assert len(got) == 40
    name = index_of(es_store, "police", 0)
    es_store.client.indices.delete(index=name)
    again = events("police", 5, start=100)  # seq_nos 0..4, below the old watermark 39
    es_store.add_events(again)
    batch, checkpoint = es_store.read_new_events(checkpoint, limit=1000)
    assert sorted(ids(batch)) == sorted(ids(again))


def write_stamped(es_store: ElasticsearchStore, batch: list[Event], ingested: datetime) -> None:
    """Store events with a chosen ``event.ingested`` (add_events stamps the current time)."""
    operations: list[Any] = []
    for event in batch:
        operations.append({"create": {"_index": event_index(event, es_store.prefix), "_id": event["event.id"]}})
        operations.append({**event, "event.ingested": format_timestamp(ingested)})
    response = es_store.client.bulk(operations=operations)
    assert not response["errors"]


@pytest.mark.elasticsearch
def test_a_checkpoint_of_the_reader_by_ingest_time_is_migrated(es_store: ElasticsearchStore) -> None:
    t = utcnow() - timedelta(minutes=1)
    long_done = events("police", 10)  # before the old overlap window: returned long ago
    in_window_seen = events("police", 10, start=10)  # returned; their ids are in "seen"
    in_window_late = events("health", 5)  # landed late inside the window, not yet returned
    after = events("police", 10, start=20, day=1)  # newer than the newest returned
    write_stamped(es_store, long_done, t - timedelta(seconds=60))
    write_stamped(es_store, in_window_seen, t - timedelta(seconds=5))
    write_stamped(es_store, in_window_late, t - timedelta(seconds=3))
    write_stamped(es_store, after, t + timedelta(seconds=2))
    old = json.dumps(
        {
            "t": format_timestamp(t),
            "seen": dict.fromkeys(ids(in_window_seen), format_timestamp(t - timedelta(seconds=5))),
        }
    )
    batch, checkpoint = es_store.read_new_events(old, limit=4)
    assert 0 < len(batch) <= 4  # a plan counts seq_nos: those of the skipped events too
    assert "legacy" in json.loads(checkpoint)  # still skipping until every index is read through
    rest, checkpoint = drain(es_store, checkpoint, limit=4)
    got = ids(batch) + rest
    assert sorted(got) == sorted(ids(in_window_late + after))
    assert "legacy" not in json.loads(checkpoint)
    new = events("edu", 3)
    es_store.add_events(new)
    assert sorted(drain(es_store, checkpoint, limit=100)[0]) == sorted(ids(new))


@pytest.mark.elasticsearch
def test_a_checkpoint_of_the_earlier_reader_that_read_nothing_starts_from_the_beginning(
    es_store: ElasticsearchStore,
) -> None:
    stored = events("police", 12)
    es_store.add_events(stored)
    got, _ = drain(es_store, json.dumps({"t": None, "seen": {}}), limit=5)
    assert sorted(got) == sorted(ids(stored))


@pytest.mark.elasticsearch
def test_an_event_index_with_two_shards_is_refused(es_store: ElasticsearchStore) -> None:
    es_store.client.indices.create(index=index_of(es_store, "police", 0), settings={"number_of_shards": 2})
    with pytest.raises(StoreError, match="2 primary shards"):
        es_store.read_new_events(None, limit=10)


def shard_copy(*, primary: bool, state: str = "STARTED", local: int, global_: int) -> dict[str, Any]:
    return {
        "routing": {"primary": primary, "state": state},
        "seq_no": {"max_seq_no": local, "local_checkpoint": local, "global_checkpoint": global_},
    }


@pytest.mark.parametrize(
    ("copies", "expected"),
    [
        ([shard_copy(primary=True, local=9, global_=9)], 9),
        # the primary's global checkpoint waits for an in-sync replica
        ([shard_copy(primary=True, local=12, global_=10), shard_copy(primary=False, local=10, global_=7)], 10),
        # a replica still recovering serves no searches
        (
            [
                shard_copy(primary=True, local=5, global_=5),
                shard_copy(primary=False, state="INITIALIZING", local=1, global_=1),
            ],
            5,
        ),
        ([shard_copy(primary=False, local=5, global_=5)], None),
        ([], None),
    ],
)
def test_readable_seq_no(copies: list[dict[str, Any]], expected: int | None) -> None:
    assert _readable_seq_no("i", {"0": copies}) == expected


def test_an_unreadable_checkpoint_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="unreadable event read checkpoint"):
        _ReadState.parse("{not json")
    with pytest.raises(StoreError, match="unreadable event read checkpoint"):
        _ReadState.parse('{"indices": {"a": 3}}')


@pytest.mark.parametrize("limit", [1, 2, 5, 11, 12, 13, 40, 1000])
def test_a_plan_takes_the_seq_nos_one_search_by_seq_no_would(limit: int) -> None:
    spans = {"b": (4, 9), "a": (-1, 6), "c": (-1, 1), "d": (20, 22)}
    ordered = sorted((seq, name) for name, (done, upto) in spans.items() for seq in range(done + 1, upto + 1))
    expected: dict[str, tuple[int, int]] = {}
    for seq, name in ordered[:limit]:
        expected[name] = (spans[name][0], seq)
    assert _share(spans, limit) == expected


@pytest.mark.parametrize("size", [1, 3, 4, 100])
def test_blocks_cover_the_spans_exactly_once(size: int) -> None:
    spans = {"b": (4, 9), "a": (-1, 6), "c": (-1, 1)}
    covered = []
    sizes = []
    for block in _blocks(spans, size):
        pieces = [block[n : n + 3] for n in range(0, len(block), 3)]
        sizes.append(sum(int(upto) - int(done) for _, done, upto in pieces))
        covered += [(name, seq) for name, done, upto in pieces for seq in range(int(done) + 1, int(upto) + 1)]
    assert covered == [(name, seq) for name, (done, upto) in sorted(spans.items()) for seq in range(done + 1, upto + 1)]
    assert all(n == size for n in sizes[:-1]) and 0 < sizes[-1] <= size  # small spans share blocks
