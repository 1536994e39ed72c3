"""Issue 11 item 8: rule exceptions and history entries belong to the agency that made them.
Another agency never sees their text, author or count, nor a version number they move;
province-wide entries stay visible to all; the ATT&CK coverage lists only rules the caller can
open."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from detections import lifecycle
from soc_api.main import create_app
from soc_api.services import accounts
from soc_core.auth import PROVINCE, Membership
from soc_core.config import Settings
from soc_core.store import Store

PASSWORD = "a-very-long-password"
BRUTE_FORCE = "74d45926-2b16-4397-acdf-3728c2a10647"
CUSTOM_ID = "5b1c4f0e-3a55-4bd4-9f4e-1b5e2f0a9c11"
CUSTOM = f"""title: Police Only Login From Blocked Range
id: {CUSTOM_ID}
status: experimental
logsource:
  product: linux
  service: sshd
detection:
  selection:
    source.ip|cidr: 203.0.113.0/24
  condition: selection
level: high
tags:
  - attack.initial-access
  - attack.t1078
"""


@pytest.fixture
def client(store: Store) -> TestClient:
    for tenant in ("police", "health"):
        accounts.add_tenant(store, tenant_id=tenant, name=tenant)
        accounts.add_user(
            store, username=f"ra_{tenant}", password=PASSWORD, memberships=[Membership(tenant, "rule_admin")]
        )
        accounts.add_user(
            store, username=f"ana_{tenant}", password=PASSWORD, memberships=[Membership(tenant, "analyst")]
        )
    accounts.add_user(store, username="admin_police", password=PASSWORD, memberships=[Membership("police", "admin")])
    accounts.add_user(store, username="hq", password=PASSWORD, memberships=[Membership(PROVINCE, "rule_admin")])
    return TestClient(create_app(Settings(), store))


def login(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def add_exception(client: TestClient, who: str, reason: str, **extra: Any) -> dict[str, Any]:
    response = client.post(
        f"/api/rules/{BRUTE_FORCE}/exceptions",
        json={"conditions": {"source.ip": ["10.9.9.0/24"]}, "reason": reason, **extra},
        headers=login(client, who),
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def views(client: TestClient, who: str) -> tuple[Any, Any]:
    """Everything a caller reads about the rule: its detail and its line in the list."""
    headers = login(client, who)
    detail = client.get(f"/api/rules/{BRUTE_FORCE}", headers=headers).json()
    listed = [r for r in client.get("/api/rules", headers=headers).json()["items"] if r["id"] == BRUTE_FORCE]
    return detail, listed


def test_h8_another_agencys_exceptions_and_history_are_invisible(client: TestClient) -> None:
    add_exception(client, "hq", "province-wide vulnerability scanner")
    before = {who: views(client, who) for who in ("ra_health", "ana_health")}
    police = add_exception(client, "ra_police", "police pentest range")
    mine = police["active_exceptions"]
    assert [e["reason"] for e in mine if e["tenant"] == "police"] == ["police pentest range"]
    exception_id = next(e["id"] for e in mine if e["tenant"] == "police")
    # nothing health reads changed: not the text, author, count, history, nor the version
    for who, seen in before.items():
        after = views(client, who)
        assert after == seen, who
        detail, listed = after
        assert "police" not in str(detail) and "ra_police" not in str(detail)
        assert listed[0]["exceptions"] == 1 and detail["exceptions"] == 1
        assert [e["reason"] for e in detail["active_exceptions"]] == ["province-wide vulnerability scanner"]
        assert [h["author"] for h in detail["history"]] == ["hq"]
    revoked = client.post(
        f"/api/rules/{BRUTE_FORCE}/exceptions/{exception_id}/revoke",
        json={"reason": "pentest over"},
        headers=login(client, "ra_police"),
    )
    assert revoked.status_code == 200, revoked.text
    assert views(client, "ra_health") == before["ra_health"]
    # police sees its own entries and the province-wide ones; the province sees everything
    detail, _ = views(client, "ra_police")
    assert [(h["action"], h["tenant"]) for h in detail["history"]] == [
        ("exception_added", None),
        ("exception_added", "police"),
        ("exception_revoked", "police"),
    ]
    assert len(views(client, "hq")[0]["history"]) == 3
    # the police agency's admin finds its own exception changes in the audit trail
    trail = client.get("/api/audit", headers=login(client, "admin_police")).json()["items"]
    assert {r["action"] for r in trail} >= {"rule.exception_add", "rule.exception_revoke"}


def test_h8_other_agencies_do_not_move_the_version_you_send_back(client: TestClient) -> None:
    hq = login(client, "hq")
    version = add_exception(client, "hq", "province-wide vulnerability scanner")["state_version"]
    assert version is not None
    add_exception(client, "ra_police", "police pentest range")
    disabled = client.post(
        f"/api/rules/{BRUTE_FORCE}/state", json={"enabled": False, "reason": "noisy", "version": version}, headers=hq
    )
    assert disabled.status_code == 200, disabled.text
    stale = client.post(
        f"/api/rules/{BRUTE_FORCE}/state", json={"enabled": True, "reason": "back", "version": version}, headers=hq
    )
    assert stale.status_code == 409  # a change of the rule itself still needs the version read


def test_h8_limits_count_per_agency(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "MAX_EXCEPTIONS", 2)
    monkeypatch.setattr(lifecycle, "MAX_HISTORY", 2)
    add_exception(client, "ra_health", "health scanner")
    for n in range(2):
        add_exception(client, "ra_police", f"police range {n}")
    full = client.post(
        f"/api/rules/{BRUTE_FORCE}/exceptions",
        json={"conditions": {"source.ip": ["10.1.1.1"]}, "reason": "one more"},
        headers=login(client, "ra_police"),
    )
    assert full.status_code == 422
    # police filling its share neither blocks health nor pushes health's history out
    add_exception(client, "ra_health", "health second scanner")
    detail, _ = views(client, "ra_health")
    assert [h["reason"] for h in detail["history"]] == ["health scanner", "health second scanner"]


def test_h8_coverage_lists_only_rules_the_caller_can_open(client: TestClient) -> None:
    created = client.post(
        "/api/rules", json={"yaml": CUSTOM, "reason": "police threat feed"}, headers=login(client, "ra_police")
    )
    assert created.status_code == 201, created.text
    trail = client.get("/api/audit", headers=login(client, "admin_police")).json()["items"]
    assert "rule.save" in {r["action"] for r in trail}  # the agency's own rule changes are in its trail
    for who, sees in (("ana_health", False), ("ra_health", False), ("ana_police", True), ("hq", True)):
        coverage = client.get("/api/rules/coverage", headers=login(client, who)).json()
        assert (CUSTOM_ID in coverage.get("T1078", [])) is sees, who
        assert BRUTE_FORCE in coverage["T1110.001"]
        opened = client.get(f"/api/rules/{CUSTOM_ID}", headers=login(client, who)).status_code
        assert opened == (200 if sees else 404), who
