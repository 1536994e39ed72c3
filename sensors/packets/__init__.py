"""Packet decoding for the network sensor: headers, flows, DNS, HTTP, TLS, ARP, Community ID.

Pure code (bytes in, fields out); the capture sources live in :mod:`sensors.sources.network`.
"""

from __future__ import annotations

from sensors.packets.analyzer import AnalyzerOptions, PacketAnalyzer, Record
from sensors.packets.community_id import community_id
from sensors.packets.decode import DecodeError, Packet, Unsupported, decode_frame

__all__ = [
    "AnalyzerOptions",
    "DecodeError",
    "Packet",
    "PacketAnalyzer",
    "Record",
    "Unsupported",
    "community_id",
    "decode_frame",
]
