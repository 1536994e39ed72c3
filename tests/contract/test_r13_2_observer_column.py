"""Item 2 of the r13 brief: the weekly report's events-per-sensor count on SQLite reads an
``observer`` column kept by the write path (schema version 2) and an index, not every event's JSON
(the province's report over 1M events took 12.5 s, 10 of them that count); a version-1 file is
migrated with its data. The count means the same on both stores (observer.id, else
observer.name, as text)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from soc_core.events import make_event
from soc_core.query import event_query
from soc_core.store import SqliteStore, Store
from soc_core.store.sqlite import OBSERVER, SCHEMA_VERSION

V1_EVENTS = """
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, tenant TEXT NOT NULL, ts TEXT NOT NULL,
    dataset TEXT NOT NULL, message TEXT, doc TEXT NOT NULL, UNIQUE (tenant, id)
);
CREATE INDEX events_tenant_ts ON events (tenant, ts, id);
CREATE INDEX events_ts ON events (ts, id);
PRAGMA user_version = 1;
"""
# (observer fields, the sensor it is counted under)
SENDERS: list[tuple[dict[str, Any], str | None]] = [
    ({"observer.id": "s-1", "observer.name": "edge"}, "s-1"),
    ({"observer.id": "s-1"}, "s-1"),
    ({"observer.name": "edge-2"}, "edge-2"),
    ({"observer.id": None, "observer.name": "edge-2"}, "edge-2"),
    ({"observer.id": 7}, "7"),  # not text: as SQLite's CAST writes it, on both stores
    ({}, None),
]


def events(tenant: str = "police") -> list[dict[str, Any]]:
    found = []
    for n, (fields, _) in enumerate(SENDERS):
        event = make_event(
            tenant=tenant, dataset="system.auth", sensor_id="x", source="f", position=n, raw=b"r",
            fields={"message": f"m{n}"},
        )  # fmt: skip
        del event["observer.name"]  # make_event names the sensor; these events name their own
        event.update(fields)
        found.append(event)
    return found


def expected() -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for _, sensor in SENDERS:
        if sensor is not None:
            counts[sensor] = counts.get(sensor, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def test_r13_2_events_per_sensor_mean_the_same_on_both_stores(store: Store) -> None:
    store.add_events(events())
    store.refresh()
    found = store.count_events(event_query(tenants=["police"]), by=OBSERVER, limit=10)
    assert [(bucket.key, bucket.count) for bucket in found] == expected()


def test_r13_2_sqlite_count_reads_the_index_not_the_documents(sqlite_store: SqliteStore) -> None:
    sqlite_store.add_events(events())
    columns = sqlite_store.select("SELECT observer FROM events ORDER BY seq")
    assert [value for (value,) in columns] == [sensor for _, sensor in SENDERS]
    for tenants, index in ((["police"], "events_tenant_ts"), (None, "events_ts")):
        where = "events.tenant IN (?) AND " if tenants else ""
        plan = " ".join(
            str(row[-1])
            for row in sqlite_store.select(
                "EXPLAIN QUERY PLAN SELECT events.observer AS k, count(*) AS n FROM events "
                f"WHERE 1 AND {where}events.ts >= ? AND events.ts < ? AND k IS NOT NULL GROUP BY k",
                [*(tenants or []), "2026-01-01", "2027-01-01"],
            )
        )
        assert f"COVERING INDEX {index}" in plan, f"the count reads more than the index: {plan}"


def test_r13_2_version_1_file_is_migrated_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(V1_EVENTS)
    for n, event in enumerate(events()):
        conn.execute(
            "INSERT INTO events (id, tenant, ts, dataset, message, doc) VALUES (?, 'police', ?, 'system.auth', ?, ?)",
            (event["event.id"], event["@timestamp"], f"m{n}", json.dumps(event)),
        )
    conn.close()
    store = SqliteStore(path)
    store.setup()
    store.setup()  # a second process starting on the migrated file changes nothing
    try:
        assert store.select("PRAGMA user_version") == [(SCHEMA_VERSION,)] and SCHEMA_VERSION == 2
        assert [value for (value,) in store.select("SELECT observer FROM events ORDER BY seq")] == [
            sensor for _, sensor in SENDERS
        ]
        found = store.count_events(event_query(tenants=["police"]), by=OBSERVER, limit=10)
        assert [(bucket.key, bucket.count) for bucket in found] == expected()
        indexed = {row[2] for row in store.select("PRAGMA index_info(events_ts)")}
        assert indexed == {"ts", "id", "observer"}, indexed
        store.add_events(events("health"))  # and the migrated file takes new events as a new one
        assert store.select("SELECT count(*) FROM events WHERE tenant = 'health' AND observer = 's-1'") == [(2,)]
    finally:
        store.close()
