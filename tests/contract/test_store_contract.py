"""One contract for every store: run on SQLite and on a real Elasticsearch node."""

from __future__ import annotations

import unicodedata
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from soc_core.errors import Conflict, NotFound, StoreError
from soc_core.events import Event, format_timestamp, make_event
from soc_core.query import QueryError, event_query
from soc_core.store import SqliteStore, Store
from soc_core.store.base import Doc, DocWrite, SqlQuery
from soc_core.store.fields import FieldTypes

BASE = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def sample_events(tenant: str, count: int, *, day_offset: int = 0, sensor: str = "s1") -> list[Event]:
    events = []
    for i in range(count):
        outcome = "failure" if i % 3 else "success"
        events.append(
            make_event(
                tenant=tenant,
                dataset="system.auth",
                sensor_id=sensor,
                source="/var/log/auth.log",
                position=i + day_offset * 100_000,
                raw=f"line {i}".encode(),
                timestamp=BASE + timedelta(days=day_offset, minutes=i),
                fields={
                    "message": f"{'Failed' if i % 3 else 'Accepted'} password for user{i % 4} from 10.1.0.{i} port 22",
                    "source.ip": f"10.1.0.{i}",
                    "source.port": 40000 + i,
                    "user.name": f"User{i % 4}",
                    "event.outcome": outcome,
                    "event.category": ["authentication"],
                    "host.name": "web-01",
                },
            )
        )
    return events


def wait_visible(store: Store) -> None:
    store.refresh()


def test_add_is_idempotent(store: Store) -> None:
    events = sample_events("police", 20)
    first = store.add_events(events)
    assert first.created == 20 and first.duplicates == 0
    second = store.add_events(events)
    assert second.created == 0 and second.duplicates == 20
    wait_visible(store)
    total = store.count_events(event_query(tenants=["police"]))
    assert total[0].count == 20


def test_invalid_events_are_rejected_with_reason_and_others_stored(store: Store) -> None:
    events = sample_events("police", 3)
    broken = dict(events[1])
    del broken["@timestamp"]
    wrong_tenant = dict(events[2])
    wrong_tenant["organization.id"] = "Not-A-Tenant"
    result = store.add_events([events[0], broken, wrong_tenant])
    assert [item.status for item in result.items] == ["created", "rejected", "rejected"]
    assert "@timestamp" in (result.items[1].reason or "")
    assert "organization.id" in (result.items[2].reason or "")


def test_tenants_never_see_each_other(store: Store) -> None:
    police, health = sample_events("police", 5), sample_events("health", 7, sensor="s2")
    store.add_events(police + health)
    wait_visible(store)
    found = store.search_events(event_query(tenants=["police"], size=100)).items
    assert {e["organization.id"] for e in found} == {"police"}
    assert len(found) == 5
    assert store.get_events([health[0]["event.id"]], tenants=("police",)) == []
    assert len(store.get_events([health[0]["event.id"]], tenants=("health",))) == 1
    both = store.count_events(event_query(tenants=["police", "health"]))
    assert both[0].count == 12
    by_user = store.count_events(event_query(tenants=["police"]), by="organization.id")
    assert [(b.key, b.count) for b in by_user] == [("police", 5)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", 12),
        ("user.name:user1", 3),  # case-insensitive equality
        ("user.name:USER*", 12),  # wildcard
        ("event.outcome:failure", 8),
        ("NOT event.outcome:failure", 4),
        ("event.outcome:success OR user.name:user1", 6),
        ("source.ip:10.1.0.0/30", 4),  # CIDR on an ip field
        ("source.port:[40002 TO 40005]", 4),
        ("source.port:>40009", 2),
        ("source.port:40003", 1),
        ("event.category:authentication", 12),  # list-valued field
        ("failed password", 8),  # words in message
        ('message:"password for user2"', 3),
        ("user.name:*", 12),
        ("error.message:*", 0),
        ("host.name:web-01 AND -user.name:user0", 9),
    ],
)
def test_query_language_means_the_same_everywhere(store: Store, query: str, expected: int) -> None:
    store.add_events(sample_events("police", 12))
    wait_visible(store)
    assert store.count_events(event_query(tenants=["police"], query=query))[0].count == expected
    page = store.search_events(event_query(tenants=["police"], query=query, size=100))
    assert len(page.items) == expected


