"""ARP IP–MAC bindings: report new bindings and flag changes (a sign of ARP spoofing).

Only bindings a host announces about itself count (the sender fields of requests and
replies). The table is bounded: the least recently confirmed binding is forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

ZERO_IP = b"\x00\x00\x00\x00"


def mac_text(mac: bytes) -> str:
    return "-".join(f"{b:02X}" for b in mac)  # the ECS form: upper case, dash separated


class ArpBindings:
    """Remembers the MAC each IP announced; see the module docstring."""

    def __init__(self, *, max_entries: int = 65_536) -> None:
        self.max_entries = max_entries
        self.bindings: OrderedDict[bytes, bytes] = OrderedDict()
        self.stats = {"arp_packets": 0, "arp_bindings_new": 0, "arp_bindings_changed": 0, "arp_forgotten": 0}

    def observe(self, ip: bytes, mac: bytes) -> dict[str, Any] | None:
        """Fields to report for a sender binding, or ``None`` when it is already known."""
        self.stats["arp_packets"] += 1
        if ip == ZERO_IP:  # ARP probes (RFC 5227) announce no address yet
            return None
        previous = self.bindings.get(ip)
        if previous == mac:
            self.bindings.move_to_end(ip)
            return None
        if previous is None and len(self.bindings) >= self.max_entries:
            self.bindings.popitem(last=False)
            self.stats["arp_forgotten"] += 1
        self.bindings[ip] = mac
        self.bindings.move_to_end(ip)
        if previous is None:
            self.stats["arp_bindings_new"] += 1
            return {"event.action": "arp-binding-new", "event.type": ["info"], "network.arp.binding_changed": False}
        self.stats["arp_bindings_changed"] += 1
        return {
            "event.action": "arp-binding-changed",
            "event.type": ["change"],
            "network.arp.binding_changed": True,
            "network.arp.previous_mac": mac_text(previous),
        }


__all__ = ["ArpBindings", "mac_text"]
