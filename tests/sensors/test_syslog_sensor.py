"""The syslog sensor end to end: sockets → parser → spool → the real SQLite store (S1, S2, S8)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sensors.config import SyslogSensorConfig
from sensors.pipeline import SyslogSensor
from soc_core.errors import ConfigError
from soc_core.events import Event, validate_event
from soc_core.store.sqlite import SqliteStore
from tests.shared_data import unavailable
from tests.support.waiting import wait_for

LOCAL = "127.0.0.1"
TENANT = "police"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    db = SqliteStore(tmp_path / "events.sqlite")
    db.setup()
    yield db
    db.close()


def make_sensor(tmp_path: Path, store: SqliteStore, **options: object) -> SyslogSensor:
    config = SyslogSensorConfig.from_dict(
        {
            "tenant": TENANT,
            "sensor_id": "syslog01",
            "state_dir": str(tmp_path / "state"),
            "udp": [f"{LOCAL}:0"],
            "tcp": [f"{LOCAL}:0"],
            "forwarder": {"batch_max_age": 0.05},
            **options,
        }
    )
    sensor = SyslogSensor(config, store)
    sensor.start()
    return sensor


def stored(store: SqliteStore) -> list[Event]:
    return [json.loads(doc) for (doc,) in store.select("SELECT doc FROM events ORDER BY rowid")]


def events_in(database: Path) -> int:
    """Events another process stored so far (an error while it creates the database is "not yet")."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
            (count,) = connection.execute("SELECT count(*) FROM events").fetchone()
    except sqlite3.Error:
        return 0
    return int(count)


def deliver(sensor: SyslogSensor, store: SqliteStore, count: int) -> list[Event]:
    def events_out() -> int:
        sensor.step(timeout=0.05)
        return sensor.forwarder.counters()["events_out"]

    wait_for(
        events_out, f"{count} events out, drained", until=lambda n: n >= count and sensor.forwarder.drained, poll=0
    )
    assert sensor.close()
    return stored(store)


def test_s1_end_to_end_original_bytes_and_truncation_flags(tmp_path: Path, store: SqliteStore) -> None:
    sensor = make_sensor(tmp_path, store, max_message_bytes=2048)
    head = b"<165>1 2024-02-05T10:00:00.000Z web01 app 42 ID7 - "
    sent = {size: head + b"m" * (size - len(head)) for size in (480, 2048, 4000)}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for message in sent.values():
            udp.sendto(message, (LOCAL, sensor.receiver.port("udp")))
    with socket.create_connection((LOCAL, sensor.receiver.port("tcp"))) as conn:
        conn.sendall(b"".join(b"%d %s" % (len(m), m) for m in sent.values()))
    events = deliver(sensor, store, 6)
    assert len(events) == 6
    for event in events:
        assert validate_event(event) == []
        size = len(event["event.original"])
        assert event["event.original"].encode() == sent[size if size != 2048 else 2048][:2048]
        assert event["organization.id"] == TENANT
        assert event["log.syslog.transport"] in ("udp", "tcp")
        assert event["log.source.address"].startswith("127.0.0.1:")
        assert event["log.syslog.appname"] == "app"
    truncated = [e for e in events if "truncated" in e.get("tags", [])]
    assert len(truncated) == 2 and all(e["log.flags"] == ["truncated"] for e in truncated)
    assert sensor.counters()["truncated"] == 2
    assert len({e["event.id"] for e in events}) == 6


