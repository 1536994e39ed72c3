"""Two network namespaces joined by a veth pair, for live-capture tests (needs root and ``ip``).

The ``pair`` fixture (tests/sensors/network/conftest.py) builds one per test; the helpers here
capture in one end and send paced packets from the other.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sensors.sources.network import LiveCapture

CLONE_NEWNET = 0x40000000
SENDER = str(Path(__file__).resolve().parents[1] / "sensors" / "network" / "paced_sender.py")


@dataclass
class Pair:
    ns_a: str
    ns_b: str
    veth_a: str
    veth_b: str
    mac_b: str


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


@contextmanager
def veth_pair() -> Iterator[Pair]:
    tag = uuid.uuid4().hex[:6]
    made = Pair(f"cgA{tag}", f"cgB{tag}", f"vA{tag}", f"vB{tag}", "")
    try:
        for ns in (made.ns_a, made.ns_b):
            ip("netns", "add", ns)
            # No IPv6: router solicitations and DAD would add packets nobody offered.
            ip("netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
            ip("netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
            ip("-n", ns, "link", "set", "lo", "up")
        ip("link", "add", made.veth_a, "type", "veth", "peer", "name", made.veth_b)
        ip("link", "set", made.veth_a, "netns", made.ns_a)
        ip("link", "set", made.veth_b, "netns", made.ns_b)
        ip("-n", made.ns_a, "addr", "add", "10.213.7.1/24", "dev", made.veth_a)
        ip("-n", made.ns_b, "addr", "add", "10.213.7.2/24", "dev", made.veth_b)
        ip("-n", made.ns_a, "link", "set", made.veth_a, "up")
        ip("-n", made.ns_b, "link", "set", made.veth_b, "up")
        made.mac_b = ip("-n", made.ns_b, "-br", "link", "show", made.veth_b).split()[2]
        yield made
    finally:
        for ns in (made.ns_a, made.ns_b):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


@contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Run the block with this thread in namespace ``name`` (sockets opened there stay there)."""
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns failed")
        yield
    finally:
        libc.setns(home, CLONE_NEWNET)
        os.close(home)
        os.close(target)


def open_capture(pair: Pair, **options: object) -> LiveCapture:
    with in_netns(pair.ns_b):
        return LiveCapture(pair.veth_b, **options)  # type: ignore[arg-type]


def send(pair: Pair, count: int, rate: float) -> None:
    command = ["ip", "netns", "exec", pair.ns_a, sys.executable, SENDER, pair.veth_a, pair.mac_b]
    subprocess.run([*command, str(count), str(rate)], check=True, capture_output=True, timeout=120)
