"""Issue 12 loose ends over real HTTP handling (TestClient), on both stores where the store matters:

- item 2: deciding a gate that is not waiting (never reached, decided already, expired) is a
  conflict with the run's state, 409; a person who may not decide it is refused, 403, whatever
  the state; an API key is never an approver (403);
- item 3: with the default configuration (``playbooks.library: true``, no ``dirs``) the API lists
  and shows the shipped library (``playbooks/library/``), and a shipped playbook runs from it;
- item 4: a containment block lifted over HTTP — real nftables in a network namespace: the
  address is dropped before, flows after, the record says who lifted it and the trail has it.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from playbooks.format import LIBRARY_DIR, configured_library, load_library
from playbooks.records import mutate
from playbooks.runner import Runner
from soc_api.main import create_app
from soc_api.services import accounts, apikeys
from soc_core.auth import PROVINCE, Membership
from soc_core.config import Settings
from soc_core.store import Store
from tests.playbooks.conftest import make_alert
from tests.playbooks.test_contain import ATTACKER4, BYSTANDER4, FirewallNet, block, firewall_net  # noqa: F401
from tests.playbooks.test_contain import settings as contain_settings
from tests.support.netns import in_netns

PASSWORD = "a-very-long-password"
GATED = """\
name: gated
dry_run: false
steps:
  - id: tag
    action: alert.tag
    with: {add: [seen]}
  - id: block
    action: block_ip
    with: {address: "{{ alert.entities['source.ip'][0] }}", reason: brute force}
    approval: {roles: [manager], agency: own}
