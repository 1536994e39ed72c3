"""The threat-intel lists API (the issue's "threat-intel lists: upload, list, delete"): role
checks, agency scoping, audit records, body limit, problem+json for bad files; both stores.
(Who may do what, role by role, is test_s13i_1_permissions.py.)"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from soc_api.main import create_app
from soc_api.services import accounts
from soc_core.auth import Membership
from soc_core.config import Settings
from soc_core.store import Store
from tests.intel.support import DATA

PASSWORD = "a-very-long-password"


@pytest.fixture
def client(store: Store) -> TestClient:
    for tenant in ("police", "health"):
        accounts.add_tenant(store, tenant_id=tenant, name=tenant)
    people = {
        "police_ad": [Membership("police", "admin")],
        "police_an": [Membership("police", "analyst")],
        "health_ad": [Membership("health", "admin")],
        "province": [Membership("*", "admin")],
    }
    for name, memberships in people.items():
        accounts.add_user(store, username=name, password=PASSWORD, memberships=memberships)
    return TestClient(create_app(Settings(api={"limits": {"intel_bytes": 64 * 1024}}), store))


def auth(client: TestClient, user: str) -> dict[str, str]:
    token = client.post("/api/auth/login", json={"username": user, "password": PASSWORD}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def upload(client: TestClient, user: str, name: str, tenant: str, fmt: str, list_name: str) -> object:
    return client.post(
        "/api/intel/lists",
        params={"tenant": tenant, "name": list_name, "format": fmt},
        content=(DATA / name).read_bytes(),
        headers=auth(client, user),
    )


def test_i6_upload_list_delete_scoped_and_audited(client: TestClient, store: Store) -> None:
    done = upload(client, "police_ad", "list.csv", "police", "csv", "blocklist")
    assert done.status_code == 200, done.text  # type: ignore[attr-defined]
    body = done.json()  # type: ignore[attr-defined]
    assert (body["list"], body["loaded"], body["skipped"], body["duplicates"]) == ("blocklist", 4, 4, 1)
    assert {
        "where": "upload:7",
        "reason": "'10.20.1.5/16' is not an IP address or network: 10.20.1.5/16 has host bits set",
    } in body["problems"]
    assert upload(client, "province", "bundle.json", "*", "stix", "cert").status_code == 200  # type: ignore[attr-defined]
    assert upload(client, "health_ad", "misp_event.json", "health", "misp", "phish").status_code == 200  # type: ignore[attr-defined]

    seen = client.get("/api/intel/lists", headers=auth(client, "police_an")).json()["items"]
    assert [(item["tenant"], item["name"], item["count"]) for item in seen] == [
        ("*", "cert", 5),
        ("police", "blocklist", 4),
    ]

    # the wrong agency, province-wide without a province membership, no intel:write: refused
    assert upload(client, "police_ad", "list.csv", "health", "csv", "x").status_code == 404  # type: ignore[attr-defined]
    assert upload(client, "police_ad", "list.csv", "*", "csv", "x").status_code == 403  # type: ignore[attr-defined]
    assert upload(client, "police_an", "list.csv", "police", "csv", "x").status_code == 403  # type: ignore[attr-defined]
    assert client.delete("/api/intel/lists/health/phish", headers=auth(client, "police_ad")).status_code == 404
    assert client.delete("/api/intel/lists/police/blocklist", headers=auth(client, "police_an")).status_code == 403

    assert client.delete("/api/intel/lists/police/blocklist", headers=auth(client, "police_ad")).status_code == 204
    assert client.delete("/api/intel/lists/police/blocklist", headers=auth(client, "police_ad")).status_code == 404
    store.refresh()
    actions = [(doc.body["action"], doc.body["target"]) for doc in store.list_docs("audit", size=1000).items]
    assert ("intel.import", "intel/police:blocklist") in actions and (
        "intel.delete",
        "intel/police:blocklist",
    ) in actions
    assert ("intel.import", "intel/*:cert") in actions


def test_i6_bad_uploads_are_4xx_problems(client: TestClient) -> None:
    headers = auth(client, "police_ad")
    broken = client.post(
        "/api/intel/lists",
        params={"tenant": "police", "name": "x", "format": "stix"},
        content=b'{"type": "bundle", "objects": [',
        headers=headers,
    )
    assert broken.status_code == 400 and broken.headers["content-type"].startswith("application/problem+json")
    assert "upload" in broken.json()["detail"] and "not JSON" in broken.json()["detail"]
    bad_format = client.post(
        "/api/intel/lists", params={"tenant": "police", "name": "x", "format": "xml"}, content=b"x", headers=headers
    )
    assert 400 <= bad_format.status_code < 500
    bad_name = client.post(
        "/api/intel/lists",
        params={"tenant": "police", "name": "../x", "format": "csv"},
        content=b"ip,1.2.3.4\n",
        headers=headers,
    )
    # the list-name pattern is in the schema (the fuzzer reads it), so FastAPI refuses it: a 422 naming the field
    assert bad_name.status_code == 422, bad_name.text
    assert bad_name.headers["content-type"].startswith("application/problem+json")
    assert "name" in bad_name.text and "pattern" in bad_name.text, bad_name.text
    huge = client.post(
        "/api/intel/lists",
        params={"tenant": "police", "name": "x", "format": "csv"},
        content=b"ip,1.2.3.4\n" * 10_000,
        headers=headers,
    )
    assert huge.status_code == 413
