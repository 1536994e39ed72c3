"""Alert triage, cases and the audit trail through the API, on every store."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from soc_api.main import create_app
from soc_api.services import accounts
from soc_core.auth import PROVINCE, Membership
from soc_core.config import Settings
from soc_core.events import make_event
from soc_core.store import Store
from workflow import audit
from workflow.alerts import WorkflowError, apply_change
from workflow.cases import extract_observables

PASSWORD = "a-very-long-password"


@pytest.fixture
def client(store: Store) -> TestClient:
    for tenant in ("police", "health"):
        accounts.add_tenant(store, tenant_id=tenant, name=tenant)
    accounts.add_user(store, username="ana", password=PASSWORD, memberships=[Membership("police", "analyst")])
    accounts.add_user(store, username="hoa", password=PASSWORD, memberships=[Membership("health", "analyst")])
    accounts.add_user(store, username="mai", password=PASSWORD, memberships=[Membership("police", "manager")])
    accounts.add_user(store, username="boss", password=PASSWORD, memberships=[Membership(PROVINCE, "admin")])
    event = make_event(
        tenant="police",
        dataset="system.auth",
        sensor_id="s",
        source="f",
        position=1,
        raw=b"x",
        fields={"source.ip": "203.0.113.45", "user.name": "root", "host.name": "portal", "message": "Failed"},
    )
    store.add_events([event])
    store.refresh()
    for i, tenant in enumerate(("police", "police", "health")):
        store.create_doc(
            "alerts",
            {
                "tenant": tenant,
                "status": "new",
                "rule.name": "SSH Brute Force",
                "rule.level": "high",
                "entities": {"source.ip": ["203.0.113.45"], "host.name": ["portal"]},
                "event_ids": [event["event.id"]] if tenant == "police" else [],
                "last_seen": f"2026-11-20T00:00:0{i}.000Z",
            },
            doc_id=f"alert{i}",
        )
    return TestClient(create_app(Settings(), store))


def login(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_status_workflow_with_optimistic_concurrency(client: TestClient) -> None:
    ana = login(client, "ana")
    alert = client.get("/api/alerts/alert0", headers=ana).json()
    ack = client.patch("/api/alerts/alert0", json={"version": alert["version"], "status": "acknowledged"}, headers=ana)
    assert ack.status_code == 200, ack.text
    assert ack.json()["acknowledged_at"]
    stale = client.patch("/api/alerts/alert0", json={"version": alert["version"], "assignee": "ana"}, headers=ana)
    assert stale.status_code == 409
    assert client.get("/api/alerts/alert0", headers=ana).json().get("assignee") is None
    done = client.patch(
        "/api/alerts/alert0",
        json={
            "version": ack.json()["version"],
            "status": "false_positive",
            "classification": "false_positive",
            "note": "tuning job",
            "assignee": "ana",
            "add_tags": ["tuning"],
        },
        headers=ana,
    )
    assert done.status_code == 200
    body = done.json()
    assert (body["status"], body["assignee"], body["tags"]) == ("false_positive", "ana", ["tuning"])
    assert body["resolved_at"]
    wrong = client.patch("/api/alerts/alert0", json={"version": body["version"], "status": "acknowledged"}, headers=ana)
    assert wrong.status_code == 422
    assert client.get("/api/alerts", params={"status": "false_positive"}, headers=ana).json()["items"][0]["id"] == (
        "alert0"
    )


def test_writes_respect_role_and_tenant(client: TestClient) -> None:
    mai = login(client, "mai")  # manager: reads, never writes
    alert = client.get("/api/alerts/alert0", headers=mai).json()
    assert (
        client.patch("/api/alerts/alert0", json={"version": alert["version"], "assignee": "x"}, headers=mai).status_code
        == 403
    )
    hoa = login(client, "hoa")
    assert (
        client.patch("/api/alerts/alert0", json={"version": alert["version"], "assignee": "x"}, headers=hoa).status_code
        == 404
    )
    assert client.post("/api/alerts/alert0/comments", json={"text": "hi"}, headers=hoa).status_code == 404


def test_mass_assignment_is_refused(client: TestClient) -> None:
    ana = login(client, "ana")
    alert = client.get("/api/alerts/alert0", headers=ana).json()
    for extra in ({"tenant": "health"}, {"id": "x"}, {"rule.level": "low"}, {"count": 0}):
        response = client.patch("/api/alerts/alert0", json={"version": alert["version"], **extra}, headers=ana)
        assert response.status_code == 422
    assert client.get("/api/alerts/alert0", headers=ana).json()["tenant"] == "police"


def test_comments_and_bulk_updates(client: TestClient) -> None:
    ana = login(client, "ana")
    text = 'checked \r\n\x1b[31m {"fake": "json"} <script>alert(1)</script>'
    response = client.post("/api/alerts/alert1/comments", json={"text": text}, headers=ana)
    assert response.status_code == 201
    assert response.json()["comments"][0]["text"] == text
    bulk = client.post(
        "/api/alerts/bulk", json={"ids": ["alert0", "alert1", "alert2", "nope"], "status": "acknowledged"}, headers=ana
    ).json()["items"]
    assert {i["id"]: i["status"] for i in bulk} == {
        "alert0": "updated",
        "alert1": "updated",
        "alert2": "not_found",  # another agency's alert does not exist for ana
        "nope": "not_found",
    }


def test_promote_to_case_with_observables_tasks_and_timeline(client: TestClient) -> None:
    ana = login(client, "ana")
    response = client.post(
        "/api/cases", json={"title": "Brute force on portal", "alert_ids": ["alert0", "alert1"]}, headers=ana
    )
    assert response.status_code == 201, response.text
    case = response.json()
    assert case["tenant"] == "police" and case["status"] == "open"
    observables = {(o["type"], o["value"]) for o in case["observables"]}
    assert {("ip", "203.0.113.45"), ("host", "portal"), ("user", "root")} <= observables
    alert = client.get("/api/alerts/alert0", headers=ana).json()
    assert alert["case_id"] == case["id"] and alert["status"] == "in_progress"
    again = client.post("/api/cases", json={"title": "dup", "alert_ids": ["alert0"]}, headers=ana)
    assert again.status_code == 422
    with_task = client.patch(
        f"/api/cases/{case['id']}", json={"version": case["version"], "add_task": "block 203.0.113.45"}, headers=ana
    ).json()
    task_id = with_task["tasks"][0]["id"]
    no_class = client.patch(
        f"/api/cases/{case['id']}", json={"version": with_task["version"], "status": "closed"}, headers=ana
    )
    assert no_class.status_code == 422
    closed = client.patch(
        f"/api/cases/{case['id']}",
        json={
            "version": with_task["version"],
            "complete_task": task_id,
            "status": "closed",
            "classification": "true_positive",
        },
        headers=ana,
    ).json()
    assert closed["status"] == "closed" and closed["tasks"][0]["done"] and closed["closed_at"]
    kinds = [entry["kind"] for entry in closed["timeline"]]
    assert kinds[0] == "created" and "status" in kinds and "task" in kinds
    hoa = login(client, "hoa")
    assert client.get(f"/api/cases/{case['id']}", headers=hoa).status_code == 404
    assert client.post("/api/cases", json={"title": "x", "alert_ids": ["alert0"]}, headers=hoa).status_code == 404


def test_audit_trail_records_changes_and_detects_tampering(client: TestClient, store: Store) -> None:
    ana = login(client, "ana")
    client.post("/api/auth/login", json={"username": "ana", "password": "wrong-password-1"})
    alert = client.get("/api/alerts/alert0", headers=ana).json()
    client.patch("/api/alerts/alert0", json={"version": alert["version"], "status": "acknowledged"}, headers=ana)
    client.get("/api/audit", headers=ana)  # analysts may not read the audit trail: a recorded denial
    boss = login(client, "boss")
    records = client.get("/api/audit", headers=boss).json()["items"]
    actions = [(r["action"], r["outcome"]) for r in records]
    assert ("auth.login", "failure") in actions
    assert ("alert.update", "success") in actions
    assert ("authz.denied", "failure") in actions
    update = next(r for r in records if r["action"] == "alert.update")
    assert update["before"]["status"] == "new" and update["after"]["status"] == "acknowledged"
    assert update["request_id"] and update["tenant"] == "police"
    assert all(PASSWORD not in str(r) and "wrong-password-1" not in str(r) for r in records)
    assert audit.verify_chain(store).ok
    first = store.list_docs("audit", sort="seq", descending=False, size=1).items[0]
    store.put_doc("audit", first.id, {**first.body, "actor": "someone-else"})
    assert any("edited" in problem.reason for problem in audit.verify_chain(store).problems)


def test_login_throttling_does_not_reveal_accounts(client: TestClient) -> None:
    for name in ("ana", "ghost"):
        codes = [
            client.post("/api/auth/login", json={"username": name, "password": "wrong-password-x"}).status_code
            for _ in range(6)
        ]
        assert codes == [401] * 4 + [429] * 2  # three free failures, the fourth starts a delay
    # the same (account, address) waits out its delay even with the right password
    assert client.post("/api/auth/login", json={"username": "ana", "password": PASSWORD}).status_code == 429


def test_workflow_rules_are_pure() -> None:
    body = {"status": "new"}
    acked = apply_change(body, actor="a", status="acknowledged", now="t1")
    assert acked["acknowledged_at"] == "t1" and body == {"status": "new"}
    with pytest.raises(WorkflowError):
        apply_change({"status": "in_progress"}, actor="a", status="new", now="t2")
    reopened = apply_change({"status": "resolved", "resolved_at": "t0"}, actor="a", status="in_progress", now="t3")
    assert "resolved_at" not in reopened


def test_observable_extraction() -> None:
    found = extract_observables(
        [
            {
                "source.ip": ["10.0.0.1", "not-an-ip"],
                "dns.question.name": "EVIL.example",
                "file.hash.sha256": "AB" * 32,
            },
            {"source.ip": "10.0.0.1", "user.name": "root"},
        ]
    )
    assert found == [
        {"type": "ip", "value": "10.0.0.1"},
        {"type": "domain", "value": "evil.example"},
        {"type": "hash", "value": "ab" * 32},
        {"type": "user", "value": "root"},
    ]
