"""Issue 12, pbweb item 1: the playbooks API over real HTTP handling (TestClient) on both stores.

Playbooks are files: listed, viewed and validated (every problem with its line), never written
through the API. Runs start on an alert or a case the caller can see (another agency's: 404),
dry-run unless asked live; runs are listed with filters and paged; a gate is decided only by
its roles in its agency and the approver is recorded; cancel and rerun; containment blocks
listed and lifted by supervisors. Every change is in the audit trail. (Threat-intel lists have
their API tests in tests/intel/test_i6_api.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from playbooks.format import Library, load_library
from playbooks.runner import Runner
from soc_api.main import create_app
from soc_api.services import accounts
from soc_core.auth import PROVINCE, Membership
from soc_core.config import Settings
from soc_core.store import Store
from tests.playbooks.conftest import make_alert
from workflow import cases
from workflow.principals import Actor, Principal

PASSWORD = "a-very-long-password"

TRIAGE = """\
name: ssh-triage
description: tag the alert, then block the source after an approval
version: 2
dry_run: false
steps:
  - id: tag
    action: alert.tag
    with: {add: [playbook-seen]}
  - id: block
    action: block_ip
    with: {address: "{{ alert.entities['source.ip'][0] }}", reason: brute force}
    approval: {roles: [analyst, manager], agency: own}
"""
BROKEN = """\
name: Broken Name
steps:
  - id: one
    action: no.such.action
  - id: two
    action: alert.tag
    timeout: forever
