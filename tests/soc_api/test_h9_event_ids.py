"""Issue 11 item 9: ``event.id`` is unique per agency, not across agencies. One agency's sensor
cannot suppress another agency's event by sending its id first, nor probe which ids exist; an
alert's matched events are looked up in its own agency; an old SQLite file is migrated with
its data."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from detections import lifecycle
from detections.engine import DetectionEngine
from detections.loader import shipped_rules_dir
from soc_api.main import create_app
from soc_api.services import accounts
from soc_core.auth import PROVINCE, Membership
from soc_core.config import Settings
from soc_core.events import make_event
from soc_core.query import event_query
from soc_core.store import SqliteStore, Store
from soc_core.store.sqlite import SCHEMA_VERSION

PASSWORD = "a-very-long-password"
BRUTE_FORCE = "74d45926-2b16-4397-acdf-3728c2a10647"


@pytest.fixture
def client(store: Store) -> TestClient:
    for tenant in ("police", "health"):
        accounts.add_tenant(store, tenant_id=tenant, name=tenant)
        accounts.add_user(
            store, username=f"ana_{tenant}", password=PASSWORD, memberships=[Membership(tenant, "analyst")]
        )
    accounts.add_user(store, username="boss", password=PASSWORD, memberships=[Membership(PROVINCE, "admin")])
    return TestClient(create_app(Settings(), store))


def login(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def sensor_key(client: TestClient, tenant: str) -> dict[str, str]:
    boss = login(client, "boss")
    response = client.post("/api/sensors", json={"name": f"{tenant}-s1", "tenant": tenant}, headers=boss)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['api_key']}"}


def sent(event_id: str, text: str) -> dict[str, Any]:
    return {
        "@timestamp": "2026-11-25T10:00:00.000Z",
        "event.id": event_id,
        "event.dataset": "system.auth",
        "message": text,
    }


def test_h9_another_agency_cannot_suppress_or_probe_an_event_id(client: TestClient, store: Store) -> None:
    police, health = sensor_key(client, "police"), sensor_key(client, "health")
    first = client.post("/api/ingest", json={"events": [sent("shared-1", "police sees this")]}, headers=police)
    assert first.json() == {"created": 1, "duplicates": 0, "rejected": []}
    # health's own event with the same id is stored, and the answer says nothing about police's
    second = client.post("/api/ingest", json={"events": [sent("shared-1", "health sees this")]}, headers=health)
    assert second.json() == {"created": 1, "duplicates": 0, "rejected": []}
    # within one agency the id still de-duplicates
    again = client.post("/api/ingest", json={"events": [sent("shared-1", "health again")]}, headers=health)
    assert again.json() == {"created": 0, "duplicates": 1, "rejected": []}
    store.refresh()
    for tenant, text in (("police", "police sees this"), ("health", "health sees this")):
        hunt = client.get("/api/events", params={"q": "event.id:shared-1"}, headers=login(client, f"ana_{tenant}"))
        assert hunt.status_code == 200, hunt.text
        assert [e["message"] for e in hunt.json()["items"]] == [text]
        (found,) = store.get_events(["shared-1"], tenants=(tenant,))
        assert found["message"] == text


def failed_login(tenant: str, i: int, when: datetime) -> dict[str, Any]:
    event = make_event(
        tenant=tenant,
        dataset="system.auth",
        sensor_id=f"s-{tenant}",
        source="auth.log",
        position=i,
        raw=f"{tenant}{i}".encode(),
        timestamp=when + timedelta(seconds=i),
        fields={
            "process.name": "sshd",
            "event.action": "ssh_login",
            "event.category": ["authentication"],
            "event.outcome": "failure",
            "source.ip": "198.51.100.1" if tenant == "police" else "198.51.100.2",
            "user.name": f"{tenant}_admin",
            "host.name": f"{tenant}-web",
            "message": f"Failed password for {tenant}_admin",
        },
    )
    event["event.id"] = f"copied-{i}"  # the same ids in both agencies
    return event


def test_h9_alert_events_come_from_the_alerts_own_agency(client: TestClient, store: Store) -> None:
    when = datetime.now(UTC) - timedelta(minutes=5)
    for i in range(6):  # interleaved, so a batch holds both agencies' copies of each id
        assert store.add_events([failed_login("police", i, when), failed_login("health", i, when)]).created == 2
    store.refresh()
    ruleset, policy = lifecycle.effective_rules(store, [shipped_rules_dir()])
    DetectionEngine(ruleset, store, policy=policy).run_until_idle()
    alerts = [d for d in store.list_docs("alerts", size=100).items if d.body["rule.id"] == BRUTE_FORCE]
    assert sorted(a.body["tenant"] for a in alerts) == ["health", "police"]
    for alert in alerts:
        tenant = alert.body["tenant"]
        assert alert.body["entities"]["user.name"] == [f"{tenant}_admin"]
        detail = client.get(f"/api/alerts/{alert.id}", headers=login(client, f"ana_{tenant}")).json()
        assert detail["events"] and {e["host.name"] for e in detail["events"]} == {f"{tenant}-web"}


def test_h9_province_wide_hunt_pages_through_both_copies(store: Store) -> None:
    when = datetime.now(UTC) - timedelta(minutes=5)
    store.add_events([failed_login("police", 1, when), failed_login("health", 1, when)])
    store.refresh()
    seen: list[str] = []
    cursor = None
    while True:
        page = store.search_events(event_query(tenants=None, province_wide=True, size=1, cursor=cursor))
        seen.extend(e["organization.id"] for e in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == ["health", "police"]


# The events table as it was before the change (schema version 0: id unique across tenants).
OLD_SCHEMA = """
CREATE TABLE events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    id       TEXT NOT NULL UNIQUE,
    tenant   TEXT NOT NULL,
    ts       TEXT NOT NULL,
    dataset  TEXT NOT NULL,
    message  TEXT,
    doc      TEXT NOT NULL
);
CREATE INDEX events_tenant_ts ON events (tenant, ts, id);
CREATE INDEX events_ts ON events (ts, id);
CREATE VIRTUAL TABLE events_fts USING fts5 (
    message, content='events', content_rowid='seq', tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER events_fts_insert AFTER INSERT ON events BEGIN
    INSERT INTO events_fts (rowid, message) VALUES (new.seq, new.message);
END;
CREATE TRIGGER events_fts_delete AFTER DELETE ON events BEGIN
    INSERT INTO events_fts (events_fts, rowid, message) VALUES ('delete', old.seq, old.message);
END;
CREATE TABLE docs (
    kind     TEXT NOT NULL,
    id       TEXT NOT NULL,
    tenant   TEXT,
    version  INTEGER NOT NULL,
    body     TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX docs_kind_tenant ON docs (kind, tenant);
"""


def old_database(path: Path) -> None:
    """A version-0 file with three events (the newest one deleted since) and a document."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(OLD_SCHEMA)
    for n in (1, 2, 3):
        doc = f'{{"event.id": "old-{n}", "organization.id": "police", "message": "đăng nhập thất bại {n}"}}'
        conn.execute(
            "INSERT INTO events (id, tenant, ts, dataset, message, doc) VALUES (?, 'police', ?, 'system.auth', ?, ?)",
            (f"old-{n}", f"2026-11-2{n}T10:00:00.000Z", f"đăng nhập thất bại {n}", doc),
        )
    conn.execute("DELETE FROM events WHERE seq = 3")
    conn.execute("INSERT INTO docs VALUES ('checkpoints', 'engine', NULL, 4, '{\"checkpoint\": \"3\"}')")
    conn.close()


def test_h9_old_sqlite_file_is_migrated_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old_database(path)
    store = SqliteStore(path)
    store.setup()
    store.setup()  # a second process starting on the migrated file changes nothing
    try:
        (version,) = store.select("PRAGMA user_version")[0]
        assert version == SCHEMA_VERSION
        assert store.select("SELECT seq, id FROM events ORDER BY seq") == [(1, "old-1"), (2, "old-2")]
        assert store.get_doc("checkpoints", "engine").body == {"checkpoint": "3"}
        # the word index still finds the old rows (it is keyed by seq, which the copy kept)
        words = store.search_events(event_query(tenants=["police"], query="thất"))
        assert sorted(e["event.id"] for e in words.items) == ["old-1", "old-2"]
        # another agency may now hold the same id; seqs continue past the deleted newest one
        new = make_event(tenant="health", dataset="system.auth", sensor_id="s", source="x", position=1, raw=b"x")
        new["event.id"] = "old-1"
        assert store.add_events([new]).created == 1
        assert store.select("SELECT seq FROM events WHERE tenant = 'health'") == [(4,)]
        events, _ = store.read_new_events("3", limit=10)
        assert [(e["organization.id"], e["event.id"]) for e in events] == [("health", "old-1")]
    finally:
        store.close()
