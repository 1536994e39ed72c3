"""The network sensor shell: pcap import through the forwarder into a real SQLite store,
idempotent re-import, health reports and events, and the ``pcap`` CLI command."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sensors.net_cli import build_network_app
from sensors.netsensor import HEALTH_DATASET, NetSensorSettings, NetworkSensor
from sensors.sources.network import KernelStats
from soc_core.events import validate_event
from soc_core.store.sqlite import SqliteStore
from tests.shared_data import SHARED_DATA

ZEEK = SHARED_DATA / "pcaps/zeek"
WIKIPEDIA = ZEEK / "wikipedia.pcap"
pytestmark = pytest.mark.skipif(not WIKIPEDIA.is_file(), reason=f"{WIKIPEDIA} is not present")


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    opened = SqliteStore(tmp_path / "store.db")
    opened.setup()
    return opened


def sensor(tmp_path: Path, store: SqliteStore, **options: float) -> NetworkSensor:
    settings = NetSensorSettings(tenant="police", sensor_id="lab", state_dir=tmp_path / "state", **options)  # type: ignore[arg-type]
    return NetworkSensor(settings, store)


def test_pcap_import_stores_valid_events_once(tmp_path: Path, store: SqliteStore) -> None:
    first = sensor(tmp_path, store)
    counters = first.import_pcap(WIKIPEDIA)
    assert first.close()
    assert counters["packets"] == counters["decoded"] + counters["unsupported"] + counters["decode_errors"]
    events, _ = store.read_new_events(None, limit=10_000)
    datasets = Counter(event["event.dataset"] for event in events)
    assert datasets["network.flow"] == counters["flows_ended"]
    assert datasets["network.dns"] == counters["dns_messages"]
    assert datasets["network.http"] > 0
    assert all(not validate_event(event) for event in events)
    assert all(event["organization.id"] == "police" for event in events)
    again = sensor(tmp_path, store)
    again.import_pcap(WIKIPEDIA)
    assert again.close()
    assert again.counters()["duplicates"] == len(events)
    assert len(store.read_new_events(None, limit=10_000)[0]) == len(events)


def test_loss_report_and_health_event(tmp_path: Path, store: SqliteStore) -> None:
    net = sensor(tmp_path, store, loss_threshold=0.10)
    fine = net.report(KernelStats(received=1000, dropped=50))
    assert not fine["degraded"] and fine["loss_ratio"] == 0.05
    bad = net.report(KernelStats(received=1000, dropped=200))
    assert bad["degraded"] and bad["run_id"] == net.run_id and bad["interval"] == 1
    assert net.close()
    events, _ = store.read_new_events(None, limit=100)
    (health,) = [e for e in events if e["event.dataset"] == HEALTH_DATASET]
    assert health["event.kind"] == "metric"
    assert health["canhgac.sensor.loss_ratio"] == 0.2
    assert not validate_event(health)


def test_a_restart_gets_a_new_run_id(tmp_path: Path, store: SqliteStore) -> None:
    assert sensor(tmp_path, store).run_id != sensor(tmp_path, store).run_id


def test_pcap_cli(tmp_path: Path) -> None:
    path = tmp_path / "cli.db"

    def open_store() -> SqliteStore:
        opened = SqliteStore(path)
        opened.setup()
        return opened

    app = build_network_app(open_store)
    result = CliRunner().invoke(
        app, ["pcap", str(WIKIPEDIA), "--tenant", "police", "--sensor-id", "lab", "--state-dir", str(tmp_path / "s")]
    )
    assert result.exit_code == 0, result.output
    assert '"flows_ended"' in result.output
    events, _ = open_store().read_new_events(None, limit=10_000)
    assert any(event["event.dataset"] == "network.flow" for event in events)
