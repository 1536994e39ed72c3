"""Sensor heartbeats to the real SOC API (uvicorn on loopback), and lag measurement."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from sensors import cli
from sensors.config import HealthConfig, SensorConfig, SyslogSensorConfig
from sensors.forwarder.forwarder import Ack
from sensors.health import Backlog, HealthReporter, heartbeat_counters
from sensors.pipeline import LogSensor, SyslogSensor
from soc_core.devnode import free_port
from soc_core.store.sqlite import SqliteStore
from tests.support.health_api import TENANT, Api
from tests.support.waiting import wait_for


@pytest.fixture
def events_store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "events.sqlite")
    store.setup()
    yield store
    store.close()


def auth_lines(count: int, start: int = 0) -> str:
    return "".join(
        f"Mar  3 10:00:{i % 60:02d} portal sshd[{700 + i}]: Failed password for root from 203.0.113.{i % 250} "
        "port 22 ssh2\n"
        for i in range(start, start + count)
    )


def test_cli_log_sensor_reports_its_counters(api: Api, events_store: SqliteStore, tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text(auth_lines(9) + "garbage without a header\n")
    config = {
        "tenant": TENANT,
        "sensor_id": "web01",
        "state_dir": str(tmp_path / "state"),
        "inputs": [{"paths": [str(log)], "from_beginning": True}],
        "health": {"api_url": api.url, "api_key_file": str(api.key_file), "interval": 0.2},
    }
    (tmp_path / "sensor.yml").write_text(yaml.safe_dump(config))
    app = cli.build_sensor_app(lambda: events_store)

    result = CliRunner().invoke(app, ["logs", "--config", str(tmp_path / "sensor.yml"), "--once"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["events_out"] == 10
    sensor = api.sensor()
    assert sensor["status"] == "online"
    counters = api.counters()
    assert counters["events_in"] == counters["events_out"] == 10  # the last report is sent on exit
    assert counters["parse_failures"] == 1
    assert counters["dropped"] == counters["dead_lettered"] == 0
    assert counters["lag_seconds"] == 0


def test_following_sensor_reports_every_interval_from_its_own_thread(
    api: Api, events_store: SqliteStore, tmp_path: Path
) -> None:
    log = tmp_path / "auth.log"
    log.write_text(auth_lines(5))
    config = SensorConfig.from_dict(
        {
            "tenant": TENANT,
            "sensor_id": "web01",
            "state_dir": str(tmp_path / "state"),
            "inputs": [{"paths": [str(log)], "from_beginning": True}],
            "poll_interval": 0.05,
            "forwarder": {"batch_max_age": 0.05},
        }
    )
    sensor = LogSensor(config, events_store)
    reporter = HealthReporter(HealthConfig(api_url=api.url, api_key_file=api.key_file, interval=0.2), sensor.counters)
    stop = threading.Event()
    runner = threading.Thread(target=sensor.run, args=(stop,))
    reporter.start()
    runner.start()
    try:
        wait_for(lambda: api.counters().get("events_out"), "5 events out", until=lambda n: n == 5)
        with log.open("a") as handle:
            handle.write(auth_lines(3, start=5))
        wait_for(lambda: api.counters().get("events_out"), "8 events out", until=lambda n: n == 8)
    finally:
        stop.set()
        runner.join(timeout=15)
        reporter.stop()
    assert reporter.sent >= 3 and reporter.failed == 0
    assert api.sensor()["status"] == "online"


def test_syslog_sensor_reports_receiver_counters(api: Api, events_store: SqliteStore, tmp_path: Path) -> None:
    config = SyslogSensorConfig.from_dict(
        {
            "tenant": TENANT,
            "sensor_id": "fw01",
            "state_dir": str(tmp_path / "state"),
            "udp": ["127.0.0.1:0"],
            "forwarder": {"batch_max_age": 0.05},
        }
    )
    sensor = SyslogSensor(config, events_store)
    reporter = HealthReporter(HealthConfig(api_url=api.url, api_key_file=api.key_file, interval=0.2), sensor.counters)
    stop = threading.Event()
    runner = threading.Thread(target=sensor.run, args=(stop,))
    runner.start()
    reporter.start()
    try:
        wait_for(lambda: sensor.receiver.bound, "the syslog receiver to bind")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for i in range(4):
                address = (sensor.receiver.bound[0].host, sensor.receiver.bound[0].port)
                sender.sendto(f"<34>Mar  3 10:00:0{i} fw01 kernel: drop {i}".encode(), address)
        wait_for(lambda: api.counters().get("events_out"), "4 events out", until=lambda n: n == 4)
    finally:
        stop.set()
        runner.join(timeout=15)
        reporter.stop()
    counters = api.counters()
    assert counters["lag_seconds"] == 0
    assert "udp_kernel_drops" in counters


def test_unreachable_api_is_logged_and_never_blocks_ingestion(
    events_store: SqliteStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("canhgac_sensor_key\n")
    key_file.chmod(0o600)
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    log = tmp_path / "auth.log"
    log.write_text(auth_lines(4))
    config = {
        "tenant": TENANT,
        "sensor_id": "web01",
        "state_dir": str(tmp_path / "state"),
        "inputs": [{"paths": [str(log)], "from_beginning": True}],
        "health": {"api_url": nowhere, "api_key_file": str(key_file), "interval": 0.05},
    }
    (tmp_path / "sensor.yml").write_text(yaml.safe_dump(config))
    app = cli.build_sensor_app(lambda: events_store)

    with caplog.at_level(logging.WARNING, logger="sensors.health"):
        result = CliRunner().invoke(app, ["logs", "--config", str(tmp_path / "sensor.yml"), "--once"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["events_out"] == 4
    warnings = [r.getMessage() for r in caplog.records if "cannot reach" in r.getMessage()]
    assert len(warnings) == 1  # logged once per distinct problem, not on every retry


def test_a_wrong_key_is_reported_as_an_error(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    config = HealthConfig(api_url=api.url, api_key_file=api.key_file, interval=60)
    reporter = HealthReporter(config, lambda: {"events_in": 1}, api_key="not-a-real-key")
    with caplog.at_level(logging.ERROR, logger="sensors.health"):
        assert reporter.report_once() is False
    reporter.stop()
    assert any("refused the sensor's API key (401)" in r.getMessage() for r in caplog.records)
    assert api.sensor()["status"] == "never_seen"


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("secret\n")
    key_file.chmod(0o644)
    config = HealthConfig(api_url="http://127.0.0.1:9", api_key_file=key_file)
    with pytest.raises(Exception, match="can be read by other users"):
        HealthReporter(config, dict)


def ack(tracked: Ack | None) -> None:
    """Run an ack that ``Backlog.track`` handed back for an event that had one."""
    assert tracked is not None
    tracked()


def test_backlog_lag_is_the_age_of_the_oldest_chunk_not_yet_done() -> None:
    now = [100.0]
    backlog = Backlog(clock=lambda: now[0])
    acked: list[int] = []
    first = backlog.track([lambda: acked.append(1), lambda: acked.append(2)])
    now[0] = 103.0
    second = backlog.track([None, lambda: acked.append(4)])
    assert second[0] is None and backlog.track([]) == []
    now[0] = 110.0
    assert backlog.lag_seconds() == 10
    ack(first[0])  # not the chunk's last event: its clock keeps running
    assert backlog.lag_seconds() == 10 and acked == [1]
    ack(second[1])  # done out of order (dropped on purpose, say): the first chunk is still the oldest
    assert backlog.lag_seconds() == 10 and acked == [1, 4]
    ack(first[1])
    assert backlog.lag_seconds() == 0 and acked == [1, 4, 2]


def test_heartbeat_counters_fit_what_the_api_accepts() -> None:
    counters = {f"c{i:03d}": i for i in range(150)} | {"x" * 65: 1, "negative": -3}
    sent = heartbeat_counters(counters)
    assert len(sent) == 100 and all(len(name) <= 64 and value >= 0 for name, value in sent.items())
