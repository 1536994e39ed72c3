"""A1 — the BOLA matrix: every route that takes an object id × every role in one agency ×
the real ids of another agency's objects. Nothing is read or changed: the answer is 404 (or
403 where the role lacks the permission altogether), and the objects are left as they were."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from detections import lifecycle
from detections.loader import load_rules, shipped_rules_dir
from intel import lists as intel_lists
from intel.indicators import Indicator
from intel.parsers import Parsed
from playbooks.format import Library, load_playbook
from playbooks.runner import Runner
from playbooks.service import start_run
from reports import stored
from soc_api.main import create_app
from soc_api.policy import AUTHENTICATED, POLICY
from soc_api.services import accounts, apikeys
from soc_core.auth import ROLES, Membership
from soc_core.config import Settings
from soc_core.store import Store
from workflow import audit
from workflow.principals import permissions_of

PASSWORD = "a-very-long-password"
SUDO_SHELL = "b66c7128-d024-4352-a4e4-6ef7676daa16"
HEALTH_RULE = """title: Health Only
id: 0d5e3c1a-7f4b-4c2d-9e8f-112233445566
logsource: {product: linux, service: sshd}
detection:
  sel: {user.name: nurse}
  condition: sel
level: low
"""
PLAYBOOK = """name: theirs
steps:
  - id: block
    action: block_ip
    with: {address: 203.0.113.9}
    approval: {roles: [analyst, manager, rule_admin, admin]}