CORPUS: list[tuple[bytes, str]] = [  # each input and the parse status it must get
    (b"no PRI at all, just words", "failed"),
    (b"<999>Feb  5 10:00:00 host app: priority out of range", "partial"),
    (b"<13>no timestamp here", "partial"),
    (b"<13>Feb  5 10:00:00 host app[12]: a valid line", "ok"),
    (b"Feb  5 10:00:00 host app: no PRI but a header", "ok"),
    (b"<13>Dec 31 23:59:59 host app: year rollover", "ok"),
    (b"<13>Feb 30 10:00:00 host app: impossible date", "partial"),
    (b"<13>Feb  5 10:00:00 h\xc3\xb4st-\xff_.weird app: odd hostname", "ok"),
    (b"<13>Feb  5 10:00:00 host " + b"t" * 400 + b": long tag", "ok"),
    (b"<13>Feb  5 10:00:00 host app: invalid utf-8 \xff\xfe\xc3", "ok"),
    (b"<13>Feb  5 10:00:00 host app: NUL\x00 ESC\x1b[31m CR\r LF\n inside", "ok"),
    (b"<13>1 2024-02-05T10:00:00Z host app - - [bad sd", "partial"),
    (b'<13>1 2024-02-05T10:00:00Z host app - - [id a="b"] \xef\xbb\xbfwith BOM', "ok"),
    (b"<13>1 - host app - - - no timestamp", "partial"),
    (b"<13>", "partial"),
    (b"<999>", "failed"),
    (b"\x00\x01\x02", "failed"),
    (b" ", "failed"),
]


def test_s2_malformed_corpus_gives_exactly_one_event_per_input_raw_kept(tmp_path: Path, store: SqliteStore) -> None:
    sensor = make_sensor(tmp_path, store)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for message, _ in CORPUS:
            udp.sendto(message, (LOCAL, sensor.receiver.port("udp")))
            time.sleep(0.002)  # keep the order, for the comparison below
    events = deliver(sensor, store, len(CORPUS))
    assert len(events) == len(CORPUS)
    for (message, status), event in zip(CORPUS, events, strict=True):
        assert validate_event(event) == []
        try:  # the raw message, byte for byte: as text, or in base64 when it is not UTF-8
            assert event["event.original"] == message.decode("utf-8")
        except UnicodeDecodeError:
            assert base64.b64decode(event["event.original"]) == message
            assert event["log.original_encoding"] == "base64"
        assert event["log.parse_status"] == status, (message, event)
        assert ("parse_failure" in event.get("tags", [])) == (status == "failed")
        assert ("error.message" in event) == (status != "ok"), event  # the reason, for partial too
        text = event.get("message", "")
        assert "\x1b" not in text and "\x00" not in text and "\n" not in text and "\r" not in text  # escaped
    failures = sum(status == "failed" for _, status in CORPUS)
    assert sensor.counters()["parse_failures"] == failures
    by_input = {message: event for (message, _), event in zip(CORPUS, events, strict=True)}
    assert by_input[b"<13>no timestamp here"]["message"] == "no timestamp here"
    assert "priority <999>" in by_input[b"<999>Feb  5 10:00:00 host app: priority out of range"]["error.message"]
    assert by_input[b"<999>Feb  5 10:00:00 host app: priority out of range"]["host.name"] == "host"
    assert "#033[31m" in by_input[b"<13>Feb  5 10:00:00 host app: NUL\x00 ESC\x1b[31m CR\r LF\n inside"]["message"]


def test_event_ids_are_stable_for_spool_replays_but_new_per_receipt(tmp_path: Path, store: SqliteStore) -> None:
    sensor = make_sensor(tmp_path, store)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for _ in range(2):
            udp.sendto(b"<13>Feb  5 10:00:00 h app: same bytes twice", (LOCAL, sensor.receiver.port("udp")))
    events = deliver(sensor, store, 2)
    assert len({e["event.id"] for e in events}) == 2  # the network repeated itself: two events
    store.add_events(events)  # a spool replay writes the same ids: nothing new
    assert len(stored(store)) == 2


def test_config_requires_a_listener_and_a_sane_size_limit(tmp_path: Path) -> None:
    base = {"tenant": TENANT, "sensor_id": "s", "state_dir": str(tmp_path)}
    with pytest.raises(ConfigError, match="at least one udp or tcp"):
        SyslogSensorConfig.from_dict(base)
    with pytest.raises(ConfigError, match="max_message_bytes"):
        SyslogSensorConfig.from_dict({**base, "udp": ["514"], "max_message_bytes": 70000})
    with pytest.raises(ConfigError, match="tcp"):
        SyslogSensorConfig.from_dict({**base, "tcp": ["host:port"]})


# ---------------------------------------------------------------------------------- S8
LOGGER = shutil.which("logger")


