"""Item 5 of the s13 intel brief: real attack tools drive the playbooks.

Two network namespaces joined by a veth pair: the *target* (an agency server: a real OpenSSH
``sshd``, and the SOC's own nftables and API, so a block lands where the attack arrives) and the
*attacker* (two addresses: the attacker's and a bystander's). ``hydra`` (THC Hydra) brute-forces
sshd's password login from the attacker's address. sshd's log lines go, with the header a syslog
daemon's file output gives them, into a file the real log sensor tails into the store; the real
engine with the shipped rules raises *SSH Brute Force*; the shipped ``ssh-bruteforce`` playbook
runs on it by itself (its block a dry run waiting for approval); an analyst starts it for real
through the API and approves the block through the API; the runner (in the target namespace)
adds the address to the nftables set; the attacker's next connections are dropped and hydra
cannot reach sshd, while the bystander's pass; a manager lifts the block through the API, and
the attacker's connections and hydra's logins reach sshd again.

Needs root, iproute2, openssh-server, nftables and hydra (``scripts/install-system-deps``). On
SQLite and Elasticsearch (the node relayed into the target namespace, where the API and the
runner's threads open their connections).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from detections.engine import DetectionEngine
from detections.loader import load_rules, shipped_rules_dir
from playbooks.format import configured_library
from playbooks.records import auto_run_id, get_run
from playbooks.runner import Runner
from sensors.config import InputConfig, SensorConfig
from sensors.netsensor import NetSensorSettings, NetworkSensor
from sensors.pipeline import LogSensor
from sensors.sources.network import LiveCapture
from soc_api.main import create_app
from soc_api.services import accounts
from soc_core.auth import Membership
from soc_core.config import Settings
from soc_core.store import Store
from soc_core.store.elasticsearch import ElasticsearchStore
from tests.playbooks.library_support import forward_into
from tests.support.netns import in_netns, ip
from tests.support.servers import serve
from tests.support.waiting import wait_for
from workflow import audit

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
HYDRA = shutil.which("hydra")
TARGET, ATTACKER, BYSTANDER = "10.214.7.1", "10.214.7.2", "10.214.7.3"
HOST_NAME = "srv-portal-01"
SSH_BRUTEFORCE = "74d45926-2b16-4397-acdf-3728c2a10647"
PASSWORD = "a-very-long-password"
WRONG_PASSWORDS = 8  # hydra's word list: none is right
PORT_SCAN = "65e9f844-a589-4bf5-92d8-369960936aa3"
INVENTORY = [  # the agency's hosts: the attacker's address is an accountant's PC (an inside scan)
    {"name": HOST_NAME, "ips": [TARGET], "owner": "Phòng CNTT", "criticality": "high", "agency": "police"},
    {"name": "pc-ketoan-07", "ips": [ATTACKER], "owner": "Phòng Kế toán", "agency": "police"},
]


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, a test user, sshd, nftables)"
    for tool, package in ((SSHD, "openssh-server"), (HYDRA, "hydra"), (shutil.which("nft"), "nftables")):
        if tool is None or not Path(tool).exists():
            return f"{package} is not installed (scripts/install-system-deps)"
    return None


pytestmark = [pytest.mark.netns, pytest.mark.slow, pytest.mark.skipif(_missing() is not None, reason=_missing() or "")]


@dataclass
class AttackRange:
    target: str  # namespace names
    attacker: str
    user: str  # the only account sshd lets in
    log: Path  # sshd's log, as a syslog daemon writes it
    tmp: Path
    target_iface: str  # the target's end of the veth (where the network sensor captures)

    def connects(self, source: str, *, port: int = 22) -> bool:
        """Can ``source`` (in the attacker namespace) open a TCP connection to the target?"""
        with in_netns(self.attacker), socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
            client.bind((source, 0))
            client.settimeout(1.0)  # a dropped SYN shows only as silence
            try:
                client.connect((TARGET, port))
            except TimeoutError:
                return False
            return True

    def hydra(self, *extra: str) -> str:
        """THC Hydra against sshd from the attacker's address: the user, WRONG_PASSWORDS guesses."""
        words = self.tmp / "words.txt"
        words.write_text("".join(f"guess-{n}-{secrets.token_hex(3)}\n" for n in range(WRONG_PASSWORDS)))
        assert HYDRA is not None
        done = subprocess.run(
            ["ip", "netns", "exec", self.attacker, HYDRA, "-l", self.user, "-P", str(words), "-t", "4", "-I",
             *extra, f"ssh://{TARGET}"],
            cwd=self.tmp, capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        return done.stdout + done.stderr

    def failures_logged(self) -> int:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return len(re.findall(rf"Failed password for {self.user} from {re.escape(ATTACKER)} ", text))


def _syslog_relay(process: subprocess.Popen[bytes], log: Path, listening: threading.Event) -> None:
    """What a syslog daemon's file output makes of sshd's messages: a header, then the line."""
    assert process.stderr is not None
    with open(log, "ab", buffering=0) as out:
        for raw in process.stderr:
            now = datetime.now(UTC)
            header = f"{now:%b} {now.day:>2} {now:%H:%M:%S} {HOST_NAME} sshd[{process.pid}]: ".encode()
            out.write(header + raw.rstrip(b"\r\n") + b"\n")
            if b"Server listening on" in raw:
                listening.set()


@pytest.fixture
def attack_range(tmp_path: Path) -> Iterator[AttackRange]:
    tag = secrets.token_hex(3)
    net = AttackRange(f"cgtg{tag}", f"cgat{tag}", f"cgv{tag}", tmp_path / "auth.log", tmp_path, f"vt{tag}")
    process: subprocess.Popen[bytes] | None = None
    relay: threading.Thread | None = None
    try:
        for ns in (net.target, net.attacker):
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
        ip("link", "add", f"vt{tag}", "type", "veth", "peer", "name", f"va{tag}")
        ip("link", "set", f"vt{tag}", "netns", net.target)
        ip("link", "set", f"va{tag}", "netns", net.attacker)
        ip("-n", net.target, "addr", "add", f"{TARGET}/24", "dev", f"vt{tag}")
        for address in (ATTACKER, BYSTANDER):
            ip("-n", net.attacker, "addr", "add", f"{address}/24", "dev", f"va{tag}")
        ip("-n", net.target, "link", "set", f"vt{tag}", "up")
        ip("-n", net.attacker, "link", "set", f"va{tag}", "up")
        subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", net.user], check=True, capture_output=True)
        secret = secrets.token_urlsafe(16)
        subprocess.run(["chpasswd"], input=f"{net.user}:{secret}\n", text=True, check=True, capture_output=True)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        key = tmp_path / "ssh_host_ed25519_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, capture_output=True)
        config = tmp_path / "sshd_config"
        config.write_text(
            f"ListenAddress {TARGET}\nPort 22\nHostKey {key}\nPidFile {tmp_path / 'sshd.pid'}\n"
            "PasswordAuthentication yes\nKbdInteractiveAuthentication no\nPubkeyAuthentication no\n"
            f"UsePAM no\nPermitRootLogin no\nAllowUsers {net.user}\nMaxAuthTries 10\nLogLevel INFO\n"
        )
        process = subprocess.Popen(
            ["ip", "netns", "exec", net.target, SSHD, "-D", "-e", "-f", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        listening = threading.Event()
        relay = threading.Thread(target=_syslog_relay, args=(process, net.log, listening), daemon=True)
        relay.start()
        wait_for(lambda: listening.is_set() or process.poll(), "sshd listening", stall=60)
        assert process.poll() is None, f"sshd exited: {net.log.read_text(errors='replace')}"
        wait_for(lambda: net.connects(ATTACKER) and net.connects(BYSTANDER), "both sources reaching sshd")
        yield net
    finally:
        if process is not None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            if relay is not None:
                relay.join(timeout=10)
            if process.stderr is not None:
                process.stderr.close()
        subprocess.run(["userdel", net.user], capture_output=True, check=False)
        for ns in (net.target, net.attacker):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


@dataclass
class Soc:
    """The SOC's moving parts, driven from the test: sensor (a thread), engine, runner, API."""

    store: Store
    engine: DetectionEngine
    runner: Runner
    net: AttackRange
    url: str

    def detect(self, rule_id: str = SSH_BRUTEFORCE) -> list[dict[str, Any]]:
        """Run the engine over what the sensors stored so far; the alerts of ``rule_id``."""
        self.engine.run_until_idle()
        self.store.refresh()
        return [
            {**doc.body, "id": doc.id}
            for doc in self.store.list_docs("alerts", size=100).items
            if doc.body["rule.id"] == rule_id
        ]

    def drive(self, run_id: str, until: set[str]) -> dict[str, Any]:
        """Poll the runner (in the target namespace: its ``nft`` lands there) until the run's
        status is one of ``until``."""

        def status() -> dict[str, Any]:
            with in_netns(self.net.target):
                for future in self.runner.poll_once():
                    future.result(timeout=120)
            self.store.refresh()
            return get_run(self.store, run_id).body

        run: dict[str, Any] = wait_for(
            status, f"run {run_id} to reach {sorted(until)}", until=lambda r: r["status"] in until
        )
        return run

    def api(self, method: str, path: str, user: str, body: Any = None) -> httpx.Response:
        """A request to the API, which serves in the target namespace (its unblock runs nft there)."""
        with in_netns(self.net.target), httpx.Client(base_url=self.url, timeout=60) as client:
            token = client.post("/api/auth/login", json={"username": user, "password": PASSWORD}).json()
            return client.request(method, path, json=body, headers={"Authorization": f"Bearer {token['access_token']}"})


@pytest.fixture
def soc(attack_range: AttackRange, store: Store, tmp_path: Path) -> Iterator[Soc]:
    accounts.add_tenant(store, tenant_id="police", name="Công an tỉnh")
    accounts.add_user(store, username="lan", password=PASSWORD, memberships=[Membership("police", "analyst")])
    accounts.add_user(store, username="minh", password=PASSWORD, memberships=[Membership("police", "manager")])
    inventory = tmp_path / "assets.yml"
    inventory.write_text(yaml.safe_dump({"assets": INVENTORY}), encoding="utf-8")
    settings = Settings(data_dir=tmp_path, playbooks={"retry_backoff_seconds": 0.01, "assets": {"paths": [inventory]}})
    audit.configure(store, settings)
    sensor = LogSensor(
        SensorConfig(
            tenant="police",
            sensor_id="srv-portal-01-logs",
            state_dir=tmp_path / "sensor",
            inputs=[InputConfig(paths=[str(attack_range.log)], parser="auth", from_beginning=True)],
        ),
        store.reopened(),
    )
    stop = threading.Event()
    tailing = threading.Thread(target=sensor.run, args=(stop,), name="log-sensor", daemon=True)
    tailing.start()
    engine = DetectionEngine(load_rules([shipped_rules_dir()]), store)
    runner = Runner(store, settings, configured_library([]))
    try:
        with ExitStack() as stack:
            if isinstance(store, ElasticsearchStore):
                stack.enter_context(forward_into(attack_range.target, store.url))
            with in_netns(attack_range.target):  # the server's threads stay there; this one comes back
                url = stack.enter_context(serve(create_app(settings, store)))
            yield Soc(store, engine, runner, attack_range, url)
    finally:
        stop.set()
        tailing.join(timeout=60)
        runner.close()
        engine.close()


def stored_failures(store: Store) -> int:
    store.refresh()
    events, _ = store.read_new_events(None, limit=10_000)
    return sum(1 for e in events if e.get("event.action") == "ssh_login" and e.get("event.outcome") == "failure")


def test_s13i_5_hydra_brute_force_is_blocked_by_the_ssh_playbook_and_unblocked(soc: Soc) -> None:
    net = soc.net
    said = net.hydra()
    assert "0 valid password found" in said, said
    wait_for(
        net.failures_logged, f"sshd logging hydra's {WRONG_PASSWORDS} failures", until=lambda n: n >= WRONG_PASSWORDS
    )
    wait_for(
        lambda: stored_failures(soc.store), "the sensor storing the failures", until=lambda n: n >= WRONG_PASSWORDS
    )

    [alert] = wait_for(soc.detect, "the SSH Brute Force alert", until=lambda found: len(found) == 1)
    assert alert["tenant"] == "police" and alert["entities"]["source.ip"] == [ATTACKER], alert
    assert alert["entities"]["host.name"] == [HOST_NAME] and alert["count"] >= 5, alert

    # the shipped playbook starts by itself; its block is a dry run waiting for a person
    automatic = soc.drive(auto_run_id("ssh-bruteforce", alert["id"]), {"waiting_approval"})
    assert automatic["trigger"] == "alert" and not automatic["live_gated"]  # gated steps run dry
    assert {s["id"]: s["status"] for s in automatic["steps"]}["block"] == "waiting_approval"

    # an analyst runs it for real, and approves the block, through the API
    started = soc.api("POST", "/api/playbooks/ssh-bruteforce/run", "lan", {"alert_id": alert["id"], "dry_run": False})
    assert started.status_code in (200, 201), started.text
    live = started.json()["id"]
    soc.drive(live, {"waiting_approval"})
    assert net.connects(ATTACKER), "blocked before anyone approved"
    approved = soc.api("POST", f"/api/playbook-runs/{live}/steps/block/approve", "lan", {"comment": "hydra"})
    assert approved.status_code == 200, approved.text
    done = soc.drive(live, {"succeeded", "failed", "partial"})
    block = {s["id"]: s for s in done["steps"]}["block"]
    assert done["status"] == "succeeded" and block["output"].get("dry_run") is not True, block
    assert block["approval"]["decided_by"] == "lan"

    # the attacker is cut off from sshd (a dropped SYN); the bystander next to it is not
    assert not net.connects(ATTACKER)
    assert net.connects(BYSTANDER)
    before = net.failures_logged()
    cut_off = net.hydra("-w", "3", "-W", "1")  # short waits: a dropped SYN never answers
    assert f"could not connect to ssh://{TARGET}:22 - Timeout connecting" in cut_off, cut_off
    assert net.failures_logged() == before, "hydra reached sshd through the block"

    # a manager lifts the block through the API: connections and logins reach sshd again
    blocks = soc.api("GET", "/api/containment/blocks", "minh").json()["items"]
    [mine] = [b for b in blocks if b["body"]["address"] == ATTACKER]
    lifted = soc.api("POST", f"/api/containment/blocks/{mine['id']}/unblock", "minh")
    assert lifted.status_code == 200, lifted.text
    wait_for(lambda: net.connects(ATTACKER), "the attacker reaching sshd after the unblock")
    again = net.hydra()
    assert "0 valid password found" in again, again
    wait_for(net.failures_logged, "hydra's logins reaching sshd again", until=lambda n: n >= before + WRONG_PASSWORDS)


def test_s13i_5_nmap_syn_scan_from_inside_opens_a_port_scan_case(soc: Soc, tmp_path: Path) -> None:
    """nmap's SYN scan from the accountant's PC, seen by the real network sensor capturing on the
    target's side of the veth: Port Scan, and the internal-port-scan playbook's case names the
    scanning host from the inventory."""
    net = soc.net
    sensor = NetworkSensor(
        NetSensorSettings(tenant="police", sensor_id="srv-portal-01-net", state_dir=tmp_path / "net", interval=1.0),
        soc.store.reopened(),
    )
    with in_netns(net.target):
        capture = LiveCapture(net.target_iface)
    stop = threading.Event()
    capturing = threading.Thread(target=sensor.run_live, args=(capture, stop), name="net-sensor", daemon=True)
    capturing.start()
    try:
        scan = subprocess.run(
            ["ip", "netns", "exec", net.attacker, "nmap", "-n", "-Pn", "-sS", "-T4", "-p", "1-200", TARGET],
            capture_output=True, text=True, timeout=300, check=True,
        )  # fmt: skip
        assert "22/tcp open" in scan.stdout, scan.stdout

        def scanned_ports() -> int:
            soc.store.refresh()
            events, _ = soc.store.read_new_events(None, limit=100_000)
            flows = [e for e in events if e["event.dataset"] == "network.flow" and e.get("source.ip") == ATTACKER]
            return len({e["destination.port"] for e in flows})

        # flows end when they time out or the capture stops: wait on the count, then stop
        wait_for(scanned_ports, "the scan's flows in the store", until=lambda n: n >= 20)
    finally:
        stop.set()
        capturing.join(timeout=60)
        capture.close()
    [alert] = wait_for(lambda: soc.detect(PORT_SCAN), "the Port Scan alert", until=lambda found: len(found) == 1)
    assert alert["entities"]["source.ip"] == [ATTACKER] and alert["entities"]["destination.ip"] == [TARGET], alert
    run = soc.drive(auto_run_id("internal-port-scan", alert["id"]), {"succeeded", "failed", "partial"})
    assert run["status"] == "succeeded", run
    case = soc.store.get_doc("cases", run["case_id"]).body
    assert case["title"] == f"Port scan from inside: pc-ketoan-07 ({ATTACKER})", case
    assert HOST_NAME in case["description"] and "Phòng Kế toán" in case["description"], case
