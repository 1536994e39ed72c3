"""Issue 11 item 10: an event naming another agency in ``organization.id``, in any shape, is
stored under the sensor key's agency and recorded as a mismatch — through the real
``/api/ingest`` and straight into each store."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from soc_api.main import create_app
from soc_api.services import accounts
from soc_core.auth import PROVINCE, Membership
from soc_core.config import Settings
from soc_core.events import make_event
from soc_core.query import event_query
from soc_core.store import Store
from soc_core.tenant_claims import CLAIMED_LABEL, MISMATCH_TAG, assign_tenant

PASSWORD = "a-very-long-password"

# every shape in which an event can name a tenant; Elasticsearch lands each on organization.id
CLAIMS: dict[str, dict[str, Any]] = {
    "flat": {"organization.id": "health"},
    "nested": {"organization": {"id": "health"}},
    "nested_list": {"organization": [{"id": "health"}]},
    "flat_list": {"organization.id": ["police", "health"]},
    "nested_value_list": {"organization": {"id": ["health"]}},
    "mixed": {"organization.id": "police", "organization": {"id": "health", "name": "Sở Y tế"}},
}


@pytest.fixture
def client(store: Store) -> TestClient:
    for tenant in ("police", "health"):
        accounts.add_tenant(store, tenant_id=tenant, name=tenant)
    accounts.add_user(store, username="boss", password=PASSWORD, memberships=[Membership(PROVINCE, "admin")])
    return TestClient(create_app(Settings(), store))


def sensor_key(client: TestClient, tenant: str) -> dict[str, str]:
    token = client.post("/api/auth/login", json={"username": "boss", "password": PASSWORD}).json()["access_token"]
    response = client.post(
        "/api/sensors", json={"name": f"{tenant}-web01", "tenant": tenant}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['api_key']}"}


def claiming_event(shape: str) -> dict[str, Any]:
    return {
        "@timestamp": "2026-11-25T10:00:00.000Z",
        "event.dataset": "system.auth",
        "message": f"claims another agency ({shape})",
        "source.ip": "203.0.113.7",
        **CLAIMS[shape],
    }


def stored_as_health(store: Store) -> int:
    """Events any reader would take as health's: in health's indices, or with health anywhere
    in organization.id (Elasticsearch indexes every shape of it on that one field)."""
    store.refresh()
    own = store.count_events(event_query(tenants=["health"]))[0].count
    everyone = event_query(tenants=None, province_wide=True, query="organization.id:health")
    anywhere = store.count_events(everyone)[0].count
    return own + anywhere


@pytest.mark.parametrize("shape", sorted(CLAIMS))
def test_h10_ingest_overrules_every_shape_of_tenant_claim(client: TestClient, store: Store, shape: str) -> None:
    key = sensor_key(client, "police")
    result = client.post("/api/ingest", json={"events": [claiming_event(shape)]}, headers=key).json()
    assert result == {"created": 1, "duplicates": 0, "rejected": []}
    assert stored_as_health(store) == 0
    (stored,) = store.search_events(event_query(tenants=["police"])).items
    assert stored["organization.id"] == "police"
    # the nested claim is gone; other organization fields stay
    assert stored.get("organization") == ({"name": "Sở Y tế"} if shape == "mixed" else None)
    assert MISMATCH_TAG in stored["tags"] and "health" in stored[CLAIMED_LABEL]
    assert store.list_docs("audit", filters={"action": "ingest.tenant_mismatch"}).items


def test_h10_a_claim_of_the_keys_own_agency_is_no_mismatch(client: TestClient, store: Store) -> None:
    key = sensor_key(client, "police")
    event = {**claiming_event("nested"), "organization": {"id": "police", "name": "Công an"}}
    assert client.post("/api/ingest", json={"events": [event]}, headers=key).json()["created"] == 1
    store.refresh()
    (stored,) = store.search_events(event_query(tenants=["police"])).items
    assert stored["organization.id"] == "police" and stored["organization"] == {"name": "Công an"}
    assert MISMATCH_TAG not in (stored.get("tags") or []) and CLAIMED_LABEL not in stored
    assert not store.list_docs("audit", filters={"action": "ingest.tenant_mismatch"}).items


@pytest.mark.parametrize("shape", ["nested", "nested_list", "nested_value_list"])
def test_h10_store_write_path_keeps_only_the_flat_tenant(store: Store, shape: str) -> None:
    """A sensor writing straight to the store (its configured tenant in the flat field)."""
    event = make_event(
        tenant="police",
        dataset="system.auth",
        sensor_id="s1",
        source="auth.log",
        position=1,
        raw=b"x",
        fields={"message": "direct", **CLAIMS[shape]},
    )
    assert store.add_events([event]).created == 1
    assert stored_as_health(store) == 0
    (stored,) = store.search_events(event_query(tenants=["police"])).items
    assert "organization" not in stored and stored[CLAIMED_LABEL] == ["health"]


def test_h10_assign_tenant_is_one_pass_over_the_event() -> None:
    plain = {"organization.id": "police", "message": "x"}
    assert assign_tenant(plain, "police") == (plain, [])
    settled, claimed = assign_tenant({"organization": {"id.sub": "health"}, "organizations": 1}, "police")
    assert settled == {
        "organizations": 1,
        "organization.id": "police",
        "tags": [MISMATCH_TAG],
        CLAIMED_LABEL: ["health"],
    }
    assert claimed == ["health"]
