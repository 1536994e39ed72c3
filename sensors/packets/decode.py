"""Fast header decoding with ``struct``: link layer → IPv4/IPv6 → TCP/UDP/SCTP/ICMP.

This is the hot path of the network sensor, so it dissects no payload and builds one small
object per packet. Payloads are left in place (``payload_offset``/``payload_end`` into the
frame) for the DNS/HTTP/TLS decoders, which only run on the few packets that need them.

Outcomes: a :class:`Packet` (``kind`` ``ip`` or ``arp``), :class:`Unsupported` raised for a
well-formed frame of a protocol we do not analyse (odd EtherTypes, IPX, LLDP …), and
:class:`DecodeError` for anything malformed (truncated headers, bogus IHL, lengths that do
not add up). Both exceptions are cheap and counted by the caller; neither stops the sensor.
"""

from __future__ import annotations

import struct

from sensors.errors import SensorError

# pcap link-layer types (https://www.tcpdump.org/linktypes.html)
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276
LINKTYPE_FDDI = 10
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
RAW_IP_LINKTYPES = frozenset({LINKTYPE_RAW, 12, 14, LINKTYPE_IPV4, LINKTYPE_IPV6})
LINKTYPES = RAW_IP_LINKTYPES | {LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_LOOP, LINKTYPE_LINUX_SLL,
                                LINKTYPE_LINUX_SLL2, LINKTYPE_FDDI}  # fmt: skip

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_ARP = 0x0806
VLAN_TYPES = frozenset({0x8100, 0x88A8, 0x9100, 0x9200})
MAX_VLAN_TAGS = 4

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58
PROTO_SCTP = 132
IPV6_EXTENSIONS = frozenset({0, 43, 44, 51, 60, 135, 139, 140})
MAX_IPV6_EXTENSIONS = 8

TRANSPORT_NAMES = {
    PROTO_ICMP: "icmp",
    PROTO_TCP: "tcp",
    PROTO_UDP: "udp",
    PROTO_ICMPV6: "ipv6-icmp",
    PROTO_SCTP: "sctp",
}

_U16 = struct.Struct("!H")
_PORTS = struct.Struct("!HH")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_ARP = struct.Struct("!HHBBH")


class DecodeError(SensorError):
    """A malformed frame: counted as a decode error, never fatal."""


class Unsupported(Exception):
    """A frame of a protocol the sensor does not analyse: counted, not an error."""


class Packet:
    """The decoded headers of one frame; addresses stay raw bytes until an event needs text."""

    __slots__ = (
        "arp_op",
        "dport",
        "dst",
        "eth_dst",
        "eth_src",
        "fragment",
        "icmp_code",
        "icmp_type",
        "kind",
        "payload_end",
        "payload_offset",
        "proto",
        "seq",
        "sport",
        "src",
        "tcp_flags",
        "vlan",
    )

    def __init__(self) -> None:
        self.kind = "ip"
        self.src = b""
        self.dst = b""
        self.proto = 0
        self.sport = 0
        self.dport = 0
        self.tcp_flags = 0
        self.seq = 0  # TCP sequence number
        self.payload_offset = 0
        self.payload_end = 0
        self.icmp_type = -1
        self.icmp_code = -1
        self.fragment = 0  # 1: first fragment, 2: a later one (no transport header)
        self.vlan: int | None = None
        self.eth_src = b""
        self.eth_dst = b""
        self.arp_op = 0


