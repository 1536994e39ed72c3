"""The network sensor's health through the real SOC API (uvicorn on loopback).

RELIABILITY C2 (loss above 10 % in an interval → the API shows the sensor degraded; a clean run
→ online) and C6 (restart under traffic → a new run id, counters from zero, the gap visible and
a restart counted by the API). Live capture runs over a veth pair between two namespaces (see
``tests/support/netns.py``); the API listens in the test's own namespace, which the reporter's thread
never leaves.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from sensors.net_cli import build_network_app, health_config, reporting
from sensors.netsensor import HEALTH_DATASET, NetSensorSettings, NetworkSensor
from sensors.sources.network import LiveCapture
from soc_core.store.sqlite import SqliteStore
from tests.shared_data import SHARED_DATA
from tests.support.health_api import Api
from tests.support.netns import SENDER, Pair, open_capture, send
from tests.support.waiting import wait_for

WIKIPEDIA = SHARED_DATA / "pcaps/zeek/wikipedia.pcap"
FILTER = "udp and dst host 10.213.7.99"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "events.db")
    opened.setup()
    yield opened
    opened.close()


def net_sensor(tmp_path: Path, store: SqliteStore, name: str, interval: float) -> NetworkSensor:
    settings = NetSensorSettings(tenant="police", sensor_id=name, state_dir=tmp_path / name, interval=interval)
    return NetworkSensor(settings, store)


@contextmanager
def live(sensor: NetworkSensor, capture: LiveCapture, api: Api, heartbeat: float = 0.2) -> Iterator[None]:
    """Run ``sensor`` on ``capture`` with heartbeats to ``api`` while the block runs."""
    health = health_config(api_url=api.url, key_file=api.key_file, interval=heartbeat, config=None)
    stop = threading.Event()
    with reporting(sensor, health):
        thread = threading.Thread(target=sensor.run_live, args=(capture, stop), daemon=True)
        thread.start()
        try:
            yield
        finally:
            time.sleep(0.3)
            stop.set()
            thread.join(timeout=60)
            capture.close()
    assert not thread.is_alive()


def test_loss_above_threshold_shows_degraded_in_the_api(
    pair: Pair, api: Api, tmp_path: Path, store: SqliteStore
) -> None:
    offered = 3_000
    capture = open_capture(pair, bpf=FILTER, buffer_bytes=4096)
    send(pair, offered, 20_000)  # nobody reads yet: the tiny socket buffer overflows
    sensor = net_sensor(tmp_path, store, "lossy", interval=60.0)
    with live(sensor, capture, api):
        pass
    final = sensor.health_reports[-1]
    assert final["degraded"] and final["kernel_received"] == offered
    record = api.sensor()
    health = record["health"]
    assert isinstance(health, dict)
    assert record["status"] == "degraded"
    assert health["loss_ratio"] > 0.1
    assert health["loss_ratio"] == final["loss_ratio"]  # the API's verdict is the sensor's own
    assert health["run_id"] == sensor.run_id
    counters = health["counters"]
    assert counters["kernel_dropped"] == counters["kernel_dropped_total"] == final["kernel_dropped"]
    assert counters["kernel_received"] + counters["kernel_dropped"] == offered
    assert counters["decoded"] == offered - final["kernel_dropped"]
    assert counters["health_events"] == 1
    assert counters["events_out"] == sensor.counters()["events_out"] > 0
    events, _ = store.read_new_events(None, limit=10_000)
    assert len([e for e in events if e["event.dataset"] == HEALTH_DATASET]) == 1


def test_clean_live_run_shows_online_with_its_counters(
    pair: Pair, api: Api, tmp_path: Path, store: SqliteStore
) -> None:
    offered = 2_000
    capture = open_capture(pair, bpf=FILTER)
    sensor = net_sensor(tmp_path, store, "clean", interval=0.2)
    with live(sensor, capture, api):
        send(pair, offered, 2_000)
    record = api.sensor()
    health = record["health"]
    assert isinstance(health, dict)
    assert record["status"] == "online", health
    assert health["loss_ratio"] == 0.0 and health["run_id"] == sensor.run_id
    counters = health["counters"]
    assert counters["kernel_received_total"] == counters["packets"] == counters["decoded"] == offered
    assert counters["kernel_dropped_total"] == counters["decode_errors"] == 0
    assert counters["flows_ended"] == 1_000  # the sender uses 1,000 source ports
    assert counters["events_out"] == sensor.counters()["events_out"] >= 1_000
    assert counters["intervals"] == len(sensor.health_reports) > 1


def packets_counted(sensor: NetworkSensor) -> int:
    return sensor.analyzer.counters["packets"]


def test_restart_under_traffic_starts_a_new_run(
    pair: Pair, api: Api, tmp_path: Path, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    offered, rate = 15_000, 5_000  # three seconds of traffic; the sensor restarts in the middle
    command = ["ip", "netns", "exec", pair.ns_a, sys.executable, SENDER, pair.veth_a, pair.mac_b]
    runs: list[NetworkSensor] = []
    sent: list[tuple[str, dict[str, int]]] = []
    sender = subprocess.Popen([*command, str(offered), str(rate)], stdout=subprocess.DEVNULL)
    try:
        for number in (1, 2):
            sensor = net_sensor(tmp_path, store, "tap01", interval=0.2)
            original = sensor.heartbeat_counters

            def recording(sensor: NetworkSensor = sensor, original: object = original) -> dict[str, int]:
                assert callable(original)
                counters: dict[str, int] = original()
                sent.append((sensor.run_id, counters))
                return counters

            monkeypatch.setattr(sensor, "heartbeat_counters", recording)
            capture = open_capture(pair, bpf=FILTER)
            with live(sensor, capture, api):
                if number == 1:
                    wait_for(partial(packets_counted, sensor), "packets from the sender")
                    time.sleep(0.7)
                else:
                    assert sender.wait(timeout=60) == 0
            runs.append(sensor)
            if number == 1:
                time.sleep(0.5)  # the gap: nothing captures
    finally:
        sender.kill()
        sender.wait()
    first, second = runs
    assert first.run_id != second.run_id
    totals = [run.kernel_totals for run in runs]
    assert all(total.dropped == 0 and total.received > 0 for total in totals)
    gap = offered - sum(total.received for total in totals)
    print(f"run 1 {totals[0].received}, gap {gap}, run 2 {totals[1].received} of {offered}")
    assert gap > 0.2 * rate  # the packets offered while no sensor ran: counted by nobody
    for run in runs:  # each run counts only its own packets, its intervals from 0
        reports = run.health_reports
        assert [r["interval"] for r in reports] == list(range(len(reports)))
        assert {r["run_id"] for r in reports} == {run.run_id}
        assert sum(r["decoded"] for r in reports) == run.kernel_totals.received
    # The heartbeats: each run's first one starts from zero, its last one has the run's totals.
    for run in runs:
        mine = [counters for run_id, counters in sent if run_id == run.run_id]
        assert mine[0]["packets"] == 0 and mine[0]["events_out"] == 0
        assert mine[-1]["kernel_received_total"] == mine[-1]["decoded"] == run.kernel_totals.received
    record = api.sensor()
    health = record["health"]
    assert isinstance(health, dict)
    assert record["restarts"] == 1 and record["status"] == "online"
    assert health["run_id"] == second.run_id
    assert health["counters"]["kernel_received_total"] == second.kernel_totals.received
    # Both runs' events are stored: event ids of live capture include the run id.
    events, _ = store.read_new_events(None, limit=100_000)
    flows = [e for e in events if e["event.dataset"] == "network.flow"]
    assert len(flows) == sum(run.counters()["flows_ended"] for run in runs)


@pytest.mark.skipif(not WIKIPEDIA.is_file(), reason=f"{WIKIPEDIA} is not present")
def test_pcap_cli_reports_its_counters(api: Api, tmp_path: Path) -> None:
    path = tmp_path / "cli.db"

    def open_store() -> SqliteStore:
        opened = SqliteStore(path)
        opened.setup()
        return opened

    app = build_network_app(open_store)
    arguments = ["pcap", str(WIKIPEDIA), "--tenant", "police", "--sensor-id", "lab", "--state-dir", str(tmp_path)]
    health = ["--health-api-url", api.url, "--health-key-file", str(api.key_file), "--health-interval", "0.2"]
    result = CliRunner().invoke(app, [*arguments, *health])
    assert result.exit_code == 0, result.output
    record = api.sensor()
    assert record["status"] == "online"
    counters = api.counters()
    assert counters["packets"] == counters["decoded"] + counters["unsupported"] + counters["decode_errors"] > 0
    assert counters["events_out"] > 0 and counters["flows_ended"] > 0
    assert "kernel_received" not in counters  # a file has no kernel counters: no loss to report


def test_health_settings_from_yaml_and_options(tmp_path: Path) -> None:
    key = tmp_path / "api.key"
    config = tmp_path / "sensor.yml"
    config.write_text(
        yaml.safe_dump({"tenant": "police", "health": {"api_url": "https://soc.example/", "interval": 30}})
    )
    with pytest.raises(Exception, match="api_key_file"):
        health_config(api_url=None, key_file=None, interval=None, config=config)
    from_yaml = health_config(api_url=None, key_file=key, interval=None, config=config)
    assert from_yaml is not None and from_yaml.api_url == "https://soc.example" and from_yaml.interval == 30
    overridden = health_config(api_url="http://127.0.0.1:8000", key_file=key, interval=5, config=config)
    assert overridden is not None and overridden.api_url == "http://127.0.0.1:8000" and overridden.interval == 5
    assert health_config(api_url=None, key_file=None, interval=5, config=None) is None
    with pytest.raises(Exception, match="not an http"):
        health_config(api_url="soc.example", key_file=key, interval=None, config=None)
