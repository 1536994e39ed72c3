"""H11 (RELIABILITY.md) on a real node: the Elasticsearch write path keeps events within the
bounds (so sensors writing straight to it are bounded), and an item whose index is refused is
retried, never rejected for good; a mapping error of one event still is."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from soc_core.bounds import ORIGINAL_DATASET, ORIGINAL_TIMESTAMP, EventBounds
from soc_core.datasets import allowed_datasets
from soc_core.events import Event, format_timestamp, make_event, utcnow
from soc_core.store import ElasticsearchStore
from soc_core.store.elasticsearch import event_index, index_refused
from tests.conftest import unique_prefix

SHARD_LIMIT = (
    "Validation Failed: 1: this action would add [1] shards, but this cluster currently has [1000]/[1000] "
    "maximum normal shards open; for more information, see https://www.elastic.co/docs/..."
)


def test_h11_index_refusals_are_told_apart_from_the_events_own_faults() -> None:
    assert index_refused("validation_exception", SHARD_LIMIT)
    assert index_refused("index_closed_exception", "closed")
    assert index_refused("cluster_block_exception", "index [x] blocked by: [FORBIDDEN/8/index write (api)];")
    assert index_refused("index_not_found_exception", "no such index [x] and [action.auto_create_index] is [false]")
    assert not index_refused("validation_exception", "Validation Failed: 1: id is too long")
    assert not index_refused("document_parsing_exception", "[1:2] failed to parse field [user] of type [keyword]")
    assert not index_refused("mapper_parsing_exception", "failed to parse")


@pytest.fixture
def bounded_store(elasticsearch_url: str) -> Iterator[ElasticsearchStore]:
    bounds = EventBounds(allowed_datasets(["app.audit"]), timedelta(days=2), timedelta(hours=1))
    store = ElasticsearchStore(elasticsearch_url, prefix=unique_prefix(), request_timeout=60, bounds=bounds)
    store.setup()
    yield store
    for name in store.client.indices.get(index=f"{store.prefix}-*", allow_no_indices=True):
        store.client.indices.delete(index=name)
    for template in ("events", "docs", "docs-checkpoints"):
        store.client.indices.delete_index_template(name=f"{store.prefix}-{template}")
    store.close()


def app_event(seq: int, dataset: str, days_ago: float, **fields: object) -> Event:
    return make_event(
        tenant="police",
        dataset=dataset,
        sensor_id="police-s1",
        source="test",
        position=seq,
        raw=f"seq={seq}".encode(),
        timestamp=utcnow() - timedelta(days=days_ago),
        fields={"message": f"seq={seq}", **fields},
    )


@pytest.mark.elasticsearch
def test_h11_elasticsearch_write_path_keeps_events_within_the_bounds(bounded_store: ElasticsearchStore) -> None:
    store = bounded_store
    # 30 datasets x 20 days, most of them far back: unbounded this is 600 indices
    given = [app_event(seq, f"app.d{seq % 30}", (seq % 20) * 20) for seq in range(600)]
    given += [app_event(1000, "app.audit", 0), app_event(1001, "system.auth", -30)]  # allowed; 30 days ahead
    result = store.add_events(given)
    assert [item.status for item in result.items] == ["created"] * len(given)
    store.refresh()
    stored = {hit["_id"]: hit["_source"] for hit in _all(store)}
    assert sorted(stored) == sorted(e["event.id"] for e in given)
    indices = set(store.client.indices.get(index=f"{store.prefix}-events-*"))
    today = format_timestamp(utcnow())[:10].replace("-", ".")
    datasets = {name.split("-")[3] for name in indices}
    assert datasets <= {"unknown", "app.audit", "system.auth"}
    assert len(indices) <= 3 * 4  # 3 datasets x the days of [now - 2 days, now + 1 hour]
    for source in given:
        kept = stored[source["event.id"]]
        if source["event.dataset"].startswith("app.d"):
            assert kept["event.dataset"] == "unknown" and kept[ORIGINAL_DATASET] == source["event.dataset"]
        if (
            source["@timestamp"] < format_timestamp(utcnow() - timedelta(days=2))
            or source["event.id"] == given[-1]["event.id"]
        ):
            assert kept[ORIGINAL_TIMESTAMP] == source["@timestamp"]
            assert kept["@timestamp"][:10].replace("-", ".") >= today
    assert stored[given[-2]["event.id"]]["event.dataset"] == "app.audit"
    # sent again (a redelivery): the same ids, stored once
    again = store.add_events(given[:50])
    assert {item.status for item in again.items} == {"duplicate"}


@pytest.mark.elasticsearch
def test_h11_a_refused_index_is_retried_and_a_mapping_error_rejected(es_store: ElasticsearchStore) -> None:
    store, client = es_store, es_store.client
    first, closed, blocked = app_event(1, "system.auth", 0), app_event(2, "system.auth", 0), app_event(3, "app.x", 0)
    seed_blocked = app_event(4, "app.x", 0, **{"user.name": "alice"})  # `user` is an object in that index
    assert {item.status for item in store.add_events([first, seed_blocked]).items} == {"created"}
    client.indices.close(index=event_index(first, store.prefix))
    client.indices.put_settings(index=event_index(blocked, store.prefix), settings={"index.blocks.write": True})
    conflicting = app_event(5, "app.x", 0, user="not-an-object")
    result = store.add_events([closed, blocked, conflicting])
    statuses = [(item.status, (item.reason or "").split(":")[0]) for item in result.items]
    assert statuses == [
        ("retry", "400 index_closed_exception"),
        ("retry", "403 cluster_block_exception"),
        ("retry", "403 cluster_block_exception"),  # its index is blocked: retried, even though it also would not map
    ]
    client.indices.open(index=event_index(first, store.prefix))
    client.indices.put_settings(index=event_index(blocked, store.prefix), settings={"index.blocks.write": None})
    client.cluster.health(index=f"{store.prefix}-events-*", wait_for_status="green", timeout="30s")
    result = store.add_events([closed, blocked, conflicting])
    assert [item.status for item in result.items] == ["created", "created", "rejected"]
    assert "document_parsing_exception" in (result.items[2].reason or "")


def _all(store: ElasticsearchStore) -> list[dict[str, Any]]:
    """The raw search hits (JSON as the node sends it: ``_id`` and ``_source`` with the event)."""
    body = store.client.search(index=f"{store.prefix}-events-*", size=10_000, query={"match_all": {}})
    hits: list[dict[str, Any]] = body["hits"]["hits"]
    return hits
