"""Issue 11 item 6: people manage their passwords, admins reset and re-enable accounts, TOTP is
required per role, and the password policy follows OWASP ASVS L2 — on every store."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyotp
import pytest
from fastapi.testclient import TestClient

from soc_api.main import create_app
from soc_api.runtime import ensure_admin
from soc_api.services import accounts, apikeys
from soc_core.auth import PROVINCE, Membership, password_problem
from soc_core.config import Settings, load_settings
from soc_core.errors import ConfigError, InvalidInput
from soc_core.store import SqliteStore, Store
from tests.support.cli import soc

PASSWORD = "a-very-long-password"
NEW_PASSWORD = "quiet-harbour-lantern-41"


@pytest.fixture
def client(store: Store) -> TestClient:
    for tenant in ("police", "health"):
        accounts.add_tenant(store, tenant_id=tenant, name=tenant)
    people = {
        "ana": [Membership("police", "analyst")],
        "hoa": [Membership("health", "analyst")],
        "cop_admin": [Membership("police", "admin")],
        "boss": [Membership(PROVINCE, "admin")],
        "both": [Membership("police", "analyst"), Membership("health", "analyst")],
    }
    for username, memberships in people.items():
        accounts.add_user(store, username=username, password=PASSWORD, memberships=memberships)
    return TestClient(create_app(Settings(), store))


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, str]:
    response = client.post("/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def login_status(client: TestClient, username: str, password: str) -> int:
    return int(client.post("/api/auth/login", json={"username": username, "password": password}).status_code)


# --- password policy --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short-pw-1", "at least 12"),
        ("x" * 129, "at most 128"),
        ("Nguyen.Van.An", "user name"),
        ("qwerty123456", "breached"),  # in the breached-password list
        ("1qaz2wsx3edc", "breached"),
        ("passwordpassword", "too easy"),
        ("aaaaaaaaaaaaaaaa", "too easy"),
        ("123456789012", "too easy"),
    ],
)
def test_h6_password_policy_refuses(password: str, reason: str) -> None:
    problem = password_problem(password, username="nguyen.van.an")
    assert problem is not None and reason in problem


@pytest.mark.parametrize(
    "password",
    ["quiet-harbour-lantern-41", "Sông Hồng chảy về xuôi", "x" * 6 + "Kq9!vT@2mZ" + "z" * 112, "ZzT4x8qW1mNp"],
)
def test_h6_password_policy_accepts_without_composition_rules(password: str) -> None:
    assert password_problem(password, username="ana") is None


def test_h6_password_policy_applies_on_create_change_and_reset(client: TestClient, store: Store) -> None:
    with pytest.raises(InvalidInput, match="breached"):
        accounts.add_user(store, username="lan", password="qwerty123456", memberships=[])
    ana = sign_in(client, "ana")
    weak = client.post("/api/auth/password", json={"current_password": PASSWORD, "new_password": "ana"}, headers=ana)
    assert weak.status_code == 400 and "12 characters" in weak.json()["detail"]
    assert weak.headers["content-type"].startswith("application/problem+json")
    code = client.post("/api/users/ana/reset", headers=sign_in(client, "boss")).json()["code"]
    refused = client.post("/api/auth/reset", json={"username": "ana", "code": code, "new_password": "passwordpassword"})
    assert refused.status_code == 400 and "too easy" in refused.json()["detail"]
    # a refused password does not use up the code
    done = client.post("/api/auth/reset", json={"username": "ana", "code": code, "new_password": NEW_PASSWORD})
    assert done.status_code == 204


# --- change your own password ----------------------------------------------------------------
def test_h6_change_own_password(client: TestClient, store: Store) -> None:
    ana = sign_in(client, "ana")
    other = sign_in(client, "ana")  # e.g. another browser
    wrong = client.post(
        "/api/auth/password", json={"current_password": "not-the-password", "new_password": NEW_PASSWORD}, headers=ana
    )
    assert wrong.status_code == 403
    done = client.post(
        "/api/auth/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}, headers=ana
    )
    assert done.status_code == 204
    assert client.get("/api/auth/me", headers=ana).status_code == 200  # this session goes on
    assert client.get("/api/auth/me", headers=other).status_code == 401  # the others end
    assert login_status(client, "ana", PASSWORD) == 401
    assert login_status(client, "ana", NEW_PASSWORD) == 200
    actions = [doc.body["action"] for doc in store.list_docs("audit", size=100).items]
    assert "user.password_change" in actions


def test_h6_api_key_cannot_change_a_password(client: TestClient, store: Store) -> None:
    _, key = apikeys.create_api_key(store, name="int", tenant="police", role="analyst", owner="ana")
    answer = client.post(
        "/api/auth/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert answer.status_code == 403


# --- admin reset with a one-time code --------------------------------------------------------
def test_h6_admin_reset_code_is_single_use_and_ends_sessions(client: TestClient, store: Store) -> None:
    ana = sign_in(client, "ana")
    issued = client.post("/api/users/ana/reset", headers=sign_in(client, "boss"))
    assert issued.status_code == 200
    code = issued.json()["code"]
    assert len(code.replace("-", "")) == 16 and issued.json()["expires_at"]
    assert code.replace("-", "") not in str(store.get_doc("users", "ana").body)  # only a digest is kept
    assert client.get("/api/auth/me", headers=ana).status_code == 401  # sessions end on reset
    forged = {"username": "ana", "code": "AAAA-BBBB-CCCC-DDDD", "new_password": NEW_PASSWORD}
    bad = client.post("/api/auth/reset", json=forged)
    assert bad.status_code == 401
    good = client.post("/api/auth/reset", json={"username": "ana", "code": code.lower(), "new_password": NEW_PASSWORD})
    assert good.status_code == 204
    again = client.post(
        "/api/auth/reset", json={"username": "ana", "code": code, "new_password": "another-fine-passphrase-9"}
    )
    assert again.status_code == 401  # single use
    assert login_status(client, "ana", NEW_PASSWORD) == 200
    assert login_status(client, "ana", PASSWORD) == 401


def test_h6_expired_reset_code_is_refused(client: TestClient, store: Store) -> None:
    code, _ = accounts.issue_reset(store, "ana", lifetime=timedelta(seconds=-1), actor="boss")
    answer = client.post("/api/auth/reset", json={"username": "ana", "code": code, "new_password": NEW_PASSWORD})
    assert answer.status_code == 401
    assert login_status(client, "ana", PASSWORD) == 200


def test_h6_agency_admin_manages_only_their_agency(client: TestClient) -> None:
    cop = sign_in(client, "cop_admin")
    listed = {u["username"] for u in client.get("/api/users", headers=cop).json()["items"]}
    assert listed == {"ana", "cop_admin"}  # not health's, not province-wide, not half-police people
    for target in ("hoa", "boss", "both", "nobody"):
        for action in ("reset", "disable", "enable"):
            assert client.post(f"/api/users/{target}/{action}", headers=cop).status_code == 404, (target, action)
    assert client.post("/api/users/ana/reset", headers=cop).status_code == 200
    everyone = {u["username"] for u in client.get("/api/users", headers=sign_in(client, "boss")).json()["items"]}
    assert everyone == {"ana", "hoa", "cop_admin", "boss", "both"}
    assert client.get("/api/users", headers=sign_in(client, "hoa")).status_code == 403


# --- first admin password --------------------------------------------------------------------
def test_h6_first_admin_password_must_change_at_first_login(store: Store) -> None:
    first = ensure_admin(store)
    assert first is not None and password_problem(first, username="admin") is None
    client = TestClient(create_app(Settings(), store))
    answer = client.post("/api/auth/login", json={"username": "admin", "password": first})
    assert answer.status_code == 200 and answer.json()["must_change_password"] is True
    admin = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    me = client.get("/api/auth/me", headers=admin)
    assert me.status_code == 200 and me.json()["must_change_password"] is True
    blocked = client.get("/api/alerts", headers=admin)
    assert blocked.status_code == 403 and "change your password" in blocked.json()["detail"]
    assert client.get("/api/users", headers=admin).status_code == 403
    changed = client.post(
        "/api/auth/password", json={"current_password": first, "new_password": NEW_PASSWORD}, headers=admin
    )
    assert changed.status_code == 204
    assert client.get("/api/alerts", headers=admin).status_code == 200
    again = client.post("/api/auth/login", json={"username": "admin", "password": NEW_PASSWORD})
    assert again.json()["must_change_password"] is False


# --- disable and enable ----------------------------------------------------------------------
def test_h6_disabled_user_can_be_enabled_again(client: TestClient) -> None:
    boss = sign_in(client, "boss")
    ana = sign_in(client, "ana")
    disabled = client.post("/api/users/ana/disable", headers=boss)
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    assert client.get("/api/auth/me", headers=ana).status_code == 401
    assert login_status(client, "ana", PASSWORD) == 401
    enabled = client.post("/api/users/ana/enable", headers=boss)
    assert enabled.status_code == 200 and enabled.json()["disabled"] is False
    assert login_status(client, "ana", PASSWORD) == 200
    assert client.post("/api/users/boss/disable", headers=boss).status_code == 400  # not yourself


def test_h6_cli_enable_and_reset(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "var" / "canhgac.db")
    store.setup()
    accounts.add_tenant(store, tenant_id="police", name="police")
    accounts.add_user(store, username="ana", password=PASSWORD, memberships=[Membership("police", "analyst")])
    accounts.disable_user(store, "ana")
    store.close()
    assert soc("user", "enable", "ana", cwd=tmp_path).returncode == 0
    done = soc("user", "reset", "ana", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    code = next(line.strip() for line in done.stdout.splitlines() if line.count("-") == 3)
    store = SqliteStore(tmp_path / "var" / "canhgac.db")
    assert store.get_doc("users", "ana").body["disabled"] is False
    client = TestClient(create_app(Settings(), store))
    answer = client.post("/api/auth/reset", json={"username": "ana", "code": code, "new_password": NEW_PASSWORD})
    assert answer.status_code == 204
    assert login_status(client, "ana", NEW_PASSWORD) == 200
    store.close()


# --- TOTP required per role ------------------------------------------------------------------
def test_h6_totp_required_for_admin_by_default(
    client: TestClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOC_AUTH__TOTP_REQUIRED_ROLES")
    settings = Settings()
    assert settings.auth.totp_required_roles == ["admin"]
    app_client = TestClient(create_app(settings, store))
    assert login_status(app_client, "ana", PASSWORD) == 200  # analysts: no second factor required
    pending = app_client.post("/api/auth/login", json={"username": "boss", "password": PASSWORD})
    assert pending.status_code == 200
    step = pending.json()
    assert step["status"] == "totp_enrolment_required" and "access_token" not in step
    assert step["otpauth_uri"].startswith("otpauth://totp/") and step["secret"] in step["otpauth_uri"]
    totp = pyotp.TOTP(step["secret"])
    body = {"username": "boss", "enrolment_token": step["enrolment_token"]}
    assert app_client.post("/api/auth/totp", json={**body, "code": "000000"}).status_code == 401
    forged = app_client.post(
        "/api/auth/totp", json={"username": "boss", "enrolment_token": "forged", "code": totp.now()}
    )
    assert forged.status_code == 401
    done = app_client.post("/api/auth/totp", json={**body, "code": totp.now()})
    assert done.status_code == 200 and done.json()["access_token"]
    boss = {"Authorization": f"Bearer {done.json()['access_token']}"}
    assert app_client.get("/api/users", headers=boss).status_code == 200
    # enrolled: a password alone no longer signs in
    assert login_status(app_client, "boss", PASSWORD) == 401
    # the enrolment token works once
    assert app_client.post("/api/auth/totp", json={**body, "code": totp.now()}).status_code == 401


def test_h6_require_totp_key_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOC_API__REQUIRE_TOTP", "true")
    with pytest.raises(ConfigError, match=r"api\.require_totp: unknown key"):
        load_settings()