def test_bad_queries_are_refused_with_a_reason() -> None:
    with pytest.raises(QueryError, match="leading wildcard"):
        event_query(tenants=["police"], query="user.name:*root")
    with pytest.raises(QueryError, match="parse"):
        event_query(tenants=["police"], query='user.name:"unterminated')
    with pytest.raises(QueryError, match="tenant"):
        event_query(tenants=[], query="")
    with pytest.raises(QueryError, match="tenants"):
        event_query(tenants=None, query="")


def test_time_range_and_cursor_pagination(store: Store) -> None:
    store.add_events(sample_events("police", 25))
    wait_visible(store)
    seen: list[str] = []
    cursor = None
    while True:
        page = store.search_events(event_query(tenants=["police"], size=7, cursor=cursor))
        seen.extend(e["event.id"] for e in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == 25 and len(set(seen)) == 25
    stamps = [e["@timestamp"] for e in store.search_events(event_query(tenants=["police"], size=25)).items]
    assert stamps == sorted(stamps, reverse=True)
    window = event_query(tenants=["police"], start=BASE + timedelta(minutes=5), end=BASE + timedelta(minutes=10))
    assert store.count_events(window)[0].count == 5
    ascending = store.search_events(event_query(tenants=["police"], size=3, ascending=True)).items
    assert [e["source.port"] for e in ascending] == [40000, 40001, 40002]


def test_counts_by_field_and_day(store: Store) -> None:
    store.add_events(sample_events("police", 6) + sample_events("police", 4, day_offset=1))
    wait_visible(store)
    days = store.count_events(event_query(tenants=["police"]), interval="day")
    assert [(b.key, b.count) for b in days] == [("2026-11-20T00:00:00.000Z", 6), ("2026-11-21T00:00:00.000Z", 4)]
    top = store.count_events(event_query(tenants=["police"]), by="event.outcome", limit=5)
    assert [(b.key, b.count) for b in top] == [("failure", 6), ("success", 4)]


def test_read_new_events_returns_each_event_once(store: Store) -> None:
    store.add_events(sample_events("police", 30))
    store.add_events(sample_events("health", 10, sensor="s2"))
    got: list[str] = []
    checkpoint = None
    for _ in range(20):
        batch, checkpoint = store.read_new_events(checkpoint, limit=7)
        got.extend(e["event.id"] for e in batch)
        if not batch:
            break
    assert len(got) == 40 and len(set(got)) == 40
    more = sample_events("police", 5, day_offset=3)
    store.add_events(more)
    batch, checkpoint = store.read_new_events(checkpoint, limit=100)
    assert sorted(e["event.id"] for e in batch) == sorted(e["event.id"] for e in more)
    batch, _ = store.read_new_events(checkpoint, limit=100)
    assert batch == []


def test_a_plan_read_block_by_block_anywhere_is_the_batch_read_new_events_gives(store: Store) -> None:
    store.add_events(sample_events("police", 30))
    store.add_events(sample_events("health", 10, sensor="s2", day_offset=1))
    plan, checkpoint = store.plan_new_events(None, limit=25)
    whole = store.read_plan(plan)
    assert len(whole) == 25 and len(plan.blocks) >= 3
    assert [position for position, _ in whole] == sorted(position for position, _ in whole)
    backwards = [item for number in reversed(range(len(plan.blocks))) for item in store.read_plan(plan, [number])]
    assert sorted(backwards, key=lambda item: item[0]) == whole  # each block once, positions global
    elsewhere = store.reopened()  # as a worker process reads it, on its own connections
    try:
        assert elsewhere.read_plan(plan, range(len(plan.blocks))) == whole
    finally:
        elsewhere.close()
    assert store.read_new_events(None, limit=25) == ([event for _, event in whole], checkpoint)
    rest, checkpoint = store.read_new_events(checkpoint, limit=100)
    assert sorted(e["event.id"] for e in rest + [event for _, event in whole]) == sorted(
        e["event.id"] for e in sample_events("police", 30) + sample_events("health", 10, sensor="s2", day_offset=1)
    )
    empty, same = store.plan_new_events(checkpoint, limit=100)
    assert (empty.blocks, same, store.read_plan(empty)) == ((), checkpoint, [])


def test_retention_deletes_old_events(store: Store) -> None:
    store.add_events(sample_events("police", 3) + sample_events("police", 2, day_offset=5))
    wait_visible(store)
    store.delete_events_before(BASE + timedelta(days=2))
    wait_visible(store)
    assert store.count_events(event_query(tenants=["police"]))[0].count == 2


def test_documents_use_optimistic_concurrency(store: Store) -> None:
    doc = store.create_doc("alerts", {"tenant": "police", "created_at": "2026-11-20T08:00:00.000Z", "status": "new"})
    assert store.get_doc("alerts", doc.id).body["status"] == "new"
    updated = store.update_doc("alerts", doc.id, {**doc.body, "status": "acknowledged"}, version=doc.version)
    assert updated.version != doc.version
    with pytest.raises(Conflict):
        store.update_doc("alerts", doc.id, {**doc.body, "status": "resolved"}, version=doc.version)
    assert store.get_doc("alerts", doc.id).body["status"] == "acknowledged"
    with pytest.raises(Conflict):
        store.create_doc("alerts", {"tenant": "police"}, doc_id=doc.id)
    with pytest.raises(NotFound):
        store.get_doc("alerts", "no-such-id")
    with pytest.raises(NotFound):
        store.update_doc("alerts", "no-such-id", {"tenant": "police"}, version=updated.version)
    with pytest.raises(StoreError):
        store.get_doc("not_a_kind", doc.id)
    store.put_doc("checkpoints", "engine", {"position": 1})
    store.put_doc("checkpoints", "engine", {"position": 2})
    assert store.get_doc("checkpoints", "engine").body == {"position": 2}
    store.delete_doc("alerts", doc.id)
    store.delete_doc("alerts", doc.id)
    with pytest.raises(NotFound):
        store.get_doc("alerts", doc.id)


def test_write_docs_creates_and_updates_in_order_with_a_conflict_per_write(store: Store) -> None:
    body = {"tenant": "police", "created_at": "2026-11-20T08:00:00.000Z", "status": "new"}
    old = store.create_doc("alerts", body, doc_id="a-old")
    stale = store.create_doc("alerts", body, doc_id="a-stale")
    store.update_doc("alerts", "a-stale", {**body, "status": "acknowledged"}, version=stale.version)
    written = store.write_docs(
        "alerts",
        [
            DocWrite("a-new", {**body, "status": "new"}),
            DocWrite("a-old", {**body, "status": "in_progress"}, old.version),
            DocWrite("a-stale", {**body, "status": "resolved"}, stale.version),  # changed since read
            DocWrite("a-old", {**body, "status": "false_positive"}, old.version),  # its version was just used
            DocWrite("a-new", {**body, "status": "new"}),  # exists now
            DocWrite("a-gone", {**body, "status": "resolved"}, old.version),
            DocWrite("a-old", {**body}, "not-a-version"),
        ],
    )
    assert [type(result).__name__ for result in written] == ["Doc", "Doc", *["Conflict"] * 5]
    created, updated = written[0], written[1]
    assert isinstance(created, Doc) and isinstance(updated, Doc) and updated.version != old.version
    store.refresh()
    assert store.get_doc("alerts", "a-new").body["status"] == "new"
    assert store.get_doc("alerts", "a-old").body["status"] == "in_progress"
    assert store.get_doc("alerts", "a-stale").body["status"] == "acknowledged"
    with pytest.raises(NotFound):
        store.get_doc("alerts", "a-gone")
    again = store.write_docs("alerts", [DocWrite("a-old", {**body, "status": "resolved"}, updated.version)])
    assert isinstance(again[0], Doc) and store.get_doc("alerts", "a-old").body["status"] == "resolved"
    assert store.write_docs("alerts", []) == []


def test_list_documents_filters_sorts_and_pages(store: Store) -> None:
    for i in range(9):
        store.create_doc(
            "alerts",
            {
                "tenant": "police" if i % 3 else "health",
                "created_at": f"2026-11-20T08:00:{i:02d}.000Z",
                "status": "new" if i % 2 else "resolved",
                "tags": ["ssh", f"t{i}"],
            },
            doc_id=f"a{i}",
        )
    police = store.list_docs("alerts", tenants=("police",), size=100).items
    assert [d.id for d in police] == ["a8", "a7", "a5", "a4", "a2", "a1"]
    new_police = store.list_docs("alerts", tenants=("police",), filters={"status": "new"}).items
    assert [d.id for d in new_police] == ["a7", "a5", "a1"]
    tagged = store.list_docs("alerts", tenants=None, filters={"tags": ["t3", "t4"]}).items
    assert sorted(d.id for d in tagged) == ["a3", "a4"]
    pages: list[str] = []
    cursor = None
    while True:
        page = store.list_docs("alerts", size=4, cursor=cursor, descending=False)
        pages.extend(d.id for d in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == [f"a{i}" for i in range(9)]
    first = page.items[0] if page.items else None
    assert first is not None and first.version


def test_large_batches_keep_per_item_results_in_order(store: Store) -> None:
    events = sample_events("police", 4500)
    broken = dict(events[2345])
    broken["event.kind"] = "bogus"
    events[2345] = broken
    result = store.add_events(events)
    assert [item.id for item in result.items] == [e["event.id"] for e in events]
    assert result.created == 4499 and result.items[2345].status == "rejected"
    wait_visible(store)
    assert store.count_events(event_query(tenants=["police"]))[0].count == 4499


# issue 10 item 1: case-insensitive matching of non-ASCII text, the same on every store. "Equal"
# means equal after soc_core.casefolding.fold: NFC, then simple case folding (one character for
# one), so precomposed and decomposed Vietnamese agree, ß is not SS and Turkish İ is not i/I.
def _nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


UNICODE_NAMES = {
    "vi-upper": "NGUYỄN VĂN AN",
    "vi-lower": "nguyễn văn an",
    "vi-upper-nfd": _nfd("NGUYỄN VĂN AN"),
    "vi-lower-nfd": _nfd("nguyễn văn an"),
    "vi-other": "Nguyễn Thị Bình",
    "vi-no-marks": "nguyen van an",
    "de-capital-sharp-s": "STRAẞE",
    "de-sharp-s": "straße",
    "de-double-s": "STRASSE",
    "tr-dotted-capital": "İSTANBUL",
    "tr-dotless": "ıstanbul",
    "ascii-lower": "istanbul",
    "ascii-upper": "ISTANBUL",
    "el-upper": "ΟΔΥΣΣΕΥΣ",
    "el-final-sigma": "οδυσσευς",
}


def unicode_events() -> list[Event]:
    return [
        make_event(
            tenant="police",
            dataset="system.auth",
            sensor_id="s1",
            source="unicode",
            position=number,
            raw=key.encode(),
            timestamp=BASE + timedelta(minutes=number),
            fields={"user.name": name, "labels.case": key, "message": f"login by {name}"},
        )
        for number, (key, name) in enumerate(UNICODE_NAMES.items())
    ]


VI_FULL = {"vi-upper", "vi-lower", "vi-upper-nfd", "vi-lower-nfd"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('user.name:"nguyễn văn an"', VI_FULL),
        ('user.name:"NGUYỄN VĂN AN"', VI_FULL),
        (f'user.name:"{_nfd("Nguyễn Văn An")}"', VI_FULL),  # typed with combining marks
        ("user.name:nguyễn*", VI_FULL | {"vi-other"}),
        ("user.name:NGUYỄ*", VI_FULL | {"vi-other"}),  # the issue's case: missed even in stored case
        (f"user.name:{_nfd('NGUYỄ')}*", VI_FULL | {"vi-other"}),
        ("user.name:ngu?ễn*", VI_FULL | {"vi-other"}),
        ("user.name:straße", {"de-capital-sharp-s", "de-sharp-s"}),  # simple folding: ß is not ss
        ("user.name:STRASSE", {"de-double-s"}),
        ("user.name:istanbul", {"ascii-lower", "ascii-upper"}),  # İ and ı are letters of their own
        ("user.name:İSTANBUL", {"tr-dotted-capital"}),
        ("user.name:ıSTANBUL", {"tr-dotless"}),
        ("user.name:οδυσσευσ", {"el-upper", "el-final-sigma"}),  # σ, ς and Σ fold together
        ("user.name:ΟΔΥΣ*", {"el-upper", "el-final-sigma"}),
    ],
)
def test_issue10_unicode_hunt_folds_case_beyond_ascii(store: Store, query: str, expected: set[str]) -> None:
    store.add_events(unicode_events())
    wait_visible(store)
    page = store.search_events(event_query(tenants=["police"], query=query, size=100))
    assert {event["labels.case"] for event in page.items} == expected
    assert store.count_events(event_query(tenants=["police"], query=query))[0].count == len(expected)


# issue 10 item 2: rule queries behind the Store ------------------------------------------------
class _RuleQuery:
    """A RuleQuery as detections.targets builds one, written out by hand for the contract."""

    where = "contract.yml"

    def __init__(self, sql: str = "1", params: tuple[object, ...] = (), dsl: dict[str, Any] | None = None) -> None:
        self._sql = SqlQuery(sql, params)
        self._dsl = dsl or {"match_all": {}}
        self.asked_types: list[str] = []

    def sql(self) -> SqlQuery:
        return self._sql

    def fields(self) -> list[str]:
        return ["user.name"]

    def dsl(self, field_types: FieldTypes) -> dict[str, Any]:
        self.asked_types.append(field_types("user.name"))
        return self._dsl


def _keys(pages: list[list[Event]]) -> list[tuple[str, str]]:
    return [(event["organization.id"], event["event.id"]) for page in pages for event in page]


def test_i10_2_rule_query_pages_keep_to_the_tenants_and_return_each_event_once(store: Store) -> None:
    # the same ids at the same instants in two agencies: ties are broken by tenant, not lost
    store.add_events(sample_events("police", 25) + sample_events("health", 25))
    wait_visible(store)
    query = _RuleQuery()
    police = list(store.rule_query_pages(query, tenants=("police",), page_size=7))
    assert [len(page) for page in police] == [7, 7, 7, 4]
    assert {tenant for tenant, _ in _keys(police)} == {"police"} and len(set(_keys(police))) == 25
    stamps = [event["@timestamp"] for page in police for event in page]
    assert stamps == sorted(stamps)
    for scope in (("health", "police"), None):  # two agencies; province-wide (`*`)
        both = _keys(list(store.rule_query_pages(query, tenants=scope, page_size=6)))
        assert len(both) == 50 and len(set(both)) == 50, scope
    assert list(store.rule_query_pages(query, tenants=("education",), page_size=6)) == []
    with pytest.raises(QueryError):  # an empty scope is refused, never read as "everything"
        list(store.rule_query_pages(query, tenants=(), page_size=6))


def test_i10_2_rule_query_pages_run_the_rule_in_the_time_range_with_the_fields_asked(store: Store) -> None:
    store.add_events(sample_events("police", 20) + sample_events("health", 20))
    wait_visible(store)
    # user.name = user1, folded; the store supplies the field types the DSL is compiled for
    query = _RuleQuery(
        "EXISTS (SELECT 1 FROM json_each(events.doc, ?) AS v WHERE value_fold(v.type, v.value) = ?)",
        ('$."user.name"', "user1"),
        {"term": {"user.name": {"value": "user1", "case_insensitive": True}}},
    )
    pages = list(
        store.rule_query_pages(
            query,
            tenants=("police",),
            start=BASE + timedelta(minutes=2),
            end=BASE + timedelta(minutes=17),
            fields=("event.id", "@timestamp"),
            page_size=2,
        )
    )
    events = [event for page in pages for event in page]
    assert [event["@timestamp"] for event in events] == [
        format_timestamp(BASE + timedelta(minutes=minute)) for minute in (5, 9, 13)
    ]
    assert all(set(event) == {"event.id", "@timestamp"} for event in events)
    assert query.asked_types in ([], ["keyword"])  # SQLite asks for none


def test_i10_2_sqlite_has_the_rule_functions_on_every_connection(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "events.db")
    store.setup()
    store.add_events(sample_events("police", 4))
    query = _RuleQuery(
        "EXISTS (SELECT 1 FROM json_each(events.doc, '$.message') AS v WHERE v.value REGEXP ?)"
        " AND sigma_ts_part('text', json_extract(events.doc, '$.\"@timestamp\"'), 'MINUTE') >= ?"
        " AND sigma_fieldref('a', 'a', 'equals')",
        ("^Failed", 1),
    )

    def count(on: SqliteStore) -> int:
        return sum(len(page) for page in on.rule_query_pages(query, tenants=("police",)))

    with ThreadPoolExecutor(1) as pool:  # another thread: another connection
        assert count(store) == pool.submit(count, store).result() == count(store.reopened()) == 2
