"""Issue 15 item 10: an ``sshd -E`` log file (no syslog header, CRLF) is recognised and detected.

``data/sshd-E.log`` is what a real OpenSSH 9.2 ``sshd -E`` wrote while THC Hydra guessed
passwords for ``root`` and for a user that does not exist (kept byte for byte, CRLF included).
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from detections.engine import DetectionEngine
from detections.loader import load_rules, shipped_rules_dir
from sensors.config import InputConfig, SensorConfig
from sensors.parsers import ParseContext, get_parser
from sensors.pipeline import LogSensor
from soc_core.errors import ParseError
from soc_core.store import Store
from tests.support.waiting import wait_for

LOG = Path(__file__).parent / "data" / "sshd-E.log"
SSH_BRUTEFORCE = "74d45926-2b16-4397-acdf-3728c2a10647"


@pytest.mark.parametrize("parser", ["auth", "sshd"])
def test_n15_10_sshd_E_lines_parse_and_others_still_fail(parser: str) -> None:
    spec = get_parser(parser)
    now = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    lines = LOG.read_bytes().decode().split("\n")
    assert lines[0].endswith("\r"), "the sample lost its CRLF line ends"
    fields = [spec.parse(line, ParseContext(now=now)) for line in lines if line]
    failures = [
        (f["event.action"], f["user.name"], f["source.ip"]) for f in fields if f.get("event.outcome") == "failure"
    ]
    assert failures == [("ssh_login", "root", "127.0.0.1")] * 2 + [("ssh_invalid_user", "nobodyx", "127.0.0.1")] * 5
    assert all(f["@timestamp"] == now and f["process.name"] == "sshd" for f in fields)
    assert all(f["log.parse_status"] == "partial" and "sshd -E" in f["error.message"] for f in fields)
    with pytest.raises(ParseError):  # a headerless line of something else is still not sshd
        spec.parse("kernel: eth0 link up\r", ParseContext(now=now))


def test_n15_10_an_sshd_E_log_file_raises_ssh_brute_force(store: Store, tmp_path: Path) -> None:
    copy = tmp_path / "sshd.log"
    # the capture holds 4 password tries (sshd's "Invalid user" announcements are not tries): twice
    # over, 8 tries, past the brute-force threshold of 5
    copy.write_bytes(LOG.read_bytes() * 2)
    config = SensorConfig(
        tenant="police", sensor_id="sshd-e", state_dir=tmp_path / "state",
        inputs=[InputConfig(paths=[str(copy)], parser="auth", from_beginning=True)],
    )  # fmt: skip
    sensor = LogSensor(config, store)
    try:
        counters = sensor.run_until_idle(timeout=60)
    finally:
        sensor.close()
    assert counters["parse_failures"] == 0, counters
    engine = DetectionEngine(load_rules([shipped_rules_dir()]), store)

    def brute_force() -> list[dict[str, Any]]:
        store.refresh()
        engine.run_until_idle()
        return [a.body for a in store.list_docs("alerts", size=50).items if a.body.get("rule.id") == SSH_BRUTEFORCE]

    alerts = wait_for(brute_force, "SSH Brute Force from the sshd -E log")
    assert len(alerts) == 1, alerts
    # the sensor's host wrote the sshd -E file; hydra guessed for root and a user that does not exist
    assert alerts[0]["group"] == {"source.ip": "127.0.0.1", "host.name": socket.gethostname()}, alerts
    assert alerts[0]["entities"]["user.name"] == ["nobodyx", "root"]