"""

BODIES = {
    ("PATCH", "/api/alerts/{alert_id}"): {"version": "1", "status": "acknowledged"},
    ("POST", "/api/alerts/{alert_id}/comments"): {"text": "mine now"},
    ("PATCH", "/api/cases/{case_id}"): {"version": "1", "comment": "mine now"},
    ("POST", "/api/rules/{rule_id}/state"): {"enabled": False, "reason": "take it over"},
    ("POST", "/api/rules/{rule_id}/exceptions"): {"conditions": {"user.name": ["x"]}, "reason": "take it over"},
    ("POST", "/api/rules/{rule_id}/exceptions/{exception_id}/revoke"): {"reason": "take it over"},
    ("POST", "/api/rules/{rule_id}/backtest"): {},
    ("POST", "/api/playbooks/{name}/run"): {"alert_id": "health-alert", "dry_run": False},
    ("POST", "/api/playbook-runs/{run_id}/steps/{step_id}/approve"): {"comment": "mine now"},
    ("POST", "/api/playbook-runs/{run_id}/steps/{step_id}/reject"): {"comment": "mine now"},
}
ID_ROUTES = sorted(key for key in POLICY if "{" in key[1])


@pytest.fixture
def world(store: Store, tmp_path: Path) -> tuple[TestClient, dict[str, str]]:
    for tenant in ("police", "health"):
        accounts.add_tenant(store, tenant_id=tenant, name=tenant)
    for role in ROLES:
        accounts.add_user(store, username=role, password=PASSWORD, memberships=[Membership("police", role)])
    accounts.add_user(store, username="health_ra", password=PASSWORD, memberships=[Membership("health", "rule_admin")])
    alert = store.create_doc(
        "alerts", {"tenant": "health", "status": "new", "last_seen": "2026-11-20T00:00:00.000Z"}, doc_id="health-alert"
    )
    case = store.create_doc(
        "cases",
        {"tenant": "health", "title": "t", "status": "open", "severity": "low", "created_at": "x", "updated_at": "x"},
    )
    sensor = store.create_doc("sensors", {"tenant": "health", "name": "s", "kind": "logs", "created_at": "x"})
    shipped = load_rules([shipped_rules_dir()])
    rule = lifecycle.save_custom_rule(
        store, text=HEALTH_RULE, author="health_ra", reason="own rule", scope=None, allowed=("health",), shipped=shipped
    )
    exception = lifecycle.add_exception(
        store,
        rule_id=SUDO_SHELL,
        conditions={"user.name": ["nurse"]},
        reason="theirs",
        author="health_ra",
        tenant="health",
        expires_at=None,
        shipped=shipped,
    )
    key, _ = apikeys.create_api_key(store, name="theirs", tenant="health", role="rule_admin", owner="health_ra")
    # a playbook (province-wide, like every playbook file), a run of it and a block in health,
    # and (below) a health intel list of the same name
    (tmp_path / "theirs.yml").write_text(PLAYBOOK)
    playbook = load_playbook(PLAYBOOK, source="theirs.yml")
    run = start_run(store, playbook=playbook, alert_id=alert.id, scope=("health",), actor="health_ra")
    settings = Settings(data_dir=tmp_path, playbooks={"dirs": [tmp_path]})
    audit.configure(store, settings)
    runner = Runner(store, settings, Library(playbooks={"theirs": playbook}, sources={"theirs": "theirs.yml"}))
    assert runner.execute(run.id) == "waiting_approval"  # a gate the other agency's people could decide
    runner.close()
    block = store.create_doc(
        "containment",
        {
            "tenant": "health",
            "address": "203.0.113.9",
            "target": "local",
            "status": "active",
            "expires_at": "2999-01-01T00:00:00.000Z",
        },
    )
    listed = Parsed()
    listed.add(Indicator("ip", "192.0.2.1"))
    intel_lists.import_list(store, listed, tenant="health", name="theirs", fmt="csv", source="t.csv")
    report = stored.generate(store, settings, week="2026-W48", tenant="health", generated_by="health_ra")
    ids = {
        "report_id": report.id,
        "run_id": run.id,
        "step_id": "block",
        "block_id": block.id,
        "key_id": key.id,
        "alert_id": alert.id,
        "case_id": case.id,
        "sensor_id": sensor.id,
        "rule_id": rule.id,
        "exception_id": exception.body["exceptions"][0]["id"],
        "username": "health_ra",  # a person of the other agency: never reset, disabled or enabled
        "tenant": "health",  # with "name": the other agency's threat-intel list
        "name": "theirs",  # and the province-wide playbook's name
    }
    return TestClient(create_app(settings, store)), ids


def snapshot(store: Store) -> dict[str, object]:
    # The world's last writes (a run's timeline reaching the alert) are not refreshed on ES; a
    # search before the index's next refresh saw the old version and the one after the routes
    # the new one (the CI failure of 2026-12-06).
    store.refresh()
    return {
        kind: sorted((d.id, d.version) for d in store.list_docs(kind, size=1000).items)
        for kind in (
            "alerts",
            "cases",
            "sensors",
            "rules",
            "apikeys",
            "users",
            "playbook_runs",
            "containment",
            "intel",
            "reports",
        )
    }


@pytest.mark.parametrize("role", ROLES)
def test_no_route_reaches_another_agencys_objects(
    world: tuple[TestClient, dict[str, str]], store: Store, role: str
) -> None:
    client, ids = world
    token = client.post("/api/auth/login", json={"username": role, "password": PASSWORD}).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    before = snapshot(store)
    for method, template in ID_ROUTES:
        if template.startswith("/api/jobs/"):
            continue  # scheduled jobs are province-wide configuration, for province admins only (test_s13s_api)
        path = re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], template)
        if template.startswith("/api/rules/{rule_id}") and "exception_id" in template:
            path = path.replace(ids["rule_id"], SUDO_SHELL)  # a shared rule, another agency's exception
        if (method, template) == ("GET", "/api/playbooks/{name}"):
            continue  # playbooks are province-wide files, not an agency's objects: every reader sees them
        response = client.request(method, path, headers=headers, json=BODIES.get((method, template)))
        # deciding a gate is open to any person; the gate's roles and agency are checked in the service
        allowed = POLICY[(method, template)] in (*permissions_of(role), AUTHENTICATED)
        expected = 404 if allowed else 403
        assert response.status_code == expected, (role, method, template, response.status_code, response.text)
    assert snapshot(store) == before