"""


@pytest.fixture
def setup(store: Store, tmp_path: Path) -> tuple[TestClient, Settings]:
    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / "ssh-triage.yml").write_text(TRIAGE)
    (folder / "broken.yml").write_text(BROKEN)
    settings = Settings(data_dir=tmp_path, playbooks={"dirs": [folder], "library": False})
    for tenant in ("police", "health"):
        accounts.add_tenant(store, tenant_id=tenant, name=tenant)
        for role in ("analyst", "rule_admin", "manager", "admin"):
            accounts.add_user(
                store, username=f"{role}_{tenant}", password=PASSWORD, memberships=[Membership(tenant, role)]
            )
    accounts.add_user(store, username="hq", password=PASSWORD, memberships=[Membership(PROVINCE, "admin")])
    return TestClient(create_app(settings, store)), settings


def auth(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def audit_actions(store: Store) -> list[tuple[str, str]]:
    page = store.list_docs("audit", size=1000)
    return [(str(d.body.get("action")), str(d.body.get("actor"))) for d in page.items]


def runner(store: Store, settings: Settings) -> Runner:
    library: Library = load_library(settings.playbooks.dirs)
    return Runner(store, settings, library)


def test_pbw1_list_view_and_validate(setup: tuple[TestClient, Settings]) -> None:
    client, _ = setup
    for who in ("analyst_police", "rule_admin_health", "manager_police", "admin_police"):
        listed = client.get("/api/playbooks", headers=auth(client, who))
        assert listed.status_code == 200, (who, listed.text)
    body = listed.json()
    assert [p["name"] for p in body["items"]] == ["ssh-triage"]
    assert body["items"][0]["steps"][1] == {
        "id": "block",
        "action": "block_ip",
        "gated": True,
        "approval": {"roles": ["analyst", "manager"], "agency": "own", "expires": None},
    }
    # the broken file: every problem, each with its file name and line (never the server's path)
    wheres = {e["where"] for e in body["errors"]}
    assert {"broken.yml:1", "broken.yml:4", "broken.yml:7"} <= wheres, body["errors"]
    headers = auth(client, "analyst_police")
    one = client.get("/api/playbooks/ssh-triage", headers=headers).json()
    assert one["source"] == TRIAGE and one["definition"]["steps"][0]["with"] == {"add": ["playbook-seen"]}
    assert client.get("/api/playbooks/nope", headers=headers).status_code == 422
    checked = client.post("/api/playbooks/validate", content=BROKEN, headers=headers).json()
    assert checked["valid"] is False and checked["playbook"] is None
    assert {1, 4, 7} <= {e["line"] for e in checked["errors"]}
    assert all(e["where"].startswith("body:") for e in checked["errors"])
    good = client.post("/api/playbooks/validate", content=TRIAGE, headers=headers).json()
    assert (
        good == {"valid": True, "errors": [], "playbook": good["playbook"]} and good["playbook"]["name"] == "ssh-triage"
    )
    assert client.post("/api/playbooks/validate", content=b"\xff\xfe", headers=headers).status_code == 400
    # no route writes a playbook: they are files
    assert client.put("/api/playbooks/ssh-triage", content=TRIAGE, headers=auth(client, "hq")).status_code in (403, 405)


def test_pbw1_validate_body_limit(setup: tuple[TestClient, Settings]) -> None:
    client, settings = setup
    big = "# " + "x" * settings.api.limits.playbook_bytes + "\n"
    answer = client.post("/api/playbooks/validate", content=big, headers=auth(client, "analyst_police"))
    assert answer.status_code == 413 and "playbook_bytes" in answer.json()["detail"]


def test_pbw1_run_approve_and_record(setup: tuple[TestClient, Settings], store: Store) -> None:
    client, settings = setup
    alert = make_alert(store, tenant="police")
    other = make_alert(store, tenant="health")
    ana = auth(client, "analyst_police")
    # roles: rule_admin and manager read but do not run; an admin does
    for who in ("rule_admin_police", "manager_police"):
        answer = client.post("/api/playbooks/ssh-triage/run", json={"alert_id": alert}, headers=auth(client, who))
        assert answer.status_code == 403, who
    # another agency's alert does not exist for the caller
    assert client.post("/api/playbooks/ssh-triage/run", json={"alert_id": other}, headers=ana).status_code == 404
    bad = client.post("/api/playbooks/ssh-triage/run", json={"alert_id": alert, "case_id": "x"}, headers=ana)
    assert bad.status_code == 422
    started = client.post("/api/playbooks/ssh-triage/run", json={"alert_id": alert}, headers=ana)
    assert started.status_code == 201, started.text
    run = started.json()
    assert run["status"] == "pending" and run["tenant"] == "police" and run["started_by"] == "analyst_police"
    assert runner(store, settings).execute(run["id"]) == "waiting_approval"
    # the gate: not for a rule admin, not for another agency's analyst, not for an API key
    for who in ("rule_admin_police", "analyst_health", "admin_health"):
        refused = client.post(f"/api/playbook-runs/{run['id']}/steps/block/approve", json={}, headers=auth(client, who))
        assert refused.status_code in (403, 404), (who, refused.text)
    mine = client.get("/api/approvals", headers=auth(client, "manager_police")).json()["items"]
    assert [(i["run"]["id"], i["step"]["id"]) for i in mine] == [(run["id"], "block")]
    assert client.get("/api/approvals", headers=auth(client, "manager_health")).json()["items"] == []
    approved = client.post(
        f"/api/playbook-runs/{run['id']}/steps/block/approve",
        json={"comment": "go"},
        headers=auth(client, "manager_police"),
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["steps"][1]["approval"]["decided_by"] == "manager_police"
    again = client.post(f"/api/playbook-runs/{run['id']}/steps/block/reject", json={}, headers=ana)
    assert again.status_code == 409 and "not waiting" in again.json()["detail"]
    assert runner(store, settings).execute(run["id"]) == "succeeded"
    done = client.get(f"/api/playbook-runs/{run['id']}", headers=ana).json()
    block = done["steps"][1]
    # started without an explicit dry_run=false: the containment step only planned its command
    assert block["status"] == "succeeded" and block["output"]["dry_run"] is True
    assert block["output"]["address"] == "203.0.113.7" and block["approval"]["decision"] == "approved"
    assert store.get_doc("alerts", alert).body["tags"] == ["playbook-seen"]
    # another agency's run is invisible; the run shows on the alert's timeline and in the audit trail
    assert client.get(f"/api/playbook-runs/{run['id']}", headers=auth(client, "analyst_health")).status_code == 404
    timeline = store.get_doc("alerts", alert).body["timeline"]
    assert any(e["run_id"] == run["id"] and "approved" in e["text"] for e in timeline)
    actions = audit_actions(store)
    assert ("playbook.run.start", "analyst_police") in actions
    assert ("playbook.approval.approved", "manager_police") in actions


def test_pbw1_runs_history_cancel_rerun_and_case_runs(setup: tuple[TestClient, Settings], store: Store) -> None:
    client, _ = setup
    ana = auth(client, "analyst_police")
    alerts = [make_alert(store, tenant="police") for _ in range(3)]
    runs = [
        client.post("/api/playbooks/ssh-triage/run", json={"alert_id": a}, headers=ana).json()["id"] for a in alerts
    ]
    health_alert = make_alert(store, tenant="health")
    client.post(
        "/api/playbooks/ssh-triage/run", json={"alert_id": health_alert}, headers=auth(client, "analyst_health")
    )
    case = cases.create_case(
        store,
        title="brute force",
        description="",
        severity="high",
        alert_ids=[alerts[0]],
        scope=("police",),
        actor=Actor(principal=Principal(id="analyst_police", name="a", kind="user")),
    )
    on_case = client.post("/api/playbooks/ssh-triage/run", json={"case_id": case.id}, headers=ana)
    assert on_case.status_code == 201 and on_case.json()["case_id"] == case.id
    assert on_case.json()["alert_id"] is None
    assert (
        client.post(
            "/api/playbooks/ssh-triage/run", json={"case_id": case.id}, headers=auth(client, "analyst_health")
        ).status_code
        == 404
    )
    # paged, newest first, only the caller's agency
    first = client.get("/api/playbook-runs", params={"size": 2}, headers=ana).json()
    second = client.get("/api/playbook-runs", params={"size": 2, "cursor": first["next_cursor"]}, headers=ana).json()
    seen = [r["id"] for r in first["items"] + second["items"]]
    assert set(seen) == {*runs, on_case.json()["id"]} and len(seen) == 4
    assert {r["tenant"] for r in first["items"] + second["items"]} == {"police"}
    by_alert = client.get("/api/playbook-runs", params={"alert_id": alerts[1]}, headers=ana).json()["items"]
    assert [r["id"] for r in by_alert] == [runs[1]]
    by_case = client.get("/api/playbook-runs", params={"case_id": case.id}, headers=ana).json()["items"]
    assert {r["id"] for r in by_case} >= {on_case.json()["id"]}
    assert client.get("/api/playbook-runs", params={"playbook": "other"}, headers=ana).json()["items"] == []
    assert client.get("/api/playbook-runs", params={"status": "bogus"}, headers=ana).status_code == 422
    # cancel and rerun: the run's agency only; a manager reads but does not steer
    assert (
        client.post(f"/api/playbook-runs/{runs[2]}/cancel", headers=auth(client, "manager_police")).status_code == 403
    )
    assert (
        client.post(f"/api/playbook-runs/{runs[2]}/cancel", headers=auth(client, "analyst_health")).status_code == 404
    )
    cancelled = client.post(f"/api/playbook-runs/{runs[2]}/cancel", headers=ana).json()
    assert cancelled["status"] == "cancelled" and cancelled["cancelled_by"] == "analyst_police"
    assert client.post(f"/api/playbook-runs/{runs[2]}/cancel", headers=ana).status_code == 422
    cancelled_only = client.get("/api/playbook-runs", params={"status": "cancelled"}, headers=ana).json()["items"]
    assert [r["id"] for r in cancelled_only] == [runs[2]]
    again = client.post(f"/api/playbook-runs/{runs[2]}/rerun", headers=ana)
    assert again.status_code == 201 and again.json()["rerun_of"] == runs[2] and again.json()["status"] == "pending"
    actions = [a for a, _ in audit_actions(store)]
    assert "playbook.run.cancel" in actions and "playbook.run.rerun" in actions


def test_pbw1_containment_blocks(setup: tuple[TestClient, Settings], store: Store) -> None:
    client, _ = setup
    future = "2999-01-01T00:00:00.000Z"
    for tenant, address in (("police", "203.0.113.7"), ("health", "198.51.100.9")):
        store.create_doc(
            "containment",
            {
                "tenant": tenant,
                "address": address,
                "target": "gw-gone",  # a gateway no longer configured: lifting it fails
                "status": "active",
                "created_at": "2026-12-01T00:00:00.000Z",
                "expires_at": future,
            },
            doc_id=f"block-{tenant}",
        )
    listed = client.get("/api/containment/blocks", headers=auth(client, "analyst_police")).json()["items"]
    assert [b["body"]["address"] for b in listed] == ["203.0.113.7"]
    assert len(client.get("/api/containment/blocks", headers=auth(client, "hq")).json()["items"]) == 2
    assert client.get("/api/containment/blocks", headers=auth(client, "rule_admin_police")).status_code == 403
    assert (
        client.post("/api/containment/blocks/block-police/unblock", headers=auth(client, "analyst_police")).status_code
        == 403
    )
    assert (
        client.post("/api/containment/blocks/block-health/unblock", headers=auth(client, "manager_police")).status_code
        == 404
    )
    failed = client.post("/api/containment/blocks/block-police/unblock", headers=auth(client, "manager_police"))
    assert failed.status_code == 502 and "gw-gone" in failed.json()["detail"], failed.text
    assert store.get_doc("containment", "block-police").body["status"] == "active"