"""


def add_people(store: Store) -> None:
    for tenant in ("police", "health"):
        accounts.add_tenant(store, tenant_id=tenant, name=tenant)
        for role in ("analyst", "rule_admin", "manager", "admin"):
            accounts.add_user(
                store, username=f"{role}_{tenant}", password=PASSWORD, memberships=[Membership(tenant, role)]
            )
    accounts.add_user(store, username="hq", password=PASSWORD, memberships=[Membership(PROVINCE, "manager")])


def auth(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def audit_actions(store: Store) -> list[tuple[str, str, str]]:
    store.refresh()
    page = store.list_docs("audit", size=1000)
    return [(str(d.body.get("action")), str(d.body.get("actor")), str(d.body.get("target"))) for d in page.items]


@pytest.fixture
def gated(store: Store, tmp_path: Path) -> tuple[TestClient, Settings]:
    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / "gated.yml").write_text(GATED)
    settings = Settings(data_dir=tmp_path, playbooks={"dirs": [folder], "library": False})
    add_people(store)
    return TestClient(create_app(settings, store)), settings


def decide(client: TestClient, run_id: str, verb: str, who: str | dict[str, str]) -> Any:
    headers = auth(client, who) if isinstance(who, str) else who
    return client.post(f"/api/playbook-runs/{run_id}/steps/block/{verb}", json={"comment": "c"}, headers=headers)


def test_s13p_2_nothing_waiting_is_409_and_not_allowed_stays_403(
    gated: tuple[TestClient, Settings], store: Store
) -> None:
    client, settings = gated
    alert = make_alert(store, tenant="police")
    started = client.post("/api/playbooks/gated/run", json={"alert_id": alert}, headers=auth(client, "analyst_police"))
    assert started.status_code == 201, started.text
    run_id = started.json()["id"]
    # pending: the step never reached its gate; nothing to decide, for anyone
    early = decide(client, run_id, "approve", "manager_police")
    assert early.status_code == 409, early.text
    assert early.json()["title"] == "Nothing to decide" and "not waiting" in early.json()["detail"]
    assert Runner(store, settings, load_library(settings.playbooks.dirs)).execute(run_id) == "waiting_approval"
    # waiting: people without the gate's role (in the agency) are refused as people, 403
    for who in ("analyst_police", "rule_admin_police", "admin_police"):
        refused = decide(client, run_id, "approve", who)
        assert refused.status_code == 403, (who, refused.text)
        assert "may not decide" in refused.json()["detail"] and "manager" in refused.json()["detail"]
    assert decide(client, run_id, "approve", "manager_health").status_code == 404  # not their agency's run
    # an API key of a manager is not a person
    _, key = apikeys.create_api_key(store, owner="manager_police", name="bot", tenant="police", role="manager")
    by_key = decide(client, run_id, "approve", {"X-API-Key": key})
    assert by_key.status_code == 403 and "people, not by API keys" in by_key.json()["detail"], by_key.text
    approved = decide(client, run_id, "approve", "manager_police")
    assert approved.status_code == 200, approved.text
    # decided: another decision conflicts with the run's state (409), and says who decided
    for who in ("manager_police", "hq"):
        again = decide(client, run_id, "reject", who)
        assert again.status_code == 409, (who, again.text)
        assert "not waiting" in again.json()["detail"] and "approved by manager_police" in again.json()["detail"]
    # a person not allowed stays 403 even when nothing waits: who asks is checked first
    late = decide(client, run_id, "reject", "analyst_police")
    assert late.status_code == 403, late.text
    decisions = [a for a in audit_actions(store) if a[0].startswith("playbook.approval")]
    assert decisions == [("playbook.approval.approved", "manager_police", f"playbook_runs/{run_id}")], decisions


def test_s13p_2_expired_gate_is_409(gated: tuple[TestClient, Settings], store: Store) -> None:
    client, settings = gated
    alert = make_alert(store, tenant="police")
    run_id = client.post(
        "/api/playbooks/gated/run", json={"alert_id": alert}, headers=auth(client, "analyst_police")
    ).json()["id"]
    assert Runner(store, settings, load_library(settings.playbooks.dirs)).execute(run_id) == "waiting_approval"

    def expire(body: dict[str, Any]) -> dict[str, Any]:
        for step in body["steps"]:
            if step["id"] == "block":
                step["approval"] = {**step["approval"], "expires_at": "2020-01-01T00:00:00.000Z"}
        return body

    mutate(store, run_id, expire)
    expired = decide(client, run_id, "approve", "manager_police")
    assert expired.status_code == 409 and "expired at 2020-01-01" in expired.json()["detail"], expired.text
    assert decide(client, run_id, "approve", "rule_admin_police").status_code == 403


def test_s13p_3_api_lists_the_shipped_library(store: Store, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)  # the defaults: playbooks.library true, no dirs
    assert settings.playbooks.library is True and not settings.playbooks.dirs
    add_people(store)
    client = TestClient(create_app(settings, store))
    shipped = sorted(p.name for p in LIBRARY_DIR.glob("*.yml"))
    assert len(shipped) == 5, shipped
    names = {
        "internal-port-scan",
        "ioc-hit",
        "ssh-bruteforce",
        "web-attack",
        "windows-malware",
    }
    for who in ("analyst_police", "rule_admin_health", "manager_police", "admin_health", "hq"):
        listed = client.get("/api/playbooks", headers=auth(client, who))
        assert listed.status_code == 200, (who, listed.text)
        body = listed.json()
        assert body["errors"] == [], body["errors"]
        assert {p["name"] for p in body["items"]} == names, (who, body["items"])
        assert sorted(p["file"] for p in body["items"]) == shipped  # file names only: no server path
    ana = auth(client, "analyst_police")
    ssh = client.get("/api/playbooks/ssh-bruteforce", headers=ana).json()
    assert ssh["source"] == (LIBRARY_DIR / "ssh_bruteforce.yml").read_text()
    assert [s["id"] for s in ssh["steps"]][-1] == "block" and ssh["steps"][-1]["gated"] is True
    assert str(LIBRARY_DIR) not in client.get("/api/playbooks", headers=ana).text
    # the listed playbook is the one that runs: started over HTTP, driven by the runner's library
    alert = make_alert(store, tenant="police")
    started = client.post("/api/playbooks/ssh-bruteforce/run", json={"alert_id": alert}, headers=ana)
    assert started.status_code == 201, started.text
    library = configured_library(settings.playbooks.dirs, shipped=settings.playbooks.library)
    assert Runner(store, settings, library).execute(started.json()["id"]) == "waiting_approval"
    run = client.get(f"/api/playbook-runs/{started.json()['id']}", headers=ana).json()
    assert [(s["id"], s["status"]) for s in run["steps"]][:3] == [
        ("assets", "succeeded"),
        ("intel", "succeeded"),
        ("case", "succeeded"),
    ], run["steps"]


def test_s13p_4_unblock_over_http(firewall_net: FirewallNet, sqlite_store: Store, tmp_path: Path) -> None:  # noqa: F811
    store = sqlite_store
    config = contain_settings(tmp_path)
    add_people(store)
    output = block(firewall_net, config, store, address=ATTACKER4, duration_seconds=600, reason="ssh brute force")
    assert not firewall_net.reaches(ATTACKER4)
    block_id = str(output["block_id"])
    with ExitStack() as stack:
        # the client's thread (and every thread it starts) is made inside the firewall namespace,
        # so the route's nft child lands there, as if the SOC host were that namespace
        with in_netns(firewall_net.firewall):
            client = stack.enter_context(TestClient(create_app(config, store)))
        listed = client.get("/api/containment/blocks", headers=auth(client, "analyst_police")).json()["items"]
        assert [b["id"] for b in listed] == [block_id]
        # an analyst may not lift it; another agency's manager does not see it
        refused = client.post(f"/api/containment/blocks/{block_id}/unblock", headers=auth(client, "analyst_police"))
        assert refused.status_code == 403, refused.text
        hidden = client.post(f"/api/containment/blocks/{block_id}/unblock", headers=auth(client, "manager_health"))
        assert hidden.status_code == 404, hidden.text
        assert not firewall_net.reaches(ATTACKER4)
        lifted = client.post(f"/api/containment/blocks/{block_id}/unblock", headers=auth(client, "manager_police"))
        assert lifted.status_code == 200, lifted.text
        body = lifted.json()
        assert body["id"] == block_id and body["tenant"] == "police"
        assert body["body"]["status"] == "removed" and body["body"]["removed_by"] == "manager_police"
        firewall_net.flows(ATTACKER4)  # the kernel no longer drops it
        firewall_net.flows(BYSTANDER4)
        assert ATTACKER4 not in firewall_net.ruleset()
        assert client.get("/api/containment/blocks", headers=auth(client, "manager_police")).json()["items"] == []
    assert ("containment.unblock", "manager_police", f"containment/{block_id}") in audit_actions(store)
