"""The decoders agree with a peer: tshark (Wireshark) on the Zeek test-suite pcaps.

Compared per file: DNS query names, HTTP request hosts, TLS SNI and JA3, and the set of TCP/UDP
flows (unordered 5-tuples). Skipped, with the reason, when tshark is not installed
(``apt-get install tshark``).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from sensors.packets.analyzer import PacketAnalyzer, Record
from sensors.sources.network import PcapFile
from tests.shared_data import SHARED_DATA
from tests.support.tshark import tshark

ZEEK = SHARED_DATA / "pcaps/zeek"
pytestmark = [
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (Debian package: tshark)"),
    pytest.mark.skipif(not ZEEK.is_dir(), reason=f"{ZEEK} (Zeek test pcaps) is not present"),
]


def _pcaps(*folders: str) -> list[Path]:
    found: list[Path] = []
    for folder in folders:
        found.extend(sorted(p for p in (ZEEK / folder).glob("*.pcap*") if p.is_file()))
    return found


DNS_FILES = _pcaps("dns") + sorted(ZEEK.glob("dns*.pcap"))
HTTP_FILES = _pcaps("http") + sorted(ZEEK.glob("http-*.pcap"))
TLS_FILES = _pcaps("tls")
FLOW_FILES = DNS_FILES + HTTP_FILES + TLS_FILES + sorted(ZEEK.glob("wikipedia*.pcap"))


def analyse(path: Path) -> list[Record]:
    analyzer = PacketAnalyzer()
    with PcapFile(path) as pcap:
        for index, frame in enumerate(pcap):
            analyzer.feed(frame.timestamp, frame.data, frame.wire_len, frame.linktype, index)
    analyzer.flush()
    return analyzer.drain()


# Where we knowingly differ from tshark, with the reason. These files are still compared, as
# strict expected failures: if the difference goes away (say, TCP reassembly lands), the test
# says so and the entry must be removed.
KNOWN_DIFFERENCES = {
    "query-method.pcap": "tshark 4.0 does not know the QUERY method (we report it)",
    "query-method-non-standard-port.pcap": "tshark 4.0 does not know the QUERY method (we report it)",
    "ssl-v2.pcap": "SSLv2-format ClientHello: we parse TLS records only",
}


def known_difference(request: pytest.FixtureRequest, path: Path) -> None:
    if path.name in KNOWN_DIFFERENCES:
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"known difference: {KNOWN_DIFFERENCES[path.name]}"))


def decode_as(records: list[Record], dataset: str, protocol: str, standard: set[int]) -> tuple[str, ...]:
    """tshark options that decode the ports where we found ``protocol`` as that protocol.

    We recognise HTTP and TLS by content on any port; tshark only on registered ports.
    """
    ports = {r.fields["destination.port"] for r in records if r.dataset == dataset} - standard
    options: list[str] = []
    for port in sorted(ports):
        options += ["-d", f"tcp.port=={port},{protocol}"]
    return tuple(options)


def values(records: list[Record], dataset: str, field: str) -> set[Any]:
    return {r.fields[field] for r in records if r.dataset == dataset and field in r.fields}


@pytest.mark.parametrize("path", DNS_FILES, ids=lambda p: p.name)
def test_dns_query_names_agree_with_tshark(path: Path) -> None:
    ours = values(analyse(path), "network.dns", "dns.question.name")
    rows = tshark(path, "dns || mdns", "dns.qry.name")
    # ECS has one question per message: compare the first (mDNS packs several in one query).
    theirs = {row[0].split(",")[0] for row in rows if row[0]}
    theirs = {"" if name == "<Root>" else name for name in theirs}
    # tshark's placeholders for names it could not read ("<Name contains a pointer that loops>");
    # we count those messages as dns_errors instead.
    theirs = {name for name in theirs if not (name.startswith("<") and name.endswith(">"))}
    assert ours == theirs


@pytest.mark.parametrize("path", HTTP_FILES, ids=lambda p: p.name)
def test_http_hosts_agree_with_tshark(request: pytest.FixtureRequest, path: Path) -> None:
    known_difference(request, path)
    records = analyse(path)
    ours = values(records, "network.http", "url.domain")
    options = decode_as(records, "network.http", "http", {80, 8080, 3128})
    rows = tshark(path, "http.request", "http.host", options=options)
    theirs = {row[0].rsplit(":", 1)[0] if row[0].count(":") == 1 else row[0] for row in rows if row[0]}
    assert ours == theirs


@pytest.mark.parametrize("path", TLS_FILES, ids=lambda p: p.name)
def test_tls_sni_and_ja3_agree_with_tshark(request: pytest.FixtureRequest, path: Path) -> None:
    known_difference(request, path)
    records = [r for r in analyse(path) if r.dataset == "network.tls"]
    options = decode_as(records, "network.tls", "tls", {443})
    rows = tshark(
        path,
        "tls.handshake.type == 1 && tcp",
        "tls.handshake.extensions_server_name",
        "tls.handshake.ja3",
        options=options,
    )
    assert {r.fields.get("tls.client.server_name", "") for r in records} == {row[0] for row in rows}
    assert {r.fields["tls.client.ja3"] for r in records} == {row[1] for row in rows if row[1]}


@pytest.mark.parametrize("path", FLOW_FILES, ids=lambda p: p.name)
def test_flows_agree_with_tshark(path: Path) -> None:
    ours = set()
    for record in analyse(path):
        f = record.fields
        if record.dataset == "network.flow" and f["network.transport"] in ("tcp", "udp"):
            ends = sorted([(f["source.ip"], f["source.port"]), (f["destination.ip"], f["destination.port"])])
            ours.add((f["network.transport"], *ends))
    fields = ("ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport")
    theirs = set()
    for row in tshark(path, "(tcp || udp) && !icmp && !icmpv6", *fields, options=("-o", "ip.defragment:FALSE")):
        src, dst = (row[0], row[1]) if row[0] else (row[2], row[3])
        transport = "tcp" if row[4] else "udp"
        sport, dport = (row[4], row[5]) if row[4] else (row[6], row[7])
        if "," in src + dst + sport + dport or not sport:
            continue  # tunnels: tshark shows the inner header too, we count the outer flow
        ends = sorted([(src, int(sport)), (dst, int(dport))])
        theirs.add((transport, *ends))
    assert ours == theirs
