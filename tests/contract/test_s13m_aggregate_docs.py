"""Store.aggregate_docs (issue 13, item 1): the same counts on every store, tenant-scoped."""

from __future__ import annotations

import pytest

from soc_core.errors import InvalidInput
from soc_core.store import Store
from soc_core.store.docquery import FieldStats, all_of, between, doc_query, exists, missing, term


def seed(store: Store) -> None:
    rows = [
        # id, tenant, level, created_at, ack_ms, tags, source ips
        (
            "a1",
            "police",
            "high",
            "2026-11-23T00:00:00.000Z",
            60_000,
            ["attack.t1110", "attack.credential-access"],
            ["10.0.0.1"],
        ),
        ("a2", "police", "high", "2026-11-24T10:00:00.000Z", 120_000, ["attack.t1110"], ["10.0.0.1", "10.0.0.2"]),
        ("a3", "police", "low", "2026-11-29T16:59:59.999Z", None, ["cve.2021"], []),
        ("a4", "police", "critical", "2026-11-22T16:59:59.999Z", 1_000, ["attack.t1110", "attack.t1110"], ["10.0.0.3"]),
        ("h1", "health", "high", "2026-11-25T00:00:00.000Z", 5_000, ["attack.t1059"], ["10.9.9.9"]),
    ]
    for doc_id, tenant, level, created, ack_ms, tags, ips in rows:
        body: dict[str, object] = {
            "tenant": tenant,
            "rule.level": level,
            "created_at": created,
            "rule.tags": tags,
            "entities": {"source.ip": ips} if ips else {},
            "status": "new" if ack_ms is None else "acknowledged",
        }
        if ack_ms is not None:
            body["time_to_acknowledge_ms"] = ack_ms
        store.create_doc("alerts", body, doc_id=doc_id)
    store.refresh()


WEEK = between("created_at", gte="2026-11-22T17:00:00.000Z", lt="2026-11-29T17:00:00.000Z")


def test_s13m_total_filters_and_stats(store: Store) -> None:
    seed(store)
    groups = store.aggregate_docs(
        doc_query("alerts", tenants=["police"], where=[WEEK]),
        filters={"acked": exists("time_to_acknowledge_ms"), "slow": between("time_to_acknowledge_ms", gt=60_000)},
        stats={"ack": "time_to_acknowledge_ms"},
    )
    assert [(g.key, g.count, g.filters) for g in groups] == [("total", 3, {"acked": 2, "slow": 1})]
    assert groups[0].stats["ack"] == FieldStats(2, 180_000.0, 60_000.0, 120_000.0)
    assert groups[0].stats["ack"].mean == 90_000.0


def test_s13m_group_by_field_list_and_nested_path(store: Store) -> None:
    seed(store)
    police = doc_query("alerts", tenants=["police"])
    levels = store.aggregate_docs(police, by="rule.level", filters={"new": term("status", "new")})
    assert [(g.key, g.count, g.filters["new"]) for g in levels] == [
        ("high", 2, 0),
        ("critical", 1, 0),
        ("low", 1, 1),
    ]
    # a list counts a document once per distinct value; prefix keeps only the values wanted
    tags = store.aggregate_docs(police, by="rule.tags", prefix="attack.")
    assert [(g.key, g.count) for g in tags] == [("attack.t1110", 3), ("attack.credential-access", 1)]
    sources = store.aggregate_docs(police, by=("entities", "source.ip"), limit=2)
    assert [(g.key, g.count) for g in sources] == [("10.0.0.1", 2), ("10.0.0.2", 1)]


def test_s13m_tenant_scope_and_empty(store: Store) -> None:
    seed(store)
    province = store.aggregate_docs(doc_query("alerts", tenants=None, province_wide=True), by="tenant")
    assert [(g.key, g.count) for g in province] == [("police", 4), ("health", 1)]
    health = store.aggregate_docs(doc_query("alerts", tenants=["health"]), by=("entities", "source.ip"))
    assert [(g.key, g.count) for g in health] == [("10.9.9.9", 1)]
    none = store.aggregate_docs(
        doc_query("cases", tenants=["police"], where=[missing("closed_at")]),
        filters={"x": exists("closed_at")},
        stats={"n": "count"},
    )
    assert [(g.key, g.count, g.filters, g.stats) for g in none] == [("total", 0, {"x": 0}, {"n": FieldStats()})]
    assert store.aggregate_docs(doc_query("cases", tenants=["police"]), by="tenant") == []


def test_s13m_conditions_combine(store: Store) -> None:
    seed(store)
    query = doc_query(
        "alerts",
        tenants=["police", "health"],
        where=[all_of(term("rule.level", "high", "critical"), missing("time_to_acknowledge_ms"))],
    )
    assert store.aggregate_docs(query)[0].count == 0
    query = doc_query("alerts", tenants=["police", "health"], where=[term("rule.level", "high")])
    assert store.aggregate_docs(query, filters={"late": between("created_at", gte="2026-11-24T00:00:00.000Z")})[
        0
    ].filters == {"late": 2}


def test_s13m_doc_query_needs_tenants() -> None:
    with pytest.raises(InvalidInput, match="tenants"):
        doc_query("alerts", tenants=None)
    with pytest.raises(InvalidInput, match="no tenant"):
        doc_query("alerts", tenants=[])
    with pytest.raises(InvalidInput, match="bad field name"):
        doc_query("alerts", tenants=["police"], where=[exists("x') OR 1=1 --")])


def test_s13m_count_events_by_first_field_present(store: Store) -> None:
    from soc_core.events import make_event  # noqa: PLC0415
    from soc_core.query import event_query  # noqa: PLC0415

    events = []
    for number, (tenant, observer, through_api) in enumerate(
        [("police", "s1", None), ("police", "s1", None), ("police", "conf", "s2"), ("police", "s2", None),
         ("police", "conf", "s3"), ("health", "s1", None)]
    ):  # fmt: skip
        event = make_event(
            tenant=tenant, dataset="system.auth", sensor_id=observer, source="x", position=number, raw=b"x"
        )
        if through_api is not None:
            event["observer.id"] = through_api
        events.append(event)
    assert store.add_events(events).created == len(events)
    store.refresh()
    found = store.count_events(event_query(tenants=["police"]), by=("observer.id", "observer.name"), limit=10)
    assert [(b.key, b.count) for b in found] == [("s1", 2), ("s2", 2), ("s3", 1)]
