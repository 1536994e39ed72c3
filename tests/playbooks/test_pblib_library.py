"""Item 1 of the library brief: the shipped playbooks (``playbooks/library/``) validate, load by
default beside ``playbooks.dirs``, trigger on the alerts they are written for (made by the real
engine from the rules' own samples) and not on others, and run end to end on both stores with
real components: an SMTP relay (aiosmtpd, STARTTLS), an HTTP receiver for webhooks and the STIX
bundle, and nftables — all in network namespaces (``test_contain``'s firewall and peer), the
runner's threads in the firewall one, as the SOC host."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from playbooks.actions.contain import list_blocks
from playbooks.format import LIBRARY_DIR, check_file, configured_library
from playbooks.records import FINAL, auto_run_id, get_run
from playbooks.runner import Runner
from playbooks.service import decide, start_run
from soc_core.auth import Membership
from soc_core.config import Settings
from soc_core.store import Store
from soc_core.store.elasticsearch import ElasticsearchStore
from tests.playbooks.library_support import (
    DEFENDER_THREAT,
    IOC_ADDRESS,
    PORT_SCAN,
    SQL_INJECTION,
    SSH_BRUTEFORCE,
    SUDO_ROOT_SHELL,
    _samples,
    defender_event,
    forward_into,
    intel_event,
    load_ioc_list,
    make_alerts,
)
from tests.playbooks.support import Listener, in_netns, listen
from tests.playbooks.test_contain import ATTACKER4, BYSTANDER4, FIREWALL4, FIREWALL6, FirewallNet, firewall_net
from tests.playbooks.test_notify_email import PASSWORD, USER, Inbox, _start
from tests.support.netns import ip
from workflow import audit
from workflow.principals import Principal

__all__ = ["firewall_net"]  # the fixture, used here by name

LIBRARY = {
    "ssh-bruteforce": SSH_BRUTEFORCE,
    "web-attack": SQL_INJECTION,
    "ioc-hit": "intel:c2",
    "internal-port-scan": PORT_SCAN,
    "windows-malware": DEFENDER_THREAT,
}
PUBLIC, PORT = "192.31.196.10", 8080  # the agency's chat hook and the national centre, in the namespace
AGENCY_MAIL = "soc@congan.gov.vn"
PORTAL = "portal.congan.gov.vn"
INVENTORY = {
    "assets": [
        {"name": "web01", "ips": [FIREWALL4], "owner": "quantri.web01@congan.gov.vn", "criticality": "critical",
         "agency": "police"},
        {"name": PORTAL, "ips": ["10.1.2.80"], "owner": "cntt@congan.gov.vn", "criticality": "high",
         "agency": "police"},
        {"name": "pc-ketoan-07", "ips": ["10.0.0.66"], "owner": "nguyen.van.a@congan.gov.vn", "agency": "police"},
        {"name": "srv-db", "ips": ["10.0.0.9"], "criticality": "high", "agency": "police"},
        {"name": "PC-KT-017.congan.local", "ips": [BYSTANDER4], "owner": "it.tuan@congan.gov.vn",
         "agency": "police"},
    ]
}  # fmt: skip


def person(name: str, tenant: str, role: str) -> Principal:
    return Principal(id=name, name=name, kind="user", memberships=(Membership(tenant, role),))  # type: ignore[arg-type]


# --- the files ------------------------------------------------------------------------------


def test_pblib_1_every_library_file_validates() -> None:
    files = sorted(LIBRARY_DIR.glob("*.yml"))
    assert len(files) == len(LIBRARY)
    for file in files:
        checked = check_file(file)
        assert checked.errors == [], [error.render() for error in checked.errors]
        assert checked.playbook is not None and checked.playbook.trigger.type == "alert"
        assert checked.playbook.description


def test_pblib_1_the_library_loads_by_default_and_a_configured_playbook_overrides_it(tmp_path: Path) -> None:
    assert sorted(configured_library([]).playbooks) == sorted(LIBRARY)
    assert configured_library([], shipped=False).playbooks == {}
    assert configured_library([], shipped=Settings(data_dir=tmp_path).playbooks.library).playbooks  # on by default
    own = tmp_path / "books"
    own.mkdir()
    text = (LIBRARY_DIR / "web_attack.yml").read_text(encoding="utf-8").replace("version: 1", "version: 7")
    (own / "web.yml").write_text(text, encoding="utf-8")
    library = configured_library([own])
    assert library.playbooks["web-attack"].version == 7 and library.sources["web-attack"] == str(own / "web.yml")
    assert library.errors == [] and len(library.playbooks) == len(LIBRARY)


def test_pblib_1_each_playbook_triggers_on_its_alert_and_no_other(store: Store, tmp_path: Path) -> None:
    alerts = make_alerts(store, tmp_path)
    assert set(LIBRARY.values()) | {SUDO_ROOT_SHELL} <= set(alerts), sorted(alerts)
    library = configured_library([])
    for name, playbook in library.playbooks.items():
        fired = {rule for rule, alert in alerts.items() if playbook.trigger.matches(alert)}
        assert LIBRARY[name] in fired, name
        others = {LIBRARY[other] for other in LIBRARY if other != name} | {SUDO_ROOT_SHELL}
        assert not fired & others, (name, fired & others)


# --- end to end -----------------------------------------------------------------------------


@dataclass
class World:
    store: Store
    settings: Settings
    net: FirewallNet
    inbox: Inbox
    receiver: Listener
    runner: Runner
    tmp: Path

    def alerts(self, events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return make_alerts(self.store, self.tmp, events)

    def run_all(self) -> None:
        """Drive the runner (in the firewall namespace) until no run is pending or running."""
        with in_netns(self.net.firewall):
            for _ in range(50):
                for future in self.runner.poll_once():
                    future.result(timeout=120)
                self.store.refresh()
                runs = self.store.list_docs("playbook_runs", size=100).items
                if runs and all(r.body["status"] in (*FINAL, "waiting_approval") for r in runs):
                    return
        raise AssertionError(f"runs still going: {[r.body['status'] for r in runs]}")

    def execute(self, run_id: str) -> str:
        with in_netns(self.net.firewall):
            return self.runner.execute(run_id)

    def steps(self, run_id: str) -> dict[str, dict[str, Any]]:
        self.store.refresh()
        return {step["id"]: step for step in get_run(self.store, run_id).body["steps"]}

    def approve(self, run_id: str, step_id: str) -> str:
        decide(self.store, run_id=run_id, step_id=step_id, principal=person("lan", "police", "analyst"), approve=True)
        return self.execute(run_id)

    def case(self, run_id: str) -> dict[str, Any]:
        self.store.refresh()
        case_id = get_run(self.store, run_id).body["case_id"]
        return {**self.store.get_doc("cases", case_id).body, "id": case_id}


@pytest.fixture
def world(store: Store, firewall_net: FirewallNet, tmp_path: Path) -> Iterator[World]:
    ip("-n", firewall_net.firewall, "addr", "add", f"{PUBLIC}/32", "dev", "lo")
    inventory = tmp_path / "assets.yml"
    inventory.write_text(yaml.safe_dump(INVENTORY), encoding="utf-8")
    inbox = Inbox()
    with in_netns(firewall_net.firewall):  # the relay and the receiver listen in the SOC's namespace
        controller, ca_file = _start(inbox, tmp_path, tls=True)
        receiver = listen(PUBLIC, PORT)
    settings = Settings(
        data_dir=tmp_path,
        playbooks={
            "retry_backoff_seconds": 0.01,
            "webhook": {"allow": [PUBLIC], "allow_plain_http": True},
            "smtp": {
                "host": "127.0.0.1",
                "port": controller.port,
                "username": USER,
                "password": PASSWORD,
                "sender": "soc@tinh.gov.vn",
                "ca_file": ca_file,
            },
            "contain": {"own_networks": [f"{FIREWALL6}/128"]},
            "assets": {"paths": [inventory]},
            "share": {"url": f"http://{PUBLIC}:{PORT}/taxii/collections/national/objects/", "allow_plain_http": True},
            "agencies": {"police": {"email": [AGENCY_MAIL], "webhook": f"http://{PUBLIC}:{PORT}/hook/police"}},
        },
    )
    audit.configure(store, settings)
    runner = Runner(store, settings, configured_library([]))
    with ExitStack() as stack:
        if isinstance(store, ElasticsearchStore):  # the node, reached from the SOC's namespace too
            stack.enter_context(forward_into(firewall_net.firewall, store.url))
        try:
            yield World(store, settings, firewall_net, inbox, receiver, runner, tmp_path)
        finally:
            runner.close()
            controller.stop()
            receiver.server.shutdown()
            receiver.server.server_close()


def _replace(events: list[dict[str, Any]], old: str, new: str) -> list[dict[str, Any]]:
    """The sample events with ``old`` written ``new``, as other events (ids of their own)."""
    moved = [json.loads(json.dumps(event).replace(old, new)) for event in events]
    return [{**event, "event.id": f"{event['event.id']}-{new}"} for event in moved]


def test_pblib_1_ssh_bruteforce_end_to_end(world: World) -> None:
    # the samples' attacker, moved to the address that can reach the SOC host in the namespace
    alert = world.alerts(_replace(_samples(SSH_BRUTEFORCE), "198.51.100.23", ATTACKER4))[SSH_BRUTEFORCE]
    world.run_all()
    run_id = auto_run_id("ssh-bruteforce", alert["id"])
    steps = world.steps(run_id)
    assert steps["assets"]["output"]["criticality"] == "critical"  # web01, the attacked server
    case = world.case(run_id)
    assert case["severity"] == "critical" and alert["id"] in case["alert_ids"]
    assert {"type": "ip", "value": ATTACKER4} in [{"type": o["type"], "value": o["value"]} for o in case["observables"]]
    [message] = world.inbox.messages
    assert message["To"] == AGENCY_MAIL and message["Subject"].startswith("[Canh Gác] Vụ việc")  # Vietnamese
    assert ATTACKER4 in message.get_body().get_content()  # type: ignore[union-attr]
    [hook] = world.receiver.posted
    assert hook["path"] == "/hook/police"
    assert hook["json"]["source_ip"] == [ATTACKER4] and hook["json"]["case_id"] == case["id"]
    assert hook["json"]["failures"] == 5 and hook["json"]["host"] == ["web01"]
    assert steps["block"]["status"] == "waiting_approval"
    assert get_run(world.store, run_id).body["status"] == "waiting_approval"

    # approved, the automatic run blocks in dry-run: it says what it would do, traffic flows
    assert world.approve(run_id, "block") == "succeeded"
    assert world.steps(run_id)["block"]["output"]["dry_run"] is True
    assert world.net.reaches(ATTACKER4)
    # a person runs it live: after the approval the source is dropped, the bystander is not
    live = start_run(world.store, playbook=world.runner.library.get("ssh-bruteforce"), alert_id=alert["id"],
                     scope=None, actor="lan", dry_run=False)  # fmt: skip
    assert world.execute(live.id) == "waiting_approval"
    assert world.approve(live.id, "block") == "succeeded"
    assert not world.net.reaches(ATTACKER4)
    assert world.net.reaches(BYSTANDER4)
    [block] = list_blocks(world.store, tenants=("police",))
    assert block.body["address"] == ATTACKER4 and case["id"] in block.body["reason"]


def test_pblib_1_web_attack_end_to_end(world: World) -> None:
    [attack] = [e for e in _samples(SQL_INJECTION) if "UNION" in e["url.original"]][:1]
    del attack["user_agent.original"]  # the injection alone, not the sqlmap user agent too
    alert = world.alerts([{**attack, "host.name": PORTAL}])[SQL_INJECTION]
    world.run_all()
    run_id = auto_run_id("web-attack", alert["id"])
    assert get_run(world.store, run_id).body["status"] == "succeeded"
    case = world.case(run_id)
    assert case["title"] == f"SQL Injection Attempt in Web Request — {PORTAL}"
    assert "cntt@congan.gov.vn" in case["description"] and case["severity"] == "medium"
    [message] = world.inbox.messages
    assert message["To"] == AGENCY_MAIL
    [hook] = world.receiver.posted
    assert hook["json"]["kind"] == "web-attack" and hook["json"]["case_id"] == case["id"]


def test_pblib_1_ioc_hit_end_to_end(world: World) -> None:
    load_ioc_list(world.store, world.tmp)
    alert = world.alerts([intel_event()])["intel:c2"]
    world.run_all()
    run_id = auto_run_id("ioc-hit", alert["id"])
    steps = world.steps(run_id)
    assert get_run(world.store, run_id).body["status"] == "succeeded"
    [hit] = steps["intel"]["output"]["hits"]
    assert hit["list"] == "c2" and hit["source"] == "VNCERT" and hit["confidence"] == 90
    case = world.case(run_id)
    assert case["title"] == f"IOC: ip {IOC_ADDRESS}" and "VNCERT" in case["description"]
    assert IOC_ADDRESS in [o["value"] for o in case["observables"]]
    bundle = steps["share"]["output"]["bundle"]
    assert any(IOC_ADDRESS in o.get("pattern", "") for o in bundle["objects"] if o["type"] == "indicator")
    assert world.receiver.posted == []  # kept in the run: not posted unless asked
    # asked: the bundle goes to the national centre's endpoint
    posted = start_run(world.store, playbook=world.runner.library.get("ioc-hit"), alert_id=alert["id"], scope=None,
                       actor="lan", inputs={"post_to_national_centre": True})  # fmt: skip
    assert world.execute(posted.id) == "succeeded"
    [sent] = world.receiver.posted
    assert sent["path"] == "/taxii/collections/national/objects/" and sent["json"]["type"] == "bundle"
    assert world.steps(posted.id)["share"]["output"]["post"]["status"] == 200


def test_pblib_1_internal_port_scan_end_to_end(world: World) -> None:
    inside = world.alerts(_samples(PORT_SCAN))[PORT_SCAN]
    world.run_all()
    run_id = auto_run_id("internal-port-scan", inside["id"])
    assert get_run(world.store, run_id).body["status"] == "succeeded"
    case = world.case(run_id)
    assert case["title"] == "Port scan from inside: pc-ketoan-07 (10.0.0.66)"
    assert "srv-db" in case["description"]
    recipients = sorted(str(message["To"]) for message in world.inbox.messages)
    assert recipients == ["nguyen.van.a@congan.gov.vn", AGENCY_MAIL]
    # a scan from outside the inventory opens no case and writes to no one
    world.inbox.messages.clear()
    world.alerts(_replace(_samples(PORT_SCAN), "10.0.0.66", "203.0.113.99"))
    [other] = [
        {**d.body, "id": d.id}
        for d in world.store.list_docs("alerts", size=100).items
        if d.body["rule.id"] == PORT_SCAN and d.body["entities"]["source.ip"] == ["203.0.113.99"]
    ]
    world.run_all()
    outside_run = get_run(world.store, auto_run_id("internal-port-scan", other["id"])).body
    assert outside_run["status"] == "succeeded" and outside_run["case_id"] is None
    assert {s["id"]: s["status"] for s in outside_run["steps"]}["case"] == "skipped"
    assert world.inbox.messages == []


def test_pblib_1_windows_malware_end_to_end(world: World) -> None:
    alert = world.alerts([defender_event()])[DEFENDER_THREAT]
    world.run_all()
    run_id = auto_run_id("windows-malware", alert["id"])
    steps = world.steps(run_id)
    assert steps["isolate"]["status"] == "waiting_approval"
    case = world.case(run_id)
    assert case["title"] == "Windows Defender Threat Detected — PC-KT-017.congan.local"
    assert "it.tuan@congan.gov.vn" in case["description"]
    assert [str(m["To"]) for m in world.inbox.messages] == [AGENCY_MAIL]
    assert [h["path"] for h in world.receiver.posted] == ["/hook/police"]
    live = start_run(world.store, playbook=world.runner.library.get("windows-malware"), alert_id=alert["id"],
                     scope=None, actor="lan", dry_run=False)  # fmt: skip
    assert world.execute(live.id) == "waiting_approval"
    assert world.net.reaches(BYSTANDER4)
    assert world.approve(live.id, "isolate") == "succeeded"
    assert not world.net.reaches(BYSTANDER4)  # the infected host is cut off
    assert world.net.reaches(ATTACKER4)
