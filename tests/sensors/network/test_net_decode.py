"""The pure packet core: header decoding, malformed input, Community ID, flows, DNS/HTTP/ARP."""

from __future__ import annotations

import contextlib
import random
import re
import socket
import struct
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet, Raw, fuzz
from scapy.utils import RawPcapNgReader, RawPcapReader

from sensors.packets.analyzer import PacketAnalyzer, Record
from sensors.packets.community_id import community_id, icmp_ports
from sensors.packets.decode import DecodeError, Unsupported, decode_frame
from sensors.packets.dns import parse_dns
from sensors.packets.flows import FlowRecord, FlowTable
from sensors.packets.http import parse_http
from sensors.sources.network import PcapFile
from tests.shared_data import SHARED_DATA

ZEEK = SHARED_DATA / "pcaps/zeek"
needs_zeek = pytest.mark.skipif(not ZEEK.is_dir(), reason=f"{ZEEK} (Zeek test pcaps) is not present")
MAC_A, MAC_B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


def run(frames: Sequence[bytes | Packet], *, start: float = 1_700_000_000.0, step: float = 0.01) -> PacketAnalyzer:
    analyzer = PacketAnalyzer()
    for index, frame in enumerate(frames):
        data = bytes(frame)
        analyzer.feed(start + index * step, data, len(data), 1, index)
    analyzer.flush()
    return analyzer


def of(analyzer: PacketAnalyzer, dataset: str) -> list[Record]:
    return [r for r in analyzer.drain() if r.dataset == dataset]


def accounted(analyzer: PacketAnalyzer) -> bool:
    c = analyzer.counters
    return c["packets"] == c["decoded"] + c["unsupported"] + c["decode_errors"]


# ----------------------------------------------------------------------------- community id
@needs_zeek
@pytest.mark.parametrize("name", ["icmp", "icmp6", "ipv6", "tcp", "udp", "sctp"])
def test_community_id_agrees_with_zeek(name: str) -> None:
    expected_text = (ZEEK / "communityid" / "expected" / f"{name}.pcap.out").read_text()
    lines = re.findall(
        r"orig_h=([^,]+), orig_p=(\d+)/\w+, resp_h=([^,]+), resp_p=(\d+)/\w+, proto=(\d+).*(1:\S+)$",
        expected_text,
        re.M,
    )
    assert lines
    for orig, sport, resp, dport, proto, cid in lines:
        family = socket.AF_INET6 if ":" in orig else socket.AF_INET
        src, dst = socket.inet_pton(family, orig), socket.inet_pton(family, resp)
        one_way = int(proto) in (1, 58) and icmp_ports(int(proto), int(sport), int(dport))[2]
        assert community_id(src, dst, int(proto), int(sport), int(dport), one_way=one_way) == cid
    if name == "sctp":
        return  # Zeek does not parse SCTP ports and hashes 0/0; we follow the spec and hash them
    with PcapFile(ZEEK / "communityid" / f"{name}.pcap") as pcap:
        analyzer = PacketAnalyzer()
        for index, frame in enumerate(pcap):
            analyzer.feed(frame.timestamp, frame.data, frame.wire_len, frame.linktype, index)
    analyzer.flush()
    ours = {r.fields["network.community_id"] for r in of(analyzer, "network.flow")}
    assert {line[5] for line in lines} == ours


def test_community_id_is_the_same_both_ways() -> None:
    a, b = socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2")
    assert community_id(a, b, 6, 1234, 80) == community_id(b, a, 6, 80, 1234)


# ------------------------------------------------------------------------------ pcap reader
@needs_zeek
@pytest.mark.parametrize(
    "relative", ["wikipedia.pcap", "http/bro.org.pcap", "irc-dcc-send.pcapng", "tcp/retransmit-timeout.pcapng"]
)
def test_pcap_reader_matches_scapy_raw_reader(relative: str) -> None:
    path = ZEEK / relative
    reader = RawPcapNgReader if path.suffix == ".pcapng" else RawPcapReader
    with reader(str(path)) as scapy_reader:
        theirs = [bytes(data) for data, _ in scapy_reader]
    with PcapFile(path) as pcap:
        ours = [frame.data for frame in pcap]
    assert ours == theirs


