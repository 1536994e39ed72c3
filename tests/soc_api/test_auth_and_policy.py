"""Authentication, the policy table and tenant scoping, on every store."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from fastapi.testclient import TestClient

from soc_api.main import create_app, route_inventory
from soc_api.policy import POLICY
from soc_api.services import accounts, apikeys
from soc_api.services.accounts import principal_from_token
from soc_core.auth import PROVINCE, Membership, digest
from soc_core.config import Settings
from soc_core.events import format_timestamp, utcnow
from soc_core.store import Store

PASSWORD = "a-very-long-password"


@pytest.fixture
def client(store: Store) -> TestClient:
    for tenant in ("police", "health"):
        accounts.add_tenant(store, tenant_id=tenant, name=tenant)
    accounts.add_user(store, username="ana", password=PASSWORD, memberships=[Membership("police", "analyst")])
    accounts.add_user(
        store,
        username="mixed",
        password=PASSWORD,
        memberships=[Membership("police", "analyst"), Membership("health", "rule_admin")],
    )
    accounts.add_user(store, username="boss", password=PASSWORD, memberships=[Membership(PROVINCE, "admin")])
    for i, tenant in enumerate(("police", "health", "police")):
        store.create_doc(
            "alerts",
            {"tenant": tenant, "status": "new", "rule.name": f"r{i}", "last_seen": f"2026-11-20T00:00:0{i}.000Z"},
            doc_id=f"alert{i}",
        )
    return TestClient(create_app(Settings(), store))


def token(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, str]:
    response = client.post("/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_every_route_is_in_the_policy_table(sqlite_store: Store) -> None:
    routes = route_inventory(create_app(Settings(), sqlite_store))
    assert len(routes) >= 7
    assert routes <= set(POLICY)
    assert set(POLICY) <= routes, "policy names routes that do not exist"


@pytest.mark.parametrize("header", [None, "Bearer nonsense", "Bearer ", "Basic YWRtaW46YWRtaW4=", "cgk_abc_def"])
def test_bad_credentials_are_401_everywhere(client: TestClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    for method, path in POLICY:
        if POLICY[(method, path)] == "public":
            continue
        response = client.request(method, path.replace("{alert_id}", "alert0"), headers=headers)
        assert response.status_code == 401, (method, path)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["request_id"]


def test_token_in_query_string_is_not_accepted(client: TestClient) -> None:
    raw = token(client, "ana")["Authorization"].split()[1]
    assert client.get(f"/api/alerts?access_token={raw}").status_code == 401


def test_login_failures_look_the_same(client: TestClient) -> None:
    wrong = client.post("/api/auth/login", json={"username": "ana", "password": "wrong-password-x"})
    absent = client.post("/api/auth/login", json={"username": "nobody", "password": "wrong-password-x"})
    empty = client.post("/api/auth/login", json={"username": "ana", "password": ""})
    assert wrong.status_code == absent.status_code == empty.status_code == 401
    assert wrong.json()["detail"] == absent.json()["detail"] == empty.json()["detail"]


def test_extra_fields_are_rejected(client: TestClient) -> None:
    response = client.post("/api/auth/login", json={"username": "ana", "password": PASSWORD, "role": "admin"})
    assert response.status_code == 422


def test_tenant_scoping_of_alerts(client: TestClient) -> None:
    ana = token(client, "ana")
    assert {a["tenant"] for a in client.get("/api/alerts", headers=ana).json()["items"]} == {"police"}
    assert client.get("/api/alerts/alert1", headers=ana).status_code == 404
    assert client.get("/api/alerts/alert0", headers=ana).status_code == 200
    assert client.get("/api/alerts", params={"tenant": "health"}, headers=ana).json()["items"] == []
    boss = token(client, "boss")
    assert len(client.get("/api/alerts", headers=boss).json()["items"]) == 3


def test_rights_never_union_across_tenants(client: TestClient, store: Store) -> None:
    # analyst in police, rule_admin in health: rule_admin may read alerts of health,
    # and the analyst role reads police — but nothing grants alerts:write on health.
    mixed = token(client, "mixed")
    me = client.get("/api/auth/me", headers=mixed).json()
    assert {(m["tenant"], m["role"]) for m in me["memberships"]} == {("police", "analyst"), ("health", "rule_admin")}
    principal = principal_from_token(store, mixed["Authorization"].split()[1], idle=timedelta(hours=1))
    assert principal.tenants_for("alerts:write") == ("police",)
    assert principal.tenants_for("rules:write") == ("health",)
    assert principal.tenants_for("users:admin") == ()


def test_logout_and_disable_end_sessions_at_once(client: TestClient, store: Store) -> None:
    first = token(client, "ana")
    client.post("/api/auth/logout", headers=first)
    assert client.get("/api/alerts", headers=first).status_code == 401
    second = token(client, "ana")
    _, key = apikeys.create_api_key(store, name="sensor", tenant="police", role="analyst", owner="ana")
    assert client.get("/api/alerts", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    accounts.disable_user(store, "ana")
    assert client.get("/api/alerts", headers=second).status_code == 401
    assert client.get("/api/alerts", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    assert client.post("/api/auth/login", json={"username": "ana", "password": PASSWORD}).status_code == 401


def test_responses_carry_security_headers(client: TestClient) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-request-id"]


def test_totp_second_factor_cannot_be_bypassed(client: TestClient, store: Store) -> None:
    uri = accounts.enroll_totp(store, "ana")
    secret = pyotp.parse_uri(uri).secret
    without = client.post("/api/auth/login", json={"username": "ana", "password": PASSWORD})
    wrong = client.post("/api/auth/login", json={"username": "ana", "password": PASSWORD, "totp": "000000"})
    assert without.status_code == wrong.status_code == 401
    assert without.json()["detail"] == wrong.json()["detail"]
    code = pyotp.TOTP(secret).now()
    good = client.post("/api/auth/login", json={"username": "ana", "password": PASSWORD, "totp": code})
    assert good.status_code == 200
    replay = client.post("/api/auth/login", json={"username": "ana", "password": PASSWORD, "totp": code})
    assert replay.status_code == 401  # a code works once
    bad_password = client.post("/api/auth/login", json={"username": "ana", "password": "x" * 20, "totp": code})
    assert bad_password.status_code == 401


def test_required_totp_blocks_people_without_it(store: Store) -> None:
    accounts.add_user(store, username="newbie", password=PASSWORD, memberships=[])
    settings = Settings()
    settings.api.require_totp = True
    strict = TestClient(create_app(settings, store))
    assert strict.post("/api/auth/login", json={"username": "newbie", "password": PASSWORD}).status_code == 401


def test_role_changes_apply_to_the_next_request(client: TestClient, store: Store) -> None:
    ana = token(client, "ana")
    assert client.get("/api/alerts", headers=ana).status_code == 200
    accounts.set_memberships(store, username="ana", memberships=[Membership("police", "rule_admin")], actor="boss")
    assert (
        client.patch("/api/alerts/alert0", json={"version": "1", "status": "acknowledged"}, headers=ana).status_code
        == 403
    )
    accounts.set_memberships(store, username="ana", memberships=[], actor="boss")
    assert client.get("/api/alerts", headers=ana).status_code == 403
    changes = store.list_docs("audit", filters={"action": "user.memberships"}).items
    assert len(changes) == 2 and changes[0].body["actor"] == "boss"


def test_sessions_end_after_idle_time_and_lifetime(client: TestClient, store: Store) -> None:
    headers = token(client, "ana")
    session_id = digest(headers["Authorization"].split()[1])
    session = store.get_doc("sessions", session_id)
    idle = format_timestamp(utcnow() - timedelta(hours=2))
    store.update_doc("sessions", session_id, {**session.body, "last_seen": idle}, version=session.version)
    assert client.get("/api/alerts", headers=headers).status_code == 401
    headers = token(client, "ana")
    session_id = digest(headers["Authorization"].split()[1])
    session = store.get_doc("sessions", session_id)
    expired = format_timestamp(utcnow() - timedelta(seconds=1))
    store.update_doc("sessions", session_id, {**session.body, "expires_at": expired}, version=session.version)
    assert client.get("/api/alerts", headers=headers).status_code == 401


def test_canary_secrets_appear_in_no_log_and_no_document(
    client: TestClient, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    canary_password = "canary-Pa55word-7f3a9c"
    accounts.add_user(store, username="canary", password=canary_password, memberships=[Membership("police", "analyst")])
    with caplog.at_level("DEBUG"):
        response = client.post("/api/auth/login", json={"username": "canary", "password": canary_password})
        session_token = response.json()["access_token"]
        client.get("/api/alerts", headers={"Authorization": f"Bearer {session_token}"})
        client.post("/api/auth/login", json={"username": "canary", "password": canary_password + "x"})
        _, key = apikeys.create_api_key(store, name="canary", tenant="police", role="analyst", owner="canary")
        client.get("/api/alerts", headers={"Authorization": f"Bearer {key}"})
    everything = caplog.text
    for kind in ("users", "sessions", "apikeys", "audit", "alerts", "tenants"):
        everything += "".join(str(doc.body) + doc.id for doc in store.list_docs(kind, size=1000).items)
    for secret in (canary_password, session_token, key):
        assert secret not in everything
