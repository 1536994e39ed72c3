"""Packets/s decoded from a pcap: the network sensor's analyzer vs scapy rdpcap + dissect.

    .venv/bin/python bench/bench_network.py [PCAP] [--repeat N]

Without PCAP, every Zeek test pcap is read (mostly small files: per-file setup counts too). Prints a
markdown table; the ratio is what to compare across machines.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import scapy.all  # noqa: F401 - loads every layer, as a scapy-based sensor would
from scapy.layers.dns import DNS
from scapy.utils import rdpcap as read_all

from sensors.packets.analyzer import PacketAnalyzer
from sensors.sources.network import PcapFile

ZEEK = Path(__file__).resolve().parents[2] / "shared" / "data" / "pcaps" / "zeek"


def ours(paths: list[Path], repeat: int) -> tuple[int, float]:
    """Read the files with our reader and analyse every frame (flows, DNS, HTTP, TLS …)."""
    count = 0
    start = time.perf_counter()
    for _ in range(repeat):
        for path in paths:
            analyzer = PacketAnalyzer()
            with PcapFile(path) as pcap:
                for index, frame in enumerate(pcap):
                    analyzer.feed(frame.timestamp, frame.data, frame.wire_len, frame.linktype, index)
                    count += 1
            analyzer.flush()
            analyzer.drain()
    return count, time.perf_counter() - start


def scapy_baseline(paths: list[Path]) -> tuple[int, float]:
    """rdpcap (dissects every layer) and touch the DNS layer, as a scapy-only sensor would."""
    count = 0
    start = time.perf_counter()
    for path in paths:
        for packet in read_all(str(path)):
            count += 1
            if packet.haslayer(DNS):
                packet[DNS].qd  # noqa: B018 - the work a sensor would do
    return count, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pcap", nargs="*", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    paths = args.pcap or sorted(p for p in ZEEK.rglob("*") if p.suffix in (".pcap", ".pcapng") and p.is_file())
    ours_count, ours_time = ours(paths, args.repeat)
    scapy_count, scapy_time = scapy_baseline(paths)
    ours_rate = ours_count / ours_time
    scapy_rate = scapy_count / scapy_time
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, 1 core")
    print(f"input: {len(paths)} file(s), {scapy_count} packets\n")
    print("| decoder | packets | seconds | packets/s | vs scapy |")
    print("|---|---:|---:|---:|---:|")
    ratio = ours_rate / scapy_rate
    name = "canhgac analyzer (struct headers + flows/DNS/HTTP/TLS)"
    print(f"| {name} | {ours_count} | {ours_time:.2f} | {ours_rate:,.0f} | {ratio:.1f}× |")
    print(f"| scapy rdpcap + dissect | {scapy_count} | {scapy_time:.2f} | {scapy_rate:,.0f} | 1.0× |")


if __name__ == "__main__":
    main()