def test_pcap_reader_rejects_other_files(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(Exception, match="not a pcap"):
        PcapFile(path)


# ----------------------------------------------------------------------- malformed frames
def tcp_frame() -> bytes:
    return bytes(Ether(src=MAC_A, dst=MAC_B) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=80))


@pytest.mark.parametrize(
    ("frame", "outcome"),
    [
        (b"", DecodeError),
        (tcp_frame()[:10], DecodeError),  # truncated Ethernet
        (tcp_frame()[:20], DecodeError),  # truncated IPv4
        (tcp_frame()[:40], DecodeError),  # truncated TCP
        (tcp_frame()[:14] + b"\x41" + tcp_frame()[15:], DecodeError),  # IHL 1 (4 bytes)
        (tcp_frame()[:14] + b"\x4f" + tcp_frame()[15:], DecodeError),  # IHL 15 past the packet
        (tcp_frame()[:14] + b"\x65" + tcp_frame()[15:], DecodeError),  # version 6 in IPv4
        (tcp_frame()[:12] + b"\x88\xcc" + tcp_frame()[14:], Unsupported),  # LLDP
        (tcp_frame()[:12] + b"\x12\x34" + tcp_frame()[14:], Unsupported),  # odd EtherType
        (bytes(Ether() / Dot1Q() / Dot1Q() / Dot1Q() / Dot1Q() / Dot1Q() / IP()), DecodeError),
        (bytes(Ether() / IPv6(nh=0) / Raw(b"\x00")), DecodeError),  # extension header truncated
    ],
)
def test_malformed_frames_are_classified(frame: bytes, outcome: type[Exception]) -> None:
    with pytest.raises(outcome):
        decode_frame(frame)
    analyzer = run([frame])
    assert accounted(analyzer)
    assert analyzer.counters["decoded"] == 0


def test_jumbo_and_vlan_frames_decode() -> None:
    jumbo = Ether() / Dot1Q(vlan=42) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5, dport=6) / Raw(b"x" * 9000)
    packet = decode_frame(bytes(jumbo))
    assert (packet.vlan, packet.sport, packet.dport, packet.payload_end - packet.payload_offset) == (42, 5, 6, 9000)


def test_fuzzed_packets_never_crash_and_are_counted() -> None:
    random.seed(4)
    templates = [
        Ether() / IP() / TCP(),
        Ether() / IP() / UDP(dport=53) / DNS(),
        Ether() / IPv6() / UDP(sport=53) / DNS(qr=1),
        Ether() / IP() / ICMP(),
        Ether() / ARP(),
        Ether() / IP() / TCP(dport=443) / Raw(b"\x16\x03\x01\x00\x40\x01"),
    ]
    frames = [bytes(fuzz(template.copy())) for template in templates for _ in range(200)]
    analyzer = run(frames)
    assert analyzer.counters["packets"] == len(frames)
    assert accounted(analyzer)
    assert analyzer.counters["analyzer_errors"] == 0
    assert analyzer.counters["decode_errors"] > 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([0, 1, 101, 113, 276, 12345]))
