"""Issue 15 item 11: syslog over TCP from real senders (util-linux ``logger`` and plain sockets).

An octet count of ``0`` is an empty frame that is skipped, the connection goes on; a line that
starts with digits and a space inside an LF-framed stream is a line; bytes that are not UTF-8
are kept losslessly (base64 in ``event.original``, ``log.original_encoding: base64``) while
real text is stored unchanged.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sensors.config import SyslogSensorConfig
from sensors.pipeline import SyslogSensor
from soc_core.events import Event
from soc_core.store.sqlite import SqliteStore
from tests.support.waiting import wait_for

LOCAL = "127.0.0.1"
LOGGER = shutil.which("logger")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    db = SqliteStore(tmp_path / "events.sqlite")
    db.setup()
    yield db
    db.close()


@pytest.fixture
def sensor(tmp_path: Path, store: SqliteStore) -> Iterator[SyslogSensor]:
    config = SyslogSensorConfig.from_dict(
        {"tenant": "police", "sensor_id": "syslog01", "state_dir": str(tmp_path / "state"), "tcp": [f"{LOCAL}:0"],
         "parser": "auth", "forwarder": {"batch_max_age": 0.05}}
    )  # fmt: skip
    made = SyslogSensor(config, store)
    made.start()
    yield made
    made.close()


def delivered(sensor: SyslogSensor, store: SqliteStore, count: int) -> list[Event]:
    def events_out() -> int:
        sensor.step(timeout=0.05)
        return int(sensor.forwarder.counters()["events_out"])

    wait_for(events_out, f"{count} syslog events stored", until=lambda n: n >= count and sensor.forwarder.drained)
    events = [json.loads(doc) for (doc,) in store.select("SELECT doc FROM events ORDER BY rowid")]
    assert len(events) == count, f"expected {count} events, got {[e.get('message') for e in events]}"
    return events


def send(sensor: SyslogSensor, *chunks: bytes) -> None:
    with socket.create_connection((LOCAL, sensor.receiver.port("tcp"))) as client:
        for chunk in chunks:
            client.sendall(chunk)


def test_n15_11_an_empty_octet_frame_is_skipped_and_the_connection_goes_on(
    sensor: SyslogSensor, store: SqliteStore
) -> None:
    first = b"<38>Dec  6 10:00:01 srv sshd[7]: Failed password for root from 10.0.0.9 port 4022 ssh2"
    second = b"<38>Dec  6 10:00:02 srv sshd[7]: Failed password for root from 10.0.0.9 port 4023 ssh2"
    send(sensor, b"%d %s0 %d %s" % (len(first), first, len(second), second))
    events = delivered(sensor, store, 2)
    assert [e["source.port"] for e in events] == [4022, 4023], "the frame behind the empty one was lost"
    counters = sensor.receiver.counters()
    assert counters["empty_frames"] == 1 and counters["framing_errors"] == 0, counters


def test_n15_11_a_line_starting_with_digits_and_a_space_stays_one_line(
    sensor: SyslogSensor, store: SqliteStore
) -> None:
    lines = [b"<38>Dec  6 10:00:01 srv sshd[7]: Server listening on 0.0.0.0 port 22.", b"12 users logged in",
             b"3 failed logins since last check"]  # fmt: skip
    send(sensor, b"\n".join(lines[:2]) + b"\n", lines[2] + b"\n")
    events = delivered(sensor, store, 3)
    originals = [e.get("event.original") for e in events]
    assert originals == [line.decode() for line in lines], f"an LF line was split as an octet frame: {originals}"


@pytest.mark.skipif(LOGGER is None, reason="util-linux logger is not installed")
def test_n15_11_invalid_utf8_is_kept_losslessly_and_text_unchanged(
    tmp_path: Path, sensor: SyslogSensor, store: SqliteStore
) -> None:
    assert LOGGER is not None
    lines = tmp_path / "lines.txt"
    bad = "Invalid user caf\u00e9".encode() + b"\xff\xfe\\xff from 10.0.0.7 port 4100"
    lines.write_bytes(b"Invalid user caf\xc3\xa9 from 10.0.0.7 port 4101\n" + bad + b"\n")
    port = str(sensor.receiver.port("tcp"))
    for framing in ([], ["--octet-count"]):
        command = [LOGGER, "--tcp", *framing, "--rfc3164", "-n", LOCAL, "-P", port, "-t", "sshd", "-f", str(lines)]
        subprocess.run(command, check=True, timeout=30)
    events = delivered(sensor, store, 4)
    for good, broken in (events[0:2], events[2:4]):
        assert good["user.name"] == "caf\u00e9" and good["event.original"].endswith("port 4101")
        assert "log.original_encoding" not in good and "invalid_utf8" not in good.get("tags", [])
        raw = base64.b64decode(broken["event.original"], validate=True)
        assert raw.endswith(bad), raw  # every byte, and the literal backslash-x-f-f text, as sent
        assert broken["log.original_encoding"] == "base64" and "invalid_utf8" in broken["log.flags"]
        assert broken["source.ip"] == "10.0.0.7", "the text around the bad bytes was still parsed"
