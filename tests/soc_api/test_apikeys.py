"""Issue 11 item 5: API and sensor keys — owner-bounded rights, expiry, revocation, last use,
scoped listing — through the API, on every store."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from soc_api.main import create_app
from soc_api.services import accounts, apikeys
from soc_core.auth import PROVINCE, Membership
from soc_core.config import Settings
from soc_core.errors import InvalidInput
from soc_core.events import format_timestamp, utcnow
from soc_core.store import Store

PASSWORD = "a-very-long-password"


@pytest.fixture
def client(store: Store) -> TestClient:
    for tenant in ("police", "health"):
        accounts.add_tenant(store, tenant_id=tenant, name=tenant)
    accounts.add_user(store, username="boss", password=PASSWORD, memberships=[Membership(PROVINCE, "admin")])
    accounts.add_user(store, username="chief", password=PASSWORD, memberships=[Membership("police", "admin")])
    accounts.add_user(store, username="doc", password=PASSWORD, memberships=[Membership("health", "admin")])
    accounts.add_user(store, username="ana", password=PASSWORD, memberships=[Membership("police", "analyst")])
    return TestClient(create_app(Settings(), store))


def login(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def create(client: TestClient, by: str, **body: object) -> dict[str, object]:
    response = client.post("/api/apikeys", json=body, headers=login(client, by))
    assert response.status_code == 201, response.text
    created: dict[str, object] = response.json()
    return created


def backdate(store: Store, key_id: str, **fields: object) -> None:
    doc = store.get_doc("apikeys", key_id)
    store.update_doc("apikeys", key_id, {**doc.body, **fields}, version=doc.version)


def test_h5_demoting_the_owner_limits_the_key_and_disabling_kills_it(client: TestClient, store: Store) -> None:
    """The issue's case: an admin's key reads the audit log until the admin is demoted."""
    key = str(create(client, "chief", name="siem", tenant="police", role="admin", owner="chief")["api_key"])
    assert client.get("/api/audit", headers=bearer(key)).status_code == 200
    accounts.set_memberships(store, username="chief", memberships=[Membership("police", "analyst")], actor="boss")
    assert client.get("/api/audit", headers=bearer(key)).status_code == 403
    assert client.get("/api/alerts", headers=bearer(key)).status_code == 200  # what the owner still holds
    accounts.set_memberships(store, username="chief", memberships=[Membership("health", "admin")], actor="boss")
    assert client.get("/api/alerts", headers=bearer(key)).status_code == 403  # rights never move tenants
    accounts.set_memberships(store, username="chief", memberships=[Membership("police", "admin")], actor="boss")
    assert client.get("/api/audit", headers=bearer(key)).status_code == 200
    accounts.disable_user(store, "chief", actor="boss")
    assert client.get("/api/alerts", headers=bearer(key)).status_code == 401
    other = str(create(client, "boss", name="report", tenant="police", role="analyst", owner="ana")["api_key"])
    assert client.get("/api/alerts", headers=bearer(other)).status_code == 200
    store.delete_doc("users", "ana")
    assert client.get("/api/alerts", headers=bearer(other)).status_code == 401


def test_h5_province_key_is_bounded_by_its_owners_agencies(client: TestClient, store: Store) -> None:
    key = str(create(client, "boss", name="all", tenant=PROVINCE, role="analyst", owner="boss")["api_key"])
    store.create_doc("alerts", {"tenant": "health", "status": "new", "last_seen": "2026-11-20T00:00:00.000Z"})
    assert len(client.get("/api/alerts", headers=bearer(key)).json()["items"]) == 1
    accounts.set_memberships(store, username="boss", memberships=[Membership("police", "admin")], actor="cli")
    assert client.get("/api/alerts", headers=bearer(key)).json()["items"] == []


def test_h5_revoked_key_is_401_and_every_change_is_audited(client: TestClient, store: Store) -> None:
    created = create(client, "chief", name="siem", tenant="police", role="analyst", owner="ana")
    key, key_id = str(created["api_key"]), str(created["id"])
    assert client.get("/api/alerts", headers=bearer(key)).status_code == 200
    revoked = client.post(f"/api/apikeys/{key_id}/revoke", headers=login(client, "chief"))
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert revoked.json()["revoked_by"] == "chief"
    assert client.get("/api/alerts", headers=bearer(key)).status_code == 401
    again = client.post(f"/api/apikeys/{key_id}/revoke", headers=login(client, "chief"))
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]
    actions = [d.body["action"] for d in store.list_docs("audit", filters={"target": f"apikeys/{key_id}"}).items]
    assert sorted(actions) == ["apikey.create", "apikey.revoke"]
    record = store.list_docs("audit", filters={"action": "apikey.revoke"}).items[0].body
    assert record["actor"] == "chief" and record["tenant"] == "police" and record["request_id"]


def test_h5_expired_key_is_401(client: TestClient, store: Store) -> None:
    created = create(client, "chief", name="short", tenant="police", role="analyst", owner="ana", expires_days=1)
    key, key_id = str(created["api_key"]), str(created["id"])
    assert client.get("/api/alerts", headers=bearer(key)).status_code == 200
    backdate(store, key_id, expires_at=format_timestamp(utcnow() - timedelta(seconds=1)))
    assert client.get("/api/alerts", headers=bearer(key)).status_code == 401
    listed = client.get("/api/apikeys", headers=login(client, "chief")).json()["items"]
    assert [k["status"] for k in listed if k["id"] == key_id] == ["expired"]
    # a key stored before expiry existed: its creation plus the default (90 days) has passed
    old = create(client, "chief", name="legacy", tenant="police", role="analyst", owner="ana")
    backdate(store, str(old["id"]), expires_at=None, created_at=format_timestamp(utcnow() - timedelta(days=91)))
    assert client.get("/api/alerts", headers=bearer(str(old["api_key"]))).status_code == 401


def test_h5_expiry_defaults_and_bounds(client: TestClient, store: Store) -> None:
    created = create(client, "chief", name="default", tenant="police", role="analyst", owner="ana")
    days = (apikeys.expires_at(store.get_doc("apikeys", str(created["id"])).body) - utcnow()).days
    assert days == 89  # 90 days from now, less the seconds since
    headers = login(client, "chief")
    for bad in (0, 366):
        response = client.post(
            "/api/apikeys",
            json={"name": "x", "tenant": "police", "owner": "ana", "expires_days": bad},
            headers=headers,
        )
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert "expires_days" in response.text


def test_h5_a_key_cannot_be_made_beyond_its_owner(client: TestClient) -> None:
    headers = login(client, "chief")
    too_much = client.post(
        "/api/apikeys", json={"name": "x", "tenant": "police", "role": "admin", "owner": "ana"}, headers=headers
    )
    nobody = client.post(
        "/api/apikeys", json={"name": "x", "tenant": "police", "role": "admin", "owner": "nobody"}, headers=headers
    )
    assert too_much.status_code == nobody.status_code == 400
    assert "owner" in too_much.json()["detail"]
    # the same words whether the person is missing or lacks the rights (no user enumeration)
    assert too_much.json()["detail"].replace("'ana'", "") == nobody.json()["detail"].replace("'nobody'", "")
    extra = client.post(
        "/api/apikeys", json={"name": "x", "tenant": "police", "owner": "ana", "digest": "0" * 64}, headers=headers
    )
    assert extra.status_code == 422


def test_h5_listing_is_scoped_and_never_shows_secrets(client: TestClient) -> None:
    police = create(client, "chief", name="police-siem", tenant="police", role="analyst", owner="ana")
    health = create(client, "doc", name="health-siem", tenant="health", role="admin", owner="doc")
    province = create(client, "boss", name="province", tenant=PROVINCE, role="manager", owner="boss")
    chief = login(client, "chief")
    listing = client.get("/api/apikeys", headers=chief)
    assert listing.status_code == 200
    assert [k["name"] for k in listing.json()["items"]] == ["police-siem"]
    everything = client.get("/api/apikeys", headers=login(client, "boss"))
    assert {k["name"] for k in everything.json()["items"]} == {"police-siem", "health-siem", "province"}
    for created in (police, health, province):
        assert str(created["api_key"]) not in everything.text
        assert "digest" not in everything.text and "api_key" not in everything.text
    assert client.post(f"/api/apikeys/{health['id']}/revoke", headers=chief).status_code == 404
    assert client.post(f"/api/apikeys/{province['id']}/revoke", headers=chief).status_code == 404
    assert client.post("/api/apikeys/nonexistent/revoke", headers=chief).status_code == 404
    for_health = client.post("/api/apikeys", json={"name": "x", "tenant": "health", "owner": "doc"}, headers=chief)
    assert for_health.status_code == 404
    for_all = client.post("/api/apikeys", json={"name": "x", "tenant": PROVINCE, "owner": "chief"}, headers=chief)
    assert for_all.status_code == 403
    ana = login(client, "ana")
    assert client.get("/api/apikeys", headers=ana).status_code == 403
    assert (
        client.post("/api/apikeys", json={"name": "x", "tenant": "police", "owner": "ana"}, headers=ana).status_code
        == 403
    )
    # an admin's integration key manages keys as far as its owner may
    admin_key = bearer(
        str(create(client, "chief", name="ops", tenant="police", role="admin", owner="chief")["api_key"])
    )
    assert client.get("/api/apikeys", headers=admin_key).status_code == 200


def test_h5_last_use_is_recorded_at_most_once_a_minute(client: TestClient, store: Store) -> None:
    created = create(client, "chief", name="siem", tenant="police", role="analyst", owner="ana")
    key, key_id = str(created["api_key"]), str(created["id"])
    assert created["last_used_at"] is None
    assert client.get("/api/alerts", headers=bearer(key)).status_code == 200
    first = store.get_doc("apikeys", key_id)
    assert first.body["last_used_at"] and first.body["last_used_ip"] == "testclient"
    for _ in range(5):
        assert client.get("/api/alerts", headers=bearer(key)).status_code == 200
    assert store.get_doc("apikeys", key_id).version == first.version  # no write within the minute
    minute_ago = format_timestamp(utcnow() - timedelta(seconds=61))
    backdate(store, key_id, last_used_at=minute_ago)
    assert client.get("/api/alerts", headers=bearer(key)).status_code == 200
    assert store.get_doc("apikeys", key_id).body["last_used_at"] > minute_ago
    listed = client.get("/api/apikeys", headers=login(client, "chief")).json()["items"][0]
    assert listed["last_used_at"] and listed["last_used_ip"] == "testclient"


def event(i: int) -> dict[str, object]:
    return {"@timestamp": f"2026-11-25T10:00:{i:02d}.000Z", "event.dataset": "system.auth", "message": f"m{i}"}


def test_h5_sensor_keys_are_owned_by_a_sensor_admin(client: TestClient, store: Store) -> None:
    chief = login(client, "chief")
    registered = client.post("/api/sensors", json={"name": "web01", "tenant": "police"}, headers=chief).json()
    sensor_key = bearer(registered["api_key"])
    keys = client.get("/api/apikeys", headers=chief).json()["items"]
    sensor_entry = next(k for k in keys if k["sensor_id"] == registered["id"])
    assert sensor_entry["owner"] == "chief" and sensor_entry["role"] == "sensor"
    assert (apikeys.expires_at(store.get_doc("apikeys", sensor_entry["id"]).body) - utcnow()).days == 364
    assert client.post("/api/ingest", json={"events": [event(1)]}, headers=sensor_key).status_code == 200
    # only a person with sensors:admin there may own a sensor key
    refused = client.post(
        "/api/apikeys",
        json={"name": "s", "tenant": "police", "role": "sensor", "owner": "ana", "sensor_id": registered["id"]},
        headers=chief,
    )
    assert refused.status_code == 400 and "sensors:admin" in refused.json()["detail"]
    no_sensor = client.post(
        "/api/apikeys", json={"name": "s", "tenant": "police", "role": "sensor", "owner": "chief"}, headers=chief
    )
    assert no_sensor.status_code == 400
    # rotation: a second key for the same sensor, then the first is revoked
    rotated = create(
        client, "chief", name="web01 2027", tenant="police", role="sensor", owner="chief", sensor_id=registered["id"]
    )
    new_key = bearer(str(rotated["api_key"]))
    heartbeat = {"run_id": "r1", "counters": {"events_out": 1}}
    assert client.post("/api/sensors/heartbeat", json=heartbeat, headers=new_key).status_code == 200
    assert client.post(f"/api/apikeys/{sensor_entry['id']}/revoke", headers=chief).status_code == 200
    assert client.post("/api/ingest", json={"events": [event(2)]}, headers=sensor_key).status_code == 401
    # the owner demoted: the sensor key can no longer ingest; the owner disabled: it is dead
    accounts.set_memberships(store, username="chief", memberships=[Membership("police", "analyst")], actor="boss")
    assert client.post("/api/ingest", json={"events": [event(3)]}, headers=new_key).status_code == 403
    accounts.disable_user(store, "chief", actor="boss")
    assert client.post("/api/ingest", json={"events": [event(3)]}, headers=new_key).status_code == 401


def test_h5_ownerless_keys_are_refused_until_given_an_owner(client: TestClient, store: Store) -> None:
    created = create(client, "chief", name="legacy", tenant="police", role="analyst", owner="ana")
    key, key_id = str(created["api_key"]), str(created["id"])
    backdate(store, key_id, owner="")  # as keys were stored before owners were required
    assert client.get("/api/alerts", headers=bearer(key)).status_code == 401
    listed = client.get("/api/apikeys", headers=login(client, "chief")).json()["items"][0]
    assert listed["status"] == "no_owner" and listed["owner"] is None
    with pytest.raises(InvalidInput):
        apikeys.set_owner(store, key_id, owner="nobody", caller=apikeys.Caller("cli:root"))
    apikeys.set_owner(store, key_id, owner="ana", caller=apikeys.Caller("cli:root"))
    assert client.get("/api/alerts", headers=bearer(key)).status_code == 200
    record = store.list_docs("audit", filters={"action": "apikey.owner"}).items[0].body
    assert record["before"] == {"owner": ""} and record["after"] == {"owner": "ana"}