def decode_frame(frame: bytes, linktype: int = LINKTYPE_ETHERNET) -> Packet:
    """Decode the headers of one captured frame; see the module docstring for outcomes."""
    packet = Packet()
    size = len(frame)
    if linktype == LINKTYPE_ETHERNET:
        if size < 14:
            raise DecodeError(f"ethernet header truncated ({size} bytes)")
        ethertype = (frame[12] << 8) | frame[13]
        offset = 14
        tags = 0
        while ethertype in VLAN_TYPES:
            if size < offset + 4:
                raise DecodeError("VLAN tag truncated")
            tags += 1
            if tags > MAX_VLAN_TAGS:
                raise DecodeError("too many VLAN tags")
            if packet.vlan is None:
                packet.vlan = ((frame[offset] << 8) | frame[offset + 1]) & 0x0FFF
            ethertype = (frame[offset + 2] << 8) | frame[offset + 3]
            offset += 4
        if ethertype == ETH_ARP:
            packet.eth_dst = frame[0:6]
            packet.eth_src = frame[6:12]
            return _arp(frame, offset, packet)
    elif linktype == LINKTYPE_LINUX_SLL:
        if size < 16:
            raise DecodeError(f"linux cooked header truncated ({size} bytes)")
        ethertype = (frame[14] << 8) | frame[15]
        offset = 16
        if ethertype == ETH_ARP:
            return _arp(frame, offset, packet)
    elif linktype == LINKTYPE_LINUX_SLL2:
        if size < 20:
            raise DecodeError(f"linux cooked v2 header truncated ({size} bytes)")
        ethertype = (frame[0] << 8) | frame[1]
        offset = 20
        if ethertype == ETH_ARP:
            return _arp(frame, offset, packet)
    elif linktype == LINKTYPE_FDDI:
        if size < 21 or frame[13:16] != b"\xaa\xaa\x03":
            raise Unsupported("FDDI frame without SNAP header")
        ethertype = (frame[19] << 8) | frame[20]
        offset = 21
    elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if size < 4:
            raise DecodeError("loopback header truncated")
        family = frame[0] if frame[0] else frame[3]
        ethertype = ETH_IPV4 if family == 2 else ETH_IPV6 if family in (10, 24, 28, 30) else 0
        offset = 4
    elif linktype in RAW_IP_LINKTYPES:
        if size < 1:
            raise DecodeError("empty frame")
        ethertype = ETH_IPV4 if frame[0] >> 4 == 4 else ETH_IPV6 if frame[0] >> 4 == 6 else 0
        offset = 0
    else:
        raise Unsupported(f"link type {linktype}")
    if ethertype == ETH_IPV4:
        return _ipv4(frame, offset, packet)
    if ethertype == ETH_IPV6:
        return _ipv6(frame, offset, packet)
    raise Unsupported(f"ethertype 0x{ethertype:04x}")


def _ipv4(frame: bytes, offset: int, packet: Packet) -> Packet:
    if len(frame) < offset + 20:
        raise DecodeError("IPv4 header truncated")
    version_ihl, _tos, total, _ident, frag, _ttl, proto, _csum, src, dst = _IPV4.unpack_from(frame, offset)
    if version_ihl >> 4 != 4:
        raise DecodeError(f"IP version {version_ihl >> 4} in an IPv4 frame")
    ihl = (version_ihl & 0x0F) * 4
    if ihl < 20:
        raise DecodeError(f"bogus IPv4 header length {ihl}")
    if total == 0:
        total = len(frame) - offset  # segmentation offload: the NIC fills the length in later
    end = offset + total
    if total < ihl:
        raise DecodeError(f"IPv4 total length {total} < header length {ihl}")
    end = min(end, len(frame))  # snaplen cut the packet: decode what was captured
    start = offset + ihl
    if start > end:
        raise DecodeError("IPv4 options truncated")
    packet.src = src
    packet.dst = dst
    packet.proto = proto
    if frag & 0x1FFF:
        packet.fragment = 2
        packet.payload_offset = packet.payload_end = end
        return packet
    packet.fragment = 1 if frag & 0x2000 else 0
    return _transport(frame, start, end, packet)


