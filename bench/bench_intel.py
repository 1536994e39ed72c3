"""Threat-intel lookup speed: the cost the engine's intel hook adds per event.

Builds one province-wide list and one agency list (``--ips`` addresses, ``--networks`` /24
networks, ``--domains`` domains, ``--hashes`` SHA-256 hashes, random, fixed seed) and matches
``--events`` events of four looked-up fields each (two addresses, a DNS name, a hash). Reports
the index build time and events/s; tests never assert on time.

Usage:
    .venv/bin/python bench/bench_intel.py [--events 100000 --ips 50000 --networks 10000 ...]
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import time

from intel.indicators import Indicator
from intel.lookup import IntelIndex, ListedIndicators


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in (
        ("events", 100_000),
        ("ips", 50_000),
        ("networks", 10_000),
        ("domains", 30_000),
        ("hashes", 10_000),
    ):
        parser.add_argument(f"--{name}", type=int, default=default)
    args = parser.parse_args()
    rng = random.Random(1)
    indicators = [Indicator("ip", str(ipaddress.IPv4Address(rng.getrandbits(32)))) for _ in range(args.ips)]
    indicators += [
        Indicator("ip", str(ipaddress.IPv4Network((rng.getrandbits(32) & 0xFFFFFF00, 24))))
        for _ in range(args.networks)
    ]
    indicators += [Indicator("domain", f"d{i}.bad{i % 100}.example") for i in range(args.domains)]
    indicators += [Indicator("sha256", f"{rng.getrandbits(256):064x}") for _ in range(args.hashes)]
    started = time.perf_counter()
    index = IntelIndex(
        [ListedIndicators("*", "big", indicators), ListedIndicators("police", "small", indicators[:1000])]
    )
    built = time.perf_counter() - started
    events = [
        {
            "source.ip": str(ipaddress.IPv4Address(rng.getrandbits(32))),
            "destination.ip": "10.0.0.5",
            "dns.question.name": f"www.x{i}.example.org",
            "file.hash.sha256": f"{rng.getrandbits(256):064x}",
        }
        for i in range(args.events)
    ]
    started = time.perf_counter()
    hits = sum(len(index.match_event(event, "police")) for event in events)
    seconds = time.perf_counter() - started
    print(
        f"{len(indicators):,} indicators built in {built:.2f} s; {args.events:,} events matched in {seconds:.2f} s "
        f"= {args.events / seconds:,.0f} events/s ({hits} hits)"
    )


if __name__ == "__main__":
    main()
