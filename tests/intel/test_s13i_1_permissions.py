"""Item 1 of the s13 intel brief: who may read and change threat-intel lists, over HTTP, for
every role × the caller's own agency, another agency and the province-wide (``*``) lists, on
both stores. An agency's admin changes its own lists; only a province-wide admin changes ``*``
lists; analysts, managers and rule admins read their agencies' lists and the province's.
Nothing a refused request touched changes, and every change is audited."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from intel import lists
from intel.indicators import Indicator
from intel.parsers import Parsed
from soc_api.main import create_app
from soc_api.services import accounts, apikeys
from soc_core.auth import PROVINCE, ROLES, Membership
from soc_core.config import Settings
from soc_core.store import Store

PASSWORD = "a-very-long-password"
CSV = b"ip,192.0.2.77\nip,192.0.2.78\n"  # two indicators: an upload replaces the seeded one
# the lists each (tenant) holds before every request: (tenant, name)
SEEDED = [("police", "own"), ("health", "theirs"), (PROVINCE, "national")]
# what a role may do to a list of: its own agency, another agency, the province
WRITERS = {"admin"}
READERS = {"analyst", "rule_admin", "manager", "admin"}


def seed(store: Store) -> None:
    for tenant, name in SEEDED:
        parsed = Parsed()
        parsed.add(Indicator("ip", "198.51.100.1"))
        lists.import_list(store, parsed, tenant=tenant, name=name, fmt="csv", source="seed.csv")


@pytest.fixture
def client(store: Store) -> TestClient:
    for tenant in ("police", "health"):
        accounts.add_tenant(store, tenant_id=tenant, name=tenant)
    for role in ROLES:
        accounts.add_user(store, username=f"police_{role}", password=PASSWORD, memberships=[Membership("police", role)])
        accounts.add_user(
            store, username=f"province_{role}", password=PASSWORD, memberships=[Membership(PROVINCE, role)]
        )
    seed(store)
    return TestClient(create_app(Settings(), store))


def headers(client: TestClient, user: str) -> dict[str, str]:
    answer = client.post("/api/auth/login", json={"username": user, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def held(store: Store) -> list[tuple[str, str, int]]:
    store.refresh()
    return sorted((item["tenant"], item["name"], item["count"]) for item in lists.lists(store, None))


def upload(client: TestClient, auth: dict[str, str], tenant: str, name: str) -> int:
    answer = client.post(
        "/api/intel/lists", params={"tenant": tenant, "name": name, "format": "csv"}, content=CSV, headers=auth
    )
    return int(answer.status_code)


def delete(client: TestClient, auth: dict[str, str], tenant: str, name: str) -> int:
    target = "%2A" if tenant == PROVINCE else tenant
    return int(client.delete(f"/api/intel/lists/{target}/{name}", headers=auth).status_code)


@pytest.mark.parametrize("role", ROLES)
def test_s13i_1_agency_member_matrix(client: TestClient, store: Store, role: str) -> None:
    """A member of police with ``role``: reads police's and ``*`` lists, never health's; changes
    only police's lists, and only as an admin."""
    auth = headers(client, f"police_{role}")
    seen = client.get("/api/intel/lists", headers=auth)
    if role in READERS:
        assert seen.status_code == 200, seen.text
        assert sorted((i["tenant"], i["name"]) for i in seen.json()["items"]) == [
            (PROVINCE, "national"),
            ("police", "own"),
        ]
    else:
        assert seen.status_code == 403
    before = held(store)
    writer = role in WRITERS
    # another agency: invisible to a writer (404, like a missing one), forbidden to the others
    assert upload(client, auth, "health", "theirs") == (404 if writer else 403)
    assert delete(client, auth, "health", "theirs") == (404 if writer else 403)
    # province-wide: only a province-wide admin
    assert upload(client, auth, PROVINCE, "national") == 403
    assert delete(client, auth, PROVINCE, "national") == 403
    assert held(store) == before, "a refused request changed a list"
    # its own agency
    if writer:
        assert upload(client, auth, "police", "own") == 200
        assert ("police", "own", 2) in held(store)
        assert delete(client, auth, "police", "own") == 204
        assert [row for row in held(store) if row[0] == "police"] == []
    else:
        assert upload(client, auth, "police", "own") == 403
        assert delete(client, auth, "police", "own") == 403
        assert held(store) == before


@pytest.mark.parametrize("role", ROLES)
def test_s13i_1_province_member_matrix(client: TestClient, store: Store, role: str) -> None:
    """A province-wide member with ``role``: reads every list; only an admin changes any,
    ``*`` lists included."""
    auth = headers(client, f"province_{role}")
    seen = client.get("/api/intel/lists", headers=auth)
    assert seen.status_code == 200 if role in READERS else 403
    if role in READERS:
        assert sorted((i["tenant"], i["name"]) for i in seen.json()["items"]) == sorted(SEEDED)
    before = held(store)
    if role not in WRITERS:
        for tenant, name in SEEDED:
            assert upload(client, auth, tenant, name) == 403
            assert delete(client, auth, tenant, name) == 403
        assert held(store) == before
        return
    for tenant, name in SEEDED:
        assert upload(client, auth, tenant, name) == 200, (tenant, name)
    assert held(store) == sorted((tenant, name, 2) for tenant, name in SEEDED)
    for tenant, name in SEEDED:
        assert delete(client, auth, tenant, name) == 204, (tenant, name)
    assert held(store) == []
    store.refresh()
    changes = {
        (doc.body["action"], doc.body["target"], doc.body["actor"])
        for doc in store.list_docs("audit", size=1000).items
        if doc.body["action"].startswith("intel.")
    }
    for tenant, name in SEEDED:
        for action in ("intel.import", "intel.delete"):
            assert (action, f"intel/{tenant}:{name}", "province_admin") in changes, (action, tenant, name)


def test_s13i_1_api_key_follows_its_owner(client: TestClient, store: Store) -> None:
    """A key made by police's admin writes police's lists; once the owner is an analyst, it
    reads only (the key never holds more than its owner)."""
    accounts.add_user(store, username="keeper", password=PASSWORD, memberships=[Membership("police", "admin")])
    _, secret = apikeys.create_api_key(store, name="feed", tenant="police", role="admin", owner="keeper")
    auth = {"Authorization": f"Bearer {secret}"}
    assert upload(client, auth, "police", "feed") == 200
    accounts.set_memberships(store, username="keeper", memberships=[Membership("police", "analyst")], actor="t")
    assert upload(client, auth, "police", "feed") == 403
    assert client.get("/api/intel/lists", headers=auth).status_code == 200