@pytest.mark.parametrize("transport", ["--udp", "--tcp"])
@pytest.mark.parametrize("template", ["--rfc3164", "--rfc5424"])
def test_s8_util_linux_logger_is_parsed(tmp_path: Path, store: SqliteStore, transport: str, template: str) -> None:
    if LOGGER is None:
        unavailable("logger not installed (Debian package bsdutils / util-linux)")
    sensor = make_sensor(tmp_path, store)
    port = sensor.receiver.port("udp" if transport == "--udp" else "tcp")
    text = f"canary {transport} {template} ünïcode"
    argv = [LOGGER, "--server", LOCAL, "--port", str(port), transport, template, "-t", "canhgac", "-p", "auth.warning"]
    subprocess.run([*argv, text], check=True, timeout=10)
    (event,) = deliver(sensor, store, 1)
    assert "parse_failure" not in event.get("tags", []), event
    assert event["log.parse_status"] == "ok", event
    assert event["message"] == text
    assert event["log.syslog.appname"] == "canhgac"
    assert event["log.syslog.facility.name"] == "auth"
    assert event["log.syslog.severity.name"] == "warning"
    assert event["log.syslog.transport"] == transport[2:]
    if template == "--rfc5424":
        assert event["log.syslog.version"] == "1"
    assert event["host.name"]


RSYSLOGD = shutil.which("rsyslogd") or (os.path.exists("/usr/sbin/rsyslogd") and "/usr/sbin/rsyslogd") or None


@pytest.mark.parametrize("template", ["RSYSLOG_SyslogProtocol23Format", "RSYSLOG_ForwardFormat"])
def test_s8_rsyslog_forwarding_is_parsed(tmp_path: Path, store: SqliteStore, template: str) -> None:
    if not RSYSLOGD:
        unavailable("rsyslogd not installed (Debian package rsyslog)")
    sensor = make_sensor(tmp_path, store)
    port = sensor.receiver.port("tcp")
    work = tmp_path / "rsyslog"
    work.mkdir()
    conf = work / "rsyslog.conf"
    conf.write_text(
        f'global(workDirectory="{work}")\n'
        f'module(load="imuxsock" SysSock.Use="off")\n'
        f'module(load="imfile")\n'
        f'input(type="imfile" File="{work}/in.log" Tag="webapp:" Facility="local3" Severity="notice")\n'
        f'action(type="omfwd" target="{LOCAL}" port="{port}" protocol="tcp" template="{template}" '
        f'TCP_Framing="octet-counted")\n'
    )
    (work / "in.log").write_text("rsyslog canary line\n")
    assert RSYSLOGD
    process = subprocess.Popen(
        [RSYSLOGD, "-n", "-f", str(conf), "-i", str(work / "pid")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:

        def events_out() -> int:
            sensor.step(timeout=0.05)
            return sensor.forwarder.counters()["events_out"]

        wait_for(events_out, "rsyslog's canary line", poll=0)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
    events = deliver(sensor, store, 1)
    assert events, output
    event = events[0]
    assert "parse_failure" not in event.get("tags", []), event
    assert event["log.parse_status"] == "ok", event
    assert event["message"] == "rsyslog canary line"
    assert event["log.syslog.facility.name"] == "local3"


def test_cli_syslog_command_runs_until_sigterm(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind((LOCAL, 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "SOC_DATA_DIR": str(tmp_path / "data")}
    argv = [sys.executable, "-c", "from soc_api.cli import main; main()", "sensor", "syslog"]
    argv += ["--udp", f"{LOCAL}:{port}", "--tcp", f"{LOCAL}:{port}", "--tenant", TENANT, "--sensor-id", "cli01"]
    argv += ["--state-dir", str(tmp_path / "state")]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:

        def sent() -> bool:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            with socket.create_connection((LOCAL, port), timeout=0.2) as conn:
                conn.sendall(b"<13>Feb  5 10:00:00 h app: over the cli\n")
            return True

        wait_for(sent, "the CLI sensor to listen", ignore=(OSError,), poll=0.1)
        wait_for(lambda: events_in(tmp_path / "data" / "canhgac.db"), "the message stored", until=lambda n: n == 1)
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    counters = json.loads(out.strip().splitlines()[-1])
    assert counters["tcp_messages"] == 1 and counters["events_out"] == 1
