"""Issue 15 item 8, compared with tshark on the same captures: every question of a DNS message is
kept, and a FIN retransmitted after its connection closed does not open a reversed flow."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from sensors.packets.analyzer import PacketAnalyzer, Record
from sensors.packets.decode import decode_frame
from sensors.packets.flows import FIN
from sensors.sources.network import PcapFile
from tests.shared_data import SHARED_DATA

ZEEK = SHARED_DATA / "pcaps/zeek"
TSHARK = shutil.which("tshark")
pytestmark = [
    pytest.mark.skipif(not ZEEK.is_dir(), reason=f"{ZEEK} is not present"),
    pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (scripts/install-system-deps)"),
]


def analyse(path: Path) -> list[Record]:
    analyzer = PacketAnalyzer()
    with PcapFile(path) as pcap:
        for index, frame in enumerate(pcap):
            analyzer.feed(frame.timestamp, frame.data, frame.wire_len, frame.linktype, index)
    analyzer.flush()
    return analyzer.drain()


def tshark(path: Path, display: str, field: str) -> list[str]:
    assert TSHARK is not None
    out = subprocess.run(
        [TSHARK, "-r", str(path), "-Y", display, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|",
         "-e", field],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return out.splitlines()


def test_n15_8_every_question_of_a_dns_message_is_kept_like_tshark() -> None:
    path = ZEEK / "dns/mdns.pcap"  # mDNS queries ask several names at once
    ours = [
        [q["name"] for q in r.fields.get("dns.questions", [])] or [r.fields["dns.question.name"]]
        for r in analyse(path)
        if r.dataset == "network.dns" and "dns.question.name" in r.fields
    ]
    theirs = [line.split("|") for line in tshark(path, "dns.count.queries > 0", "dns.qry.name")]
    assert any(len(names) > 1 for names in theirs), "the capture has no message with several questions"
    assert sorted(ours) == sorted(theirs)


def _with_late_fin(source: Path, target: Path, delays: list[float]) -> None:
    """``source`` (pcap) and its last FIN sent again ``delays`` seconds after the capture's end."""
    data = source.read_bytes()
    assert struct.unpack_from("<I", data)[0] == 0xA1B2C3D4, "a little-endian microsecond pcap"
    linktype = struct.unpack_from("<I", data, 20)[0]
    offset, last_fin, last_time = 24, b"", 0.0
    while offset < len(data):
        seconds, micros, captured, _ = struct.unpack_from("<IIII", data, offset)
        frame = data[offset + 16 : offset + 16 + captured]
        last_time = seconds + micros / 1e6
        if decode_frame(frame, linktype).tcp_flags & FIN:
            last_fin = data[offset + 16 : offset + 16 + captured]
        offset += 16 + captured
    assert last_fin, "the capture has no FIN"
    for delay in delays:
        moment = last_time + delay
        data += struct.pack("<IIII", int(moment), int(moment % 1 * 1e6), len(last_fin), len(last_fin)) + last_fin
    target.write_bytes(data)


def test_n15_8_a_fin_retransmitted_after_close_opens_no_reversed_flow(tmp_path: Path) -> None:
    path = tmp_path / "late-fin.pcap"
    # the first retransmission lets the close timeout pass; the second comes after the flow ended
    _with_late_fin(ZEEK / "http/get.pcap", path, delays=[10.0, 20.0])
    flows = [r.fields for r in analyse(path) if r.dataset == "network.flow"]
    streams = tshark(path, "tcp.flags.syn == 1 && tcp.flags.ack == 0", "tcp.stream")
    assert len(flows) == len(streams) == 1, [
        (f["source.port"], f["destination.port"], f["event.reason"]) for f in flows
    ]
    assert flows[0]["event.reason"] == "closed"
