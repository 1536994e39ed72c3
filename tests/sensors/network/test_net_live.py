"""Live capture over a veth pair between two network namespaces created for each test.

RELIABILITY C1 (replay at several rates: decoded + kernel drops == offered), C2 (loss above
the threshold → a stored health event) and the path nmap SYN scan → flow events → streaming
engine → port-scan alert. Needs root and ``ip`` (iproute2); the scan needs nmap.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from detections.engine import DetectionEngine
from detections.loader import load_rules
from sensors.netsensor import HEALTH_DATASET, NetSensorSettings, NetworkSensor
from sensors.sources.network import LiveCapture
from soc_core.store.sqlite import SqliteStore

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="live capture and network namespaces need root"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 (ip) is not installed"),
]

RULES = Path(__file__).resolve().parents[3] / "rules" / "network"
CLONE_NEWNET = 0x40000000
SENDER = str(Path(__file__).with_name("paced_sender.py"))


@dataclass
class Pair:
    ns_a: str
    ns_b: str
    veth_a: str
    veth_b: str
    mac_b: str


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def pair() -> Iterator[Pair]:
    tag = uuid.uuid4().hex[:6]
    made = Pair(f"cgA{tag}", f"cgB{tag}", f"vA{tag}", f"vB{tag}", "")
    try:
        for ns in (made.ns_a, made.ns_b):
            ip("netns", "add", ns)
            # No IPv6: router solicitations and DAD would add packets nobody offered.
            ip("netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
            ip("netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
            ip("-n", ns, "link", "set", "lo", "up")
        ip("link", "add", made.veth_a, "type", "veth", "peer", "name", made.veth_b)
        ip("link", "set", made.veth_a, "netns", made.ns_a)
        ip("link", "set", made.veth_b, "netns", made.ns_b)
        ip("-n", made.ns_a, "addr", "add", "10.213.7.1/24", "dev", made.veth_a)
        ip("-n", made.ns_b, "addr", "add", "10.213.7.2/24", "dev", made.veth_b)
        ip("-n", made.ns_a, "link", "set", made.veth_a, "up")
        ip("-n", made.ns_b, "link", "set", made.veth_b, "up")
        made.mac_b = ip("-n", made.ns_b, "-br", "link", "show", made.veth_b).split()[2]
        yield made
    finally:
        for ns in (made.ns_a, made.ns_b):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


@contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Run the block with this thread in namespace ``name`` (sockets opened there stay there)."""
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns failed")
        yield
    finally:
        libc.setns(home, CLONE_NEWNET)
        os.close(home)
        os.close(target)


def open_capture(pair: Pair, **options: object) -> LiveCapture:
    with in_netns(pair.ns_b):
        return LiveCapture(pair.veth_b, **options)  # type: ignore[arg-type]


def send(pair: Pair, count: int, rate: float) -> None:
    command = ["ip", "netns", "exec", pair.ns_a, sys.executable, SENDER, pair.veth_a, pair.mac_b]
    subprocess.run([*command, str(count), str(rate)], check=True, capture_output=True, timeout=120)


def make_sensor(tmp_path: Path, store: SqliteStore, name: str, **settings: float) -> NetworkSensor:
    return NetworkSensor(
        NetSensorSettings(tenant="police", sensor_id=name, state_dir=tmp_path / name, **settings),  # type: ignore[arg-type]
        store,
    )


@contextmanager
def running(sensor: NetworkSensor, capture: LiveCapture) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=sensor.run_live, args=(capture, stop), daemon=True)
    thread.start()
    try:
        yield
    finally:
        time.sleep(0.5)
        stop.set()
        thread.join(timeout=60)
        capture.close()
    assert not thread.is_alive()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "store.db")
    opened.setup()
    yield opened
    opened.close()


@pytest.mark.parametrize("rate", [1_000, 5_000, 20_000])
def test_replay_accounts_for_every_offered_packet(pair: Pair, tmp_path: Path, store: SqliteStore, rate: int) -> None:
    offered = rate  # one second of traffic
    sensor = make_sensor(tmp_path, store, f"rate{rate}", interval=0.5)
    capture = open_capture(pair, bpf="udp and dst host 10.213.7.99")
    with running(sensor, capture):
        send(pair, offered, rate)
    reports = sensor.health_reports
    kernel_received = sum(r.get("kernel_received", 0) for r in reports)
    kernel_dropped = sum(r.get("kernel_dropped", 0) for r in reports)
    read = sum(r["received"] for r in reports)
    decoded = sum(r["decoded"] for r in reports)
    print(f"rate {rate}/s: offered {offered}, kernel {kernel_received} (dropped {kernel_dropped}), decoded {decoded}")
    assert kernel_received == offered
    assert decoded + kernel_dropped == offered
    assert read == decoded  # well-formed frames: none unsupported, no decode errors
    assert all(r["run_id"] == sensor.run_id for r in reports)


def test_loss_above_threshold_stores_a_health_event(pair: Pair, tmp_path: Path, store: SqliteStore) -> None:
    offered = 3_000
    capture = open_capture(pair, bpf="udp and dst host 10.213.7.99", buffer_bytes=4096)
    send(pair, offered, 20_000)  # nobody reads yet: the tiny socket buffer overflows
    sensor = make_sensor(tmp_path, store, "lossy", interval=60.0)
    with running(sensor, capture):
        pass
    final = sensor.health_reports[-1]
    assert final["kernel_received"] == offered
    assert final["kernel_dropped"] > offered * 0.1
    assert final["received"] + final["kernel_dropped"] == offered
    assert final["degraded"]
    events, _ = store.read_new_events(None, limit=10_000)
    health = [e for e in events if e["event.dataset"] == HEALTH_DATASET]
    assert len(health) == 1
    assert health[0]["event.kind"] == "metric"
    assert health[0]["canhgac.sensor.status"] == "degraded"
    assert health[0]["canhgac.sensor.kernel_dropped"] == final["kernel_dropped"]


@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed (Debian package: nmap)")
def test_nmap_syn_scan_raises_a_port_scan_alert(pair: Pair, tmp_path: Path, store: SqliteStore) -> None:
    sensor = make_sensor(tmp_path, store, "scan", interval=1.0)
    capture = open_capture(pair)
    with running(sensor, capture):
        subprocess.run(
            ["ip", "netns", "exec", pair.ns_a, "nmap", "-n", "-Pn", "-sS", "-T4", "-p", "1-200", "10.213.7.2"],
            check=True,
            capture_output=True,
            timeout=120,
        )
    events, _ = store.read_new_events(None, limit=100_000)
    flows = [e for e in events if e["event.dataset"] == "network.flow" and e["source.ip"] == "10.213.7.1"]
    assert len({e["destination.port"] for e in flows if e["destination.ip"] == "10.213.7.2"}) >= 200
    assert all(e["network.community_id"].startswith("1:") for e in flows)
    engine = DetectionEngine(load_rules([RULES]), store)
    assert not engine.errors
    engine.run_until_idle()
    alerts = store.list_docs("alerts", size=50).items
    names = [alert.body.get("rule.name") for alert in alerts]
    assert "Port Scan" in names, names