def test_arbitrary_bytes_never_crash(data: bytes, linktype: int) -> None:
    analyzer = PacketAnalyzer()
    analyzer.feed(1.0, data, len(data), linktype, 0)
    analyzer.flush()
    assert accounted(analyzer)
    assert analyzer.counters["analyzer_errors"] == 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_dns_parser_raises_only_decode_errors(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        parse_dns(data)


# ------------------------------------------------------------------------------ protocols
def test_dns_query_and_answer_events() -> None:
    base = Ether(src=MAC_A, dst=MAC_B) / IP(src="10.0.0.1", dst="10.0.0.53")
    query = base / UDP(sport=5353, dport=53) / DNS(id=7, rd=1, qd=DNSQR(qname="www.example.org", qtype="AAAA"))
    answer = (
        Ether(src=MAC_B, dst=MAC_A) / IP(src="10.0.0.53", dst="10.0.0.1") / UDP(sport=53, dport=5353)
        / DNS(id=7, qr=1, rcode=0, qd=DNSQR(qname="www.example.org", qtype="AAAA"),
              an=DNSRR(rrname="www.example.org", type="AAAA", rdata="2001:db8::1", ttl=30))
    )  # fmt: skip
    records = of(run([query, answer]), "network.dns")
    assert [r.fields["dns.type"] for r in records] == ["query", "answer"]
    assert records[0].fields["dns.question.name"] == "www.example.org"
    assert records[0].fields["dns.question.type"] == "AAAA"
    assert records[1].fields["dns.response_code"] == "NOERROR"
    assert records[1].fields["dns.resolved_ip"] == ["2001:db8::1"]
    assert records[1].fields["dns.answers"][0]["ttl"] == 30


def test_dns_compression_loop_is_an_error() -> None:
    message = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\xc0\x0c" + b"\x00\x01\x00\x01"
    with pytest.raises(DecodeError):
        parse_dns(message)


def test_http_request_and_response_pair() -> None:
    request = b"GET /a/b?x=1 HTTP/1.1\r\nHost: example.org:8080\r\nUser-Agent: curl/8\r\n\r\n"
    fields = parse_http(request)
    assert fields is not None
    assert (fields["http.request.method"], fields["url.domain"], fields["url.path"]) == ("GET", "example.org", "/a/b")
    assert fields["url.query"] == "x=1"
    assert fields["user_agent.original"] == "curl/8"
    response = parse_http(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html; charset=utf-8\r\n\r\n")
    assert response is not None and response["http.response.status_code"] == 404
    assert parse_http(b"\x00\x01binary") is None
    c2s = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=4000, dport=80, flags="PA") / Raw(request)
    s2c = (
        Ether()
        / IP(src="10.0.0.2", dst="10.0.0.1")
        / TCP(sport=80, dport=4000, flags="PA")
        / Raw(b"HTTP/1.1 200 OK\r\n\r\n")
    )
    (event,) = of(run([c2s, s2c]), "network.http")
    assert event.fields["http.response.status_code"] == 200
    assert event.fields["url.domain"] == "example.org"


def test_arp_binding_change_is_flagged() -> None:
    def reply(mac: str) -> Ether:
        return Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=2, hwsrc=mac, psrc="10.0.0.1", pdst="10.0.0.9")

    records = of(run([reply(MAC_A), reply(MAC_A), reply(MAC_B)]), "network.arp")
    assert [r.fields["network.arp.binding_changed"] for r in records] == [False, True]
    assert records[1].fields["source.mac"] == "02-00-00-00-00-0B"
    assert records[1].fields["network.arp.previous_mac"] == "02-00-00-00-00-0A"


# ---------------------------------------------------------------------------------- flows
def test_bidirectional_flow_counts_and_flags() -> None:
    syn = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=4000, dport=22, flags="S")
    synack = Ether() / IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=22, dport=4000, flags="SA")
    rst = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=4000, dport=22, flags="R")
    (flow,) = of(run([syn, synack, rst]), "network.flow")
    f = flow.fields
    assert (f["source.ip"], f["destination.port"], f["source.packets"], f["destination.packets"]) == (
        "10.0.0.1",
        22,
        2,
        1,
    )
    assert f["source.tcp_flags"] == ["SYN", "RST"]
    assert f["destination.tcp_flags"] == ["SYN", "ACK"]
    assert f["event.reason"] == "flush"


def test_flow_table_is_bounded_and_counts_evictions() -> None:
    ended: list[FlowRecord] = []
    table = FlowTable(max_flows=10, on_end=ended.append)
    for port in range(25):
        table.update(1.0, b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02", 1000 + port, 80, 17, 60, 0)
    assert len(table) == 10
    assert table.stats["flows_evicted"] == 15
    assert all(record.reason == "evicted" for record in ended)


def test_flow_timeouts() -> None:
    ended: list[FlowRecord] = []
    table = FlowTable(idle_timeout=10, active_timeout=30, closed_timeout=2, on_end=ended.append)
    a, b = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
    table.update(0.0, a, b, 1, 2, 17, 60, 0)  # goes idle
    for moment in range(0, 40, 5):  # long-lived: reported at the active timeout
        table.update(float(moment), a, b, 3, 4, 17, 60, 0)
    table.update(40.0, a, b, 5, 6, 6, 60, 0x04)  # RST: closed
    table.expire(43.0)
    assert sorted(record.reason for record in ended) == ["active", "closed", "idle"]
