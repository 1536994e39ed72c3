"""Live capture: packets/s with no kernel drop, the network sensor vs scapy's ``sniff``.

    sudo .venv/bin/python bench/bench_network_live.py [--rates 1000,2000,5000,...] [--seconds 3]

Two network namespaces joined by a veth pair are made for the run (and deleted after it). At
each offered rate a paced sender in one namespace sends ``rate × seconds`` UDP frames; in the
other namespace, one after the other and on the same traffic, a capture process reads them:

* ``canhgac``: the network sensor as ``soc sensor net`` runs it (``LiveCapture`` →
  ``PacketAnalyzer`` → forwarder → SQLite store), 32 MiB socket buffer (its default);
* ``scapy``: ``sniff(store=False, prn=count)`` on scapy's own ``L2ListenSocket`` (its default
  buffer, ``conf.bufsize`` = 64 KiB), which we only open ourselves to read its kernel counters.

Both use the same BPF filter. For each: frames handed to the program (read), the kernel's
``PACKET_STATISTICS`` drops, and the rate it read at while the sender was sending (below the
offered rate, the socket buffer holds the backlog: 0 drops over a few seconds is not 0 drops
forever). A capture process waits up to ``--drain`` seconds after the sender ends for its
queue to empty.
Needs root and iproute2. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FILTER = "udp and dst host 10.213.9.99"
SOL_PACKET = 263
PACKET_STATISTICS = 6
SENDER = str(ROOT / "tests" / "sensors" / "network" / "paced_sender.py")


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


def make_pair(tag: str) -> tuple[str, str, str, str, str]:
    ns_a, ns_b, veth_a, veth_b = f"cbA{tag}", f"cbB{tag}", f"bA{tag}", f"bB{tag}"
    for ns in (ns_a, ns_b):
        ip("netns", "add", ns)
        ip("netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        ip("netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
        ip("-n", ns, "link", "set", "lo", "up")
    ip("link", "add", veth_a, "type", "veth", "peer", "name", veth_b)
    ip("link", "set", veth_a, "netns", ns_a)
    ip("link", "set", veth_b, "netns", ns_b)
    ip("-n", ns_a, "addr", "add", "10.213.9.1/24", "dev", veth_a)
    ip("-n", ns_b, "addr", "add", "10.213.9.2/24", "dev", veth_b)
    ip("-n", ns_a, "link", "set", veth_a, "up")
    ip("-n", ns_b, "link", "set", veth_b, "up")
    mac_b = ip("-n", ns_b, "-br", "link", "show", veth_b).split()[2]
    return ns_a, ns_b, veth_a, veth_b, mac_b


# ----------------------------------------------------------------------------- capture workers
def wait_drained(read: Any, done_at: float, drain: float) -> None:
    """Until nothing new was read for 0.3 s, or ``drain`` seconds after the sender ended."""
    last, quiet_since = read(), time.monotonic()
    while time.monotonic() - done_at < drain:
        time.sleep(0.05)
        now = read()
        if now != last:
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= 0.3:
            return


def worker_canhgac(iface: str, drain: float) -> dict[str, Any]:
    from sensors.netsensor import NetSensorSettings, NetworkSensor  # noqa: PLC0415
    from sensors.sources.network import LiveCapture  # noqa: PLC0415
    from soc_core.store.sqlite import SqliteStore  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as state:
        store = SqliteStore(Path(state) / "events.db")
        store.setup()
        settings = NetSensorSettings(tenant="bench", sensor_id="live", state_dir=Path(state) / "sensor")
        sensor = NetworkSensor(settings, store)
        capture = LiveCapture(iface, bpf=FILTER)
        stop = threading.Event()
        runner = threading.Thread(target=sensor.run_live, args=(capture, stop))
        runner.start()
        print("ready", flush=True)
        sys.stdin.readline()  # the sender is done
        done_at = time.monotonic()
        read_at_done = sensor.analyzer.counters["packets"]
        wait_drained(lambda: sensor.analyzer.counters["packets"], done_at, drain)
        stop.set()
        runner.join()
        capture.close()
        store.close()
        return {
            "read": sensor.analyzer.counters["packets"],
            "read_while_sending": read_at_done,
            "kernel_received": sensor.kernel_totals.received,
            "kernel_dropped": sensor.kernel_totals.dropped,
            "events_out": sensor.counters()["events_out"],
        }


def worker_scapy(iface: str, drain: float) -> dict[str, Any]:
    # As a scapy user writes it: every layer loaded, so sniff dissects Ether/IP/UDP.
    from scapy.all import AsyncSniffer, conf  # noqa: PLC0415

    sock = conf.L2listen(iface=iface, filter=FILTER)
    count = [0]

    def prn(packet: object) -> None:
        count[0] += 1

    sniffer = AsyncSniffer(opened_socket=sock, store=False, prn=prn)
    sniffer.start()
    print("ready", flush=True)
    sys.stdin.readline()
    done_at = time.monotonic()
    read_at_done = count[0]
    wait_drained(lambda: count[0], done_at, drain)
    received, dropped = struct.unpack("II", sock.ins.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    buffer = sock.ins.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    sniffer.stop(join=True)  # closes the socket
    return {
        "read": count[0],
        "read_while_sending": read_at_done,
        "kernel_received": received,
        "kernel_dropped": dropped,
        "buffer": buffer,
    }


WORKERS = {"canhgac": worker_canhgac, "scapy": worker_scapy}


# ------------------------------------------------------------------------------------- driver
Pair = tuple[str, str, str, str, str]


def one_step(pair: Pair, name: str, rate: int, seconds: float, drain: float) -> dict[str, Any]:
    ns_a, ns_b, veth_a, veth_b, mac_b = pair
    command = ["ip", "netns", "exec", ns_b, sys.executable, __file__, "--worker", name, "--iface", veth_b]
    worker = subprocess.Popen(
        [*command, "--drain", str(drain)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert worker.stdin is not None and worker.stdout is not None
    try:
        line = worker.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"{name} worker did not start: {line!r}")
        count = int(rate * seconds)
        sender = ["ip", "netns", "exec", ns_a, sys.executable, SENDER, veth_a, mac_b, str(count), str(rate), "10.213.9"]
        sent, elapsed = subprocess.run(sender, check=True, capture_output=True, text=True).stdout.split()
        worker.stdin.write("done\n")
        worker.stdin.flush()
        result: dict[str, Any] = json.loads(worker.stdout.readline())
        worker.wait(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    result.update(name=name, rate=rate, offered=int(sent), sent_rate=int(sent) / float(elapsed))
    result["read_rate_while_sending"] = result["read_while_sending"] / float(elapsed)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="1000,2000,5000,10000,20000,40000,80000")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--drain", type=float, default=10.0)
    parser.add_argument("--worker", choices=sorted(WORKERS))
    parser.add_argument("--iface")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args.iface, args.drain)), flush=True)
        return
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces, packet sockets)")
    tag = uuid.uuid4().hex[:6]
    pair: Pair = ("", "", "", "", "")
    results = []
    try:
        pair = make_pair(tag)
        for rate in (int(r) for r in args.rates.split(",")):
            for name in WORKERS:
                result = one_step(pair, name, rate, args.seconds, args.drain)
                print(json.dumps(result), file=sys.stderr, flush=True)
                results.append(result)
    finally:
        for ns in pair[:2]:
            if ns:
                subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{args.seconds:g} s per step, UDP frames of 60 bytes, 1,000 flows, filter `{FILTER}`\n")
    print("| offered pkt/s | sent pkt/s | capture | offered | read | kernel dropped | 0 drops | read/s while sending |")
    print("|---:|---:|---|---:|---:|---:|:---:|---:|")
    for r in results:
        clean = "yes" if r["kernel_dropped"] == 0 and r["read"] == r["offered"] else "no"
        print(
            f"| {r['rate']:,} | {r['sent_rate']:,.0f} | {r['name']} | {r['offered']:,} | {r['read']:,} "
            f"| {r['kernel_dropped']:,} | {clean} | {r['read_rate_while_sending']:,.0f} |"
        )


if __name__ == "__main__":
    main()