def _ipv6(frame: bytes, offset: int, packet: Packet) -> Packet:
    if len(frame) < offset + 40:
        raise DecodeError("IPv6 header truncated")
    first, length, proto, _hop, src, dst = _IPV6.unpack_from(frame, offset)
    if first >> 28 != 6:
        raise DecodeError(f"IP version {first >> 28} in an IPv6 frame")
    start = offset + 40
    end = min(start + length, len(frame)) if length else len(frame)  # 0: jumbogram
    packet.src = src
    packet.dst = dst
    for _ in range(MAX_IPV6_EXTENSIONS):
        if proto not in IPV6_EXTENSIONS:
            break
        if start + 8 > end:
            raise DecodeError("IPv6 extension header truncated")
        next_proto = frame[start]
        if proto == 44:  # fragment
            if (_U16.unpack_from(frame, start + 2)[0] >> 3) != 0:
                packet.proto = next_proto
                packet.fragment = 2
                packet.payload_offset = packet.payload_end = end
                return packet
            packet.fragment = 1
            size = 8
        elif proto == 51:  # authentication header counts 4-byte words
            size = (frame[start + 1] + 2) * 4
        else:
            size = (frame[start + 1] + 1) * 8
        proto = next_proto
        start += size
    else:
        raise DecodeError("too many IPv6 extension headers")
    if start > end:
        raise DecodeError("IPv6 extension header runs past the packet")
    packet.proto = proto
    return _transport(frame, start, end, packet)


def _transport(frame: bytes, start: int, end: int, packet: Packet) -> Packet:
    proto = packet.proto
    if proto == PROTO_TCP:
        if start + 20 > end:
            raise DecodeError("TCP header truncated")
        packet.sport, packet.dport = _PORTS.unpack_from(frame, start)
        header = (frame[start + 12] >> 4) * 4
        if header < 20 or start + header > end:
            raise DecodeError(f"bogus TCP header length {header}")
        packet.tcp_flags = frame[start + 13]
        packet.seq = int.from_bytes(frame[start + 4 : start + 8], "big")
        packet.payload_offset = start + header
    elif proto == PROTO_UDP:
        if start + 8 > end:
            raise DecodeError("UDP header truncated")
        packet.sport, packet.dport = _PORTS.unpack_from(frame, start)
        packet.payload_offset = start + 8
    elif proto in (PROTO_ICMP, PROTO_ICMPV6):
        if start + 4 > end:
            raise DecodeError("ICMP header truncated")
        packet.icmp_type = frame[start]
        packet.icmp_code = frame[start + 1]
        packet.payload_offset = start + 8 if start + 8 <= end else end
    elif proto == PROTO_SCTP:
        if start + 12 > end:
            raise DecodeError("SCTP header truncated")
        packet.sport, packet.dport = _PORTS.unpack_from(frame, start)
        packet.payload_offset = start + 12
    else:
        packet.payload_offset = start
    packet.payload_end = end
    return packet


def _arp(frame: bytes, offset: int, packet: Packet) -> Packet:
    if len(frame) < offset + 8:
        raise DecodeError("ARP header truncated")
    hardware, protocol, hlen, plen, op = _ARP.unpack_from(frame, offset)
    if protocol != ETH_IPV4 or hlen != 6 or plen != 4:
        raise Unsupported(f"ARP for hardware {hardware} protocol 0x{protocol:04x}")
    body = offset + 8
    if len(frame) < body + 20:
        raise DecodeError("ARP body truncated")
    packet.kind = "arp"
    packet.arp_op = op
    packet.eth_src = frame[body : body + 6]
    packet.src = frame[body + 6 : body + 10]
    packet.eth_dst = frame[body + 10 : body + 16]
    packet.dst = frame[body + 16 : body + 20]
    return packet


__all__ = [
    "LINKTYPES",
    "LINKTYPE_ETHERNET",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_RAW",
    "PROTO_ICMP",
    "PROTO_ICMPV6",
    "PROTO_SCTP",
    "PROTO_TCP",
    "PROTO_UDP",
    "TRANSPORT_NAMES",
    "DecodeError",
    "Packet",
    "Unsupported",
    "decode_frame",
]
