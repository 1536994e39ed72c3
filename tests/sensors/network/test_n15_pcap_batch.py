"""Issue 15 item 9: ``soc sensor pcap`` over many files reports a damaged file and goes on."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sensors.net_cli import build_network_app
from soc_core.store.sqlite import SqliteStore
from tests.shared_data import SHARED_DATA

ZEEK = SHARED_DATA / "pcaps/zeek"
GOOD = [ZEEK / "wikipedia.pcap", ZEEK / "http/get.pcap"]
pytestmark = pytest.mark.skipif(not all(p.is_file() for p in GOOD), reason=f"{ZEEK} is not present")


def _damaged(tmp_path: Path) -> Path:
    """wikipedia.pcap with an impossible length in its 11th record: it cannot be framed past it."""
    data = bytearray(GOOD[0].read_bytes())
    offset = 24
    for _ in range(10):
        offset += 16 + struct.unpack_from("<I", data, offset + 8)[0]
    struct.pack_into("<I", data, offset + 8, 0x7FFF_FFFF)
    path = tmp_path / "damaged.pcap"
    path.write_bytes(bytes(data))
    return path


def test_n15_9_a_corrupt_pcap_is_reported_counted_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "cli.db"

    def open_store() -> SqliteStore:
        opened = SqliteStore(path)
        opened.setup()
        return opened

    damaged = _damaged(tmp_path)
    not_pcap = tmp_path / "notes.pcap"
    not_pcap.write_text("this is not a capture\n")
    files = [GOOD[0], damaged, not_pcap, GOOD[1]]
    arguments = [
        "pcap",
        *map(str, files),
        "--tenant",
        "police",
        "--sensor-id",
        "lab",
        "--state-dir",
        str(tmp_path / "s"),
    ]
    result = CliRunner().invoke(build_network_app(open_store), arguments)
    assert result.exit_code == 1, result.output  # some files failed
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    per_file = {line["file"]: line for line in lines if "file" in line}
    assert set(per_file) == set(map(str, files)), f"a file was not reported: {result.stdout}"
    assert "record length 2147483647 is impossible" in per_file[str(damaged)]["error"]
    assert "not a pcap or pcapng file" in per_file[str(not_pcap)]["error"]
    assert per_file[str(GOOD[1])]["http_messages"] > 0, "the file after the damaged ones was not imported"
    assert lines[-1]["files"] == 4 and lines[-1]["files_failed"] == 2
    assert str(damaged) in result.stderr and str(not_pcap) in result.stderr
    # every packet was read: both good files whole and the ten records before the damage
    assert lines[-1]["packets"] == 136 + 10 + 14, lines[-1]
    events, _ = open_store().read_new_events(None, limit=100_000)
    hosts = {event.get("url.domain") for event in events if event["event.dataset"] == "network.http"}
    assert {"www.wikipedia.org", "bro.org"} <= hosts, f"a good file's HTTP is missing: {hosts}"
