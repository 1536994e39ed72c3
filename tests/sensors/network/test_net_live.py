"""Live capture over a veth pair between two network namespaces created for each test.

RELIABILITY C1 (replay at several rates: decoded + kernel drops == offered), C2 (loss above
the threshold → a stored health event) and the path nmap SYN scan → flow events → streaming
engine → port-scan alert. Needs root and ``ip`` (iproute2); the scan needs nmap.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from detections.engine import DetectionEngine
from detections.loader import load_rules
from sensors.netsensor import HEALTH_DATASET, NetSensorSettings, NetworkSensor
from sensors.sources.network import LiveCapture
from soc_core.store.sqlite import SqliteStore
from tests.support.netns import Pair, open_capture, send

RULES = Path(__file__).resolve().parents[3] / "rules" / "network"


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
