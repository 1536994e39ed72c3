"""Sensor registration, heartbeats and ingest through the API (scenario T4), on every store."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from soc_api.main import create_app
from soc_api.services import accounts, apikeys
from soc_core.auth import PROVINCE, Membership
from soc_core.config import Settings
from soc_core.query import event_query
from soc_core.store import Store
from workflow import audit

PASSWORD = "a-very-long-password"


@pytest.fixture
def client(store: Store) -> TestClient:
    for tenant in ("police", "health"):
        accounts.add_tenant(store, tenant_id=tenant, name=tenant)
    accounts.add_user(store, username="boss", password=PASSWORD, memberships=[Membership(PROVINCE, "admin")])
    accounts.add_user(store, username="ana", password=PASSWORD, memberships=[Membership("police", "analyst")])
    return TestClient(create_app(Settings(), store))


def login(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def register(client: TestClient, tenant: str) -> tuple[str, dict[str, str]]:
    response = client.post(
        "/api/sensors", json={"name": f"{tenant}-web01", "tenant": tenant}, headers=login(client, "boss")
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "never_seen"
    return body["id"], {"Authorization": f"Bearer {body['api_key']}"}


def event(i: int, **extra: object) -> dict[str, object]:
    return {
        "@timestamp": f"2026-11-25T10:00:{i:02d}.000Z",
        "event.dataset": "system.auth",
        "message": f"Failed password for root from 203.0.113.{i} port 22",
        "source.ip": f"203.0.113.{i}",
        **extra,
    }


def test_a_sensor_cannot_write_into_another_agency(client: TestClient, store: Store) -> None:
    _, key = register(client, "police")
    events = [event(1), event(2, **{"organization.id": "health"}), event(3, **{"organization.id": "police"})]
    result = client.post("/api/ingest", json={"events": events}, headers=key).json()
    assert result == {"created": 3, "duplicates": 0, "rejected": []}
    store.refresh()
    assert store.count_events(event_query(tenants=["police"]))[0].count == 3
    assert store.count_events(event_query(tenants=["health"]))[0].count == 0
    mismatches = store.list_docs("audit", filters={"action": "ingest.tenant_mismatch"}).items
    assert len(mismatches) == 1 and mismatches[0].body["details"]["events"] == 1
    again = client.post("/api/ingest", json={"events": events}, headers=key).json()
    assert again["created"] == 0 and again["duplicates"] == 3
    assert audit.verify_chain(store).ok


def test_bad_events_are_rejected_with_reasons(client: TestClient) -> None:
    _, key = register(client, "police")
    result = client.post(
        "/api/ingest",
        json={"events": [event(1), {"message": "no timestamp"}, event(3, **{"event.kind": "x"})]},
        headers=key,
    ).json()
    assert result["created"] == 1
    reasons = " ".join(item["reason"] for item in result["rejected"])
    assert "@timestamp" in reasons and "event.kind" in reasons
    too_many = client.post("/api/ingest", json={"events": [event(1)] * 5001}, headers=key)
    assert too_many.status_code == 422


def test_only_sensor_keys_ingest_and_report(client: TestClient, store: Store) -> None:
    boss = login(client, "boss")
    assert client.post("/api/ingest", json={"events": [event(1)]}, headers=boss).status_code == 403
    _, analyst_key = apikeys.create_api_key(
        store,
        name="integration",
        tenant="police",
        role="analyst",
        owner="ana",
    )
    headers = {"Authorization": f"Bearer {analyst_key}"}
    assert client.post("/api/ingest", json={"events": [event(1)]}, headers=headers).status_code == 403
    assert (
        client.post("/api/sensors/heartbeat", json={"run_id": "r", "counters": {}}, headers=headers).status_code == 403
    )


def test_heartbeats_show_health_and_loss(client: TestClient) -> None:
    sensor_id, key = register(client, "police")
    ok = client.post(
        "/api/sensors/heartbeat",
        json={"run_id": "run-1", "counters": {"kernel_received": 1000, "kernel_dropped": 0, "events_out": 990}},
        headers=key,
    ).json()
    assert ok["status"] == "online" and ok["health"]["loss_ratio"] == 0
    lossy = client.post(
        "/api/sensors/heartbeat",
        json={"run_id": "run-2", "counters": {"kernel_received": 800, "kernel_dropped": 200}},
        headers=key,
    ).json()
    assert lossy["status"] == "degraded" and lossy["health"]["loss_ratio"] == 0.2 and lossy["restarts"] == 1
    ana = login(client, "ana")
    listed = client.get("/api/sensors", headers=ana).json()["items"]
    assert [(s["id"], s["status"]) for s in listed] == [(sensor_id, "degraded")]
    other_id, _ = register(client, "health")
    assert client.get(f"/api/sensors/{other_id}", headers=ana).status_code == 404
    assert "api_key" not in client.get(f"/api/sensors/{sensor_id}", headers=ana).json()
