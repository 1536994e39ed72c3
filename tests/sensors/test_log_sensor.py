"""The log sensor end to end against the real SQLite store: files → parsers → spool → store."""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensors.config import SensorConfig
from sensors.parsers import ParseContext
from sensors.pipeline import LogSensor
from sensors.sources.logfile import LogRecord
from soc_core.errors import ConfigError, StoreUnavailable
from soc_core.events import Event, validate_event
from soc_core.store.base import BulkResult
from soc_core.store.sqlite import SqliteStore

TENANT = "so_y_te"


class OutageStore(SqliteStore):
    """The real SQLite store, with an outage switch in front of writes."""

    down = False

    def add_events(self, events: Sequence[Event], *, encoded: Sequence[bytes] | None = None) -> BulkResult:
        if self.down:
            raise StoreUnavailable("simulated outage", where=str(self.path))
        return super().add_events(events, encoded=encoded)


def sshd_lines(start: int, stop: int, host: str = "web01") -> bytes:
    kinds = [
        "Failed password for root from 203.0.113.{o} port {p} ssh2",
        "Accepted publickey for alice from 10.0.{o}.1 port {p} ssh2: ED25519 SHA256:k{n}",
        "Invalid user guest{n} from 198.51.100.{o} port {p}",
        "Disconnected from user alice 10.0.{o}.1 port {p}",
        "Received signal 15; terminating.",
    ]
    out = []
    for n in range(start, stop):
        second = n % 60
        minute = (n // 60) % 60
        message = kinds[n % len(kinds)].format(n=n, o=n % 250, p=1024 + n)
        out.append(f"Feb  5 10:{minute:02d}:{second:02d} {host} sshd[{1000 + n}]: {message} #{n}\n")
    return "".join(out).encode()


def config(tmp_path: Path, pattern: str, **forwarder: object) -> SensorConfig:
    return SensorConfig.from_dict(
        {
            "tenant": TENANT,
            "sensor_id": "web01-auth",
            "state_dir": str(tmp_path / "state"),
            "inputs": [{"paths": [pattern], "parser": "auth", "from_beginning": True}],
            "forwarder": {"batch_max_events": 100, "backoff_initial": 0.01, "backoff_max": 0.05, **forwarder},
            "checkpoint_interval": 0,
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[OutageStore]:
    db = OutageStore(tmp_path / "events.sqlite")
    db.setup()
    yield db
    db.close()


def stored(store: SqliteStore) -> list[Event]:
    return [json.loads(doc) for (doc,) in store.select("SELECT doc FROM events")]


def crash(sensor: LogSensor) -> None:
    """Stop as a SIGKILL would: no flush, no checkpoint save — just release the handles."""
    for source in sensor.inputs:
        for tracked in source.tailer._files.values():
            tracked.close()
    sensor.forwarder.spool.close()


def test_import_with_restart_and_rotation_stores_each_line_once(tmp_path: Path, store: OutageStore) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    auth = logs / "auth.log"
    auth.write_bytes(sshd_lines(0, 700))
    first = LogSensor(config(tmp_path, str(logs / "auth.log*")), store, max_records=150)
    for _ in range(3):
        first.step()
        first.forwarder.wait(5)  # the batch handed to the sender thread is answered
    assert 0 < len(stored(store)) < 700
    crash(first)

    with open(auth, "ab") as handle:
        handle.write(sshd_lines(700, 900))
    os.replace(auth, logs / "auth.log.1")  # rotated while the sensor was down
    auth.write_bytes(sshd_lines(900, 1200, host="web01b"))

    second = LogSensor(config(tmp_path, str(logs / "auth.log*")), store)
    counters = second.run_until_idle(timeout=60)
    assert second.close()

    events = stored(store)
    assert len(events) == 1200
    assert sorted(int(e["message"].rsplit("#", 1)[1]) for e in events) == list(range(1200))
    assert counters["dead_lettered"] == 0
    assert counters["parse_failures"] == 0
    sample = next(e for e in events if e["message"].endswith("#1"))
    assert sample["organization.id"] == TENANT
    assert sample["event.action"] == "ssh_login"
    assert sample["user.name"] == "alice"
    assert sample["event.ingested"]
    actions = {e.get("event.action") for e in events}
    assert actions == {"ssh_login", "ssh_invalid_user", "ssh_disconnect", None}


def test_store_outage_midway_loses_and_duplicates_nothing(tmp_path: Path, store: OutageStore) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "auth.log").write_bytes(sshd_lines(0, 1000))
    sensor = LogSensor(config(tmp_path, str(logs / "auth.log")), store, max_records=100)
    for _ in range(3):
        sensor.step()
        sensor.forwarder.wait(5)  # the batch handed to the sender thread is answered
    store.down = True
    for _ in range(5):
        sensor.step()
        sensor.forwarder.wait(5)
    checkpoint_during_outage = sensor.bytes_acknowledged()
    delivered_before = len(stored(store))
    assert checkpoint_during_outage <= sum(len(line) + 1 for line in sshd_lines(0, delivered_before).splitlines())
    store.down = False
    counters = sensor.run_until_idle(timeout=60)
    assert sensor.close()
    assert len(stored(store)) == 1000
    assert counters["store_failures"] >= 1
    assert counters["events_out"] - counters["duplicates"] == 1000


def test_checkpoint_never_passes_undelivered_events_across_a_crash(tmp_path: Path, store: OutageStore) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "auth.log").write_bytes(sshd_lines(0, 300))
    store.down = True
    sensor = LogSensor(config(tmp_path, str(logs / "auth.log")), store)
    for _ in range(3):
        sensor.step()
    assert sensor.bytes_acknowledged() == 0
    crash(sensor)
    store.down = False
    again = LogSensor(config(tmp_path, str(logs / "auth.log")), store)
    again.run_until_idle(timeout=60)
    again.close()
    assert len(stored(store)) == 300


def test_unparsable_and_overlong_lines_become_flagged_events(tmp_path: Path, store: OutageStore) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    body = b"not syslog at all \xff\xfe\n" + sshd_lines(0, 1) + b"Feb  5 10:00:00 h sshd[1]: " + b"A" * 5000 + b"\n"
    (logs / "auth.log").write_bytes(body)
    cfg = config(tmp_path, str(logs / "auth.log"))
    cfg = cfg.model_copy(update={"inputs": [cfg.inputs[0].model_copy(update={"max_line_bytes": 1000})]})
    sensor = LogSensor(cfg, store)
    counters = sensor.run_until_idle(timeout=30)
    sensor.close()
    events = sorted(stored(store), key=lambda e: e["log.offset"])
    assert len(events) == 3
    failed, ok, long = events
    assert failed["tags"] == ["parse_failure", "invalid_utf8"]
    assert failed["event.original"] == base64.b64encode(b"not syslog at all \xff\xfe").decode()
    assert failed["log.original_encoding"] == "base64" and failed["log.flags"] == ["invalid_utf8"]
    assert "no syslog timestamp" in failed["error.message"]
    assert "parse_failure" not in ok.get("tags", [])
    assert long["tags"] == ["truncated"] and long["log.flags"] == ["truncated"]
    assert counters["parse_failures"] == 1 and counters["lines_truncated"] == 1


def test_tenant_comes_from_configuration_not_from_the_line(tmp_path: Path, store: OutageStore) -> None:
    sensor = LogSensor(config(tmp_path, str(tmp_path / "none.log")), store)
    record = LogRecord(b"Feb  5 10:00:00 h app: organization.id=other", "fp", "/x", 0, 10, 1)
    source = sensor.inputs[0]
    event = sensor.build_event(source, record, _context())
    assert event["organization.id"] == TENANT
    sensor.close()


def _context() -> ParseContext:
    return ParseContext(now=datetime(2024, 3, 1, tzinfo=UTC))


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=400))
def test_fuzz_any_line_gives_exactly_one_valid_event(raw: bytes) -> None:
    sensor = _FUZZ_SENSOR
    record = LogRecord(raw, "fp", "/var/log/auth.log", 0, len(raw) + 1, 1)
    event = sensor.build_event(sensor.inputs[0], record, _context())
    assert validate_event(event) == []
    json.dumps(event)


def test_bad_configuration_reports_every_problem() -> None:
    with pytest.raises(ConfigError) as info:
        SensorConfig.from_dict(
            {"tenant": "", "sensor_id": "s", "state_dir": "/tmp/x", "inputs": [{"paths": [], "parser": "nope"}]}
        )
    text = str(info.value)
    assert "tenant" in text and "inputs.0.paths" in text and "unknown parser 'nope'" in text


class _NoStore:
    name = "none"

    def add_events(self, events: Sequence[Event], *, encoded: Sequence[bytes] | None = None) -> BulkResult:
        raise AssertionError("not used")


def _fuzz_sensor() -> LogSensor:
    state = Path(tempfile.mkdtemp(prefix="fuzz-sensor-"))
    cfg = SensorConfig.from_dict(
        {"tenant": TENANT, "sensor_id": "fuzz", "state_dir": str(state), "inputs": [{"paths": [str(state / "x")]}]}
    )
    sensor = LogSensor(cfg, _NoStore())  # type: ignore[arg-type]
    sensor.forwarder.spool.close()
    return sensor


_FUZZ_SENSOR = _fuzz_sensor()
