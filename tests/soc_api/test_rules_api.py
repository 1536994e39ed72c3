"""Rule lifecycle through the API and its effect on the engine (T5, exceptions, versions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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
from soc_core.store import Store

PASSWORD = "a-very-long-password"
BRUTE_FORCE = "74d45926-2b16-4397-acdf-3728c2a10647"
SUDO_SHELL = "b66c7128-d024-4352-a4e4-6ef7676daa16"
CUSTOM = """title: Login From Blocked Range
id: 5b1c4f0e-3a55-4bd4-9f4e-1b5e2f0a9c11
status: experimental
logsource:
  product: linux
  service: sshd
detection:
  selection:
    source.ip|cidr: 203.0.113.0/24
    event.outcome: success
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
    accounts.add_user(store, username="hq", password=PASSWORD, memberships=[Membership(PROVINCE, "rule_admin")])
    accounts.add_user(store, username="ra", password=PASSWORD, memberships=[Membership("police", "rule_admin")])
    accounts.add_user(store, username="ana", password=PASSWORD, memberships=[Membership("police", "analyst")])
    return TestClient(create_app(Settings(), store))


def login(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def ssh_event(tenant: str, i: int, *, ip: str, outcome: str, when: datetime) -> dict[str, object]:
    return make_event(
        tenant=tenant,
        dataset="system.auth",
        sensor_id=f"s-{tenant}",
        source="auth.log",
        position=i,
        raw=f"{tenant}{i}{ip}".encode(),
        timestamp=when + timedelta(seconds=i),
        fields={
            "process.name": "sshd",
            "event.action": "ssh_login",
            "event.category": ["authentication"],
            "event.outcome": outcome,
            "source.ip": ip,
            "user.name": "root",
            "host.name": f"{tenant}-web",
            "message": f"{'Accepted' if outcome == 'success' else 'Failed'} password for root from {ip}",
        },
    )


def run_engine(store: Store) -> list[dict[str, Any]]:
    store.refresh()
    ruleset, policy = lifecycle.effective_rules(store, [shipped_rules_dir()])
    DetectionEngine(ruleset, store, policy=policy).run_until_idle()
    return [doc.body for doc in store.list_docs("alerts", size=100).items]


def test_listing_validation_and_coverage(client: TestClient) -> None:
    ana = login(client, "ana")
    rules = client.get("/api/rules", headers=ana).json()["items"]
    assert {r["id"] for r in rules} >= {BRUTE_FORCE, SUDO_SHELL}
    assert all(r["source"] == "shipped" and r["enabled"] for r in rules)
    assert BRUTE_FORCE in client.get("/api/rules/coverage", headers=ana).json()["T1110.001"]
    detail = client.get(f"/api/rules/{BRUTE_FORCE}", headers=ana).json()
    assert "event_count" in detail["yaml"] and detail["kind"] == "correlation"
    good = client.post("/api/rules/validate", json={"yaml": CUSTOM}, headers=ana).json()
    bad = client.post("/api/rules/validate", json={"yaml": "title: x\ndetection: {}\n"}, headers=ana).json()
    assert good == {"valid": True, "errors": []} and not bad["valid"] and bad["errors"]
    assert client.post("/api/rules", json={"yaml": CUSTOM, "reason": "nope"}, headers=ana).status_code == 403
    sample = client.post(f"/api/rules/{SUDO_SHELL}/test", headers=ana).json()
    assert sample["passed"] and sample["checked"] > 0


def test_custom_rules_stay_inside_their_agency(client: TestClient, store: Store) -> None:
    ra = login(client, "ra")
    outside = client.post("/api/rules", json={"yaml": CUSTOM, "reason": "new feed", "scope": ["health"]}, headers=ra)
    assert outside.status_code == 404
    created = client.post("/api/rules", json={"yaml": CUSTOM, "reason": "new threat feed"}, headers=ra)
    assert created.status_code == 201, created.text
    rule = created.json()
    assert rule["source"] == "custom" and rule["scope"] == ["police"]
    assert rule["history"][0]["author"] == "ra" and rule["history"][0]["reason"] == "new threat feed"
    when = datetime.now(UTC) - timedelta(minutes=5)
    store.add_events(
        [
            ssh_event("police", 1, ip="203.0.113.9", outcome="success", when=when),
            ssh_event("health", 2, ip="203.0.113.9", outcome="success", when=when),
        ]
    )
    alerts = [a for a in run_engine(store) if a["rule.name"] == "Login From Blocked Range"]
    assert [a["tenant"] for a in alerts] == ["police"]
    # a province admin's copy of the scope is not visible to another agency's rule admin
    assert client.get(f"/api/rules/{rule['id']}", headers=login(client, "hq")).status_code == 200
    again = client.post("/api/rules", json={"yaml": CUSTOM, "reason": "again"}, headers=ra)
    assert again.status_code == 409  # changing it needs the version that was read
    bt = client.post(f"/api/rules/{rule['id']}/backtest", json={}, headers=ra).json()
    assert bt["total"] == 1 and sum(bt["per_day"].values()) == 1
    widened = CUSTOM.replace("event.outcome: success", "event.outcome:\n      - success\n      - failure")
    diff = client.post(f"/api/rules/{rule['id']}/backtest", json={"yaml": widened}, headers=ra).json()
    assert diff["candidate_total"] == 1 and diff["added"] == [] and diff["removed"] == []


def test_disable_and_exceptions_are_versioned_and_applied(client: TestClient, store: Store) -> None:
    ra, hq = login(client, "ra"), login(client, "hq")
    forbidden = client.post(f"/api/rules/{BRUTE_FORCE}/state", json={"enabled": False, "reason": "noisy"}, headers=ra)
    assert forbidden.status_code == 403  # shared by every agency: province-wide admins only
    exception = client.post(
        f"/api/rules/{BRUTE_FORCE}/exceptions",
        json={"conditions": {"source.ip": ["10.9.9.0/24"]}, "reason": "vulnerability scanner"},
        headers=ra,
    )
    assert exception.status_code == 201, exception.text
    assert exception.json()["active_exceptions"][0]["tenant"] == "police"
    when = datetime.now(UTC) - timedelta(minutes=5)
    store.add_events(
        [ssh_event("police", i, ip="10.9.9.7", outcome="failure", when=when) for i in range(8)]
        + [ssh_event("police", 100 + i, ip="198.51.100.3", outcome="failure", when=when) for i in range(8)]
        + [ssh_event("health", 200 + i, ip="10.9.9.7", outcome="failure", when=when) for i in range(8)]
    )
    brute = [a for a in run_engine(store) if a["rule.id"] == BRUTE_FORCE]
    assert sorted((a["tenant"], a["entities"]["source.ip"][0]) for a in brute) == [
        ("health", "10.9.9.7"),  # police's exception does not reach health
        ("police", "198.51.100.3"),
    ]
    disabled = client.post(
        f"/api/rules/{SUDO_SHELL}/state", json={"enabled": False, "reason": "replaced by EDR"}, headers=hq
    ).json()
    assert disabled["enabled"] is False
    detail = client.get(f"/api/rules/{SUDO_SHELL}", headers=hq).json()
    assert [(h["action"], h["author"], h["reason"]) for h in detail["history"]] == [
        ("disabled", "hq", "replaced by EDR")
    ]
    ruleset, _ = lifecycle.effective_rules(store, [shipped_rules_dir()])
    assert SUDO_SHELL not in {r.id for r in ruleset.enabled()}
    actions = {d.body["action"] for d in store.list_docs("audit", size=100).items}
    assert {"rule.exception_add", "rule.disable"} <= actions
    assert lifecycle.generation(store) == 2
