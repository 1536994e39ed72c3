"""H11 (RELIABILITY.md) through the API, on every store: a sensor's datasets come from a known
list (its own, given at registration), its timestamps are bounded, and its health says why
delivery fails."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from soc_api.main import create_app
from soc_api.services import accounts
from soc_core.auth import PROVINCE, Membership
from soc_core.bounds import DATASET_TAG, ORIGINAL_DATASET, ORIGINAL_TIMESTAMP, TIMESTAMP_TAG
from soc_core.config import Settings, StoreSettings
from soc_core.events import format_timestamp, parse_timestamp, utcnow
from soc_core.query import event_query
from soc_core.store import Store
from tests.support.cli import soc

PASSWORD = "a-very-long-password"


@pytest.fixture
def client(store: Store) -> TestClient:
    accounts.add_tenant(store, tenant_id="police", name="police")
    accounts.add_user(store, username="boss", password=PASSWORD, memberships=[Membership(PROVINCE, "admin")])
    settings = Settings(store=StoreSettings(extra_datasets=["myapp.audit"], max_event_age_days=30))
    return TestClient(create_app(settings, store))


def admin(client: TestClient) -> dict[str, str]:
    response = client.post("/api/auth/login", json={"username": "boss", "password": PASSWORD})
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def register(client: TestClient, **extra: object) -> tuple[str, dict[str, str], dict[str, object]]:
    response = client.post("/api/sensors", json={"name": "web01", "tenant": "police", **extra}, headers=admin(client))
    assert response.status_code == 201, response.text
    body = response.json()
    return body["id"], {"Authorization": f"Bearer {body['api_key']}"}, body


def event(i: int, dataset: str, stamp: str | None = None) -> dict[str, object]:
    return {
        "@timestamp": stamp or format_timestamp(utcnow() - timedelta(minutes=i)),
        "event.dataset": dataset,
        "message": f"line {i}",
    }


def stored(store: Store) -> dict[str, dict[str, object]]:
    store.refresh()
    page = store.search_events(event_query(tenants=["police"], size=100))
    return {str(e["message"]): e for e in page.items}


def test_h11_a_sensor_keeps_only_its_datasets_the_rest_is_stored_as_unknown(client: TestClient, store: Store) -> None:
    sensor_id, key, body = register(client, datasets=["system.auth", "myapp.audit"])
    assert body["datasets"] == ["myapp.audit", "system.auth"]
    events = [
        event(1, "system.auth"),
        event(2, "myapp.audit"),  # known by configuration (store.extra_datasets)
        event(3, "nginx.access"),  # known, but not one of this sensor's
        event(4, "myapp.day_20261206"),
        event(5, "Not A Dataset"),
    ]
    result = client.post("/api/ingest", json={"events": events}, headers=key).json()
    assert result == {"created": 5, "duplicates": 0, "rejected": []}
    kept = stored(store)
    assert [kept[f"line {i}"]["event.dataset"] for i in range(1, 6)] == [
        "system.auth",
        "myapp.audit",
        "unknown",
        "unknown",
        "unknown",
    ]
    assert [kept[f"line {i}"].get(ORIGINAL_DATASET) for i in range(1, 6)] == [
        None,
        None,
        "nginx.access",
        "myapp.day_20261206",
        "Not A Dataset",
    ]
    assert DATASET_TAG in kept["line 4"]["tags"]  # type: ignore[operator]
    # without a list, the sensor may send every known dataset
    _, other, body = register(client)
    assert body["datasets"] is None
    client.post("/api/ingest", json={"events": [event(6, "nginx.access")]}, headers=other)
    assert stored(store)["line 6"]["event.dataset"] == "nginx.access"
    shown = client.get(f"/api/sensors/{sensor_id}", headers=admin(client)).json()
    assert shown["datasets"] == ["myapp.audit", "system.auth"]


def test_h11_registering_a_dataset_nobody_knows_is_a_clear_400(client: TestClient, store: Store) -> None:
    response = client.post(
        "/api/sensors",
        json={"name": "web01", "tenant": "police", "datasets": ["system.auth", "police.day_1", "x.y"]},
        headers=admin(client),
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    detail = response.json()["detail"]
    assert "'police.day_1', 'x.y'" in detail and "store.extra_datasets" in detail
    assert store.list_docs("sensors").items == []
    bad = client.post(
        "/api/sensors", json={"name": "w", "tenant": "police", "datasets": ["a" * 81]}, headers=admin(client)
    )
    assert bad.status_code == 422


def test_h11_timestamps_far_in_the_past_or_future_become_the_ingest_time(client: TestClient, store: Store) -> None:
    _, key, _ = register(client)
    now = utcnow()
    old, ahead = "2019-02-05T10:00:00.000Z", format_timestamp(now + timedelta(days=3))
    recent = format_timestamp(now - timedelta(days=29))
    events = [event(1, "system.auth", old), event(2, "system.auth", ahead), event(3, "system.auth", recent)]
    result = client.post("/api/ingest", json={"events": events}, headers=key).json()
    assert result["created"] == 3
    kept = stored(store)
    for line, original in (("line 1", old), ("line 2", ahead)):
        assert kept[line][ORIGINAL_TIMESTAMP] == original
        assert TIMESTAMP_TAG in kept[line]["tags"]  # type: ignore[operator]
        assert abs(now - parse_timestamp(str(kept[line]["@timestamp"]))) < timedelta(minutes=5)
    assert kept["line 3"]["@timestamp"] == recent and ORIGINAL_TIMESTAMP not in kept["line 3"]


def test_h11_a_heartbeat_problem_marks_the_sensor_degraded_with_the_reason(client: TestClient) -> None:
    sensor_id, key, _ = register(client)
    problem = "20 events to retry: 400 validation_exception: … [1000]/[1000] maximum normal shards open"
    beat = client.post(
        "/api/sensors/heartbeat", json={"run_id": "r1", "counters": {"retried": 20}, "problem": problem}, headers=key
    )
    assert beat.status_code == 200, beat.text
    shown = client.get(f"/api/sensors/{sensor_id}", headers=admin(client)).json()
    assert shown["status"] == "degraded"
    assert shown["health"]["reasons"] == [problem] and shown["health"]["problem"] == problem
    client.post("/api/sensors/heartbeat", json={"run_id": "r1", "counters": {"retried": 20}}, headers=key)
    assert client.get(f"/api/sensors/{sensor_id}", headers=admin(client)).json()["status"] == "online"
    too_long = client.post(
        "/api/sensors/heartbeat", json={"run_id": "r1", "counters": {}, "problem": "x" * 1001}, headers=key
    )
    assert too_long.status_code == 422


def test_h11_the_allowed_datasets_are_listed_by_the_api_and_the_cli(client: TestClient, tmp_path: Path) -> None:
    listed = client.get("/api/sensors/datasets", headers=admin(client))
    assert listed.status_code == 200
    assert "myapp.audit" in listed.json() and "system.auth" in listed.json() and "unknown" in listed.json()
    _, key, _ = register(client)
    assert client.get("/api/sensors/datasets", headers=key).status_code == 403  # a sensor key only ingests
    (tmp_path / "soc.yml").write_text("store:\n  extra_datasets: [myapp.audit]\n")
    done = soc("--config", "soc.yml", "config", "datasets", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    names = done.stdout.split()
    assert names == sorted(names) and {"myapp.audit", "windows.sysmon", "network.dns", "unknown"} <= set(names)
