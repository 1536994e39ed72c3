"""Community ID v1 flow hashing (https://github.com/corelight/community-id-spec).

``1:`` + base64(sha1(seed ‖ lower endpoint ‖ higher endpoint ‖ proto ‖ 0 ‖ ports)), with the
endpoints ordered so both directions of a flow get the same id. ICMP types that come in
request/reply pairs use the counterpart type as the "port", so a ping and its echo share an id.
"""

from __future__ import annotations

import base64
import hashlib
import struct

from sensors.packets.decode import PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP

ICMP4_PAIRS = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17}
ICMP6_PAIRS = {128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135, 130: 131, 131: 130,
               139: 140, 140: 139, 144: 145, 145: 144}  # fmt: skip
PORT_PROTOCOLS = frozenset({PROTO_TCP, PROTO_UDP, PROTO_SCTP, PROTO_ICMP, PROTO_ICMPV6})


def icmp_ports(proto: int, icmp_type: int, icmp_code: int) -> tuple[int, int, bool]:
    """(pseudo source port, pseudo destination port, one-way?) for an ICMP type and code."""
    pairs = ICMP4_PAIRS if proto == PROTO_ICMP else ICMP6_PAIRS
    if icmp_type in pairs:
        return icmp_type, pairs[icmp_type], False
    return icmp_type, icmp_code, True


def community_id(
    src: bytes, dst: bytes, proto: int, sport: int = 0, dport: int = 0, *, seed: int = 0, one_way: bool = False
) -> str:
    """The Community ID of a flow; addresses are packed (4 or 16 bytes).

    For ICMP pass the values of :func:`icmp_ports` as ports and ``one_way``.
    """
    if not one_way and (src > dst or (src == dst and sport > dport)):
        src, dst, sport, dport = dst, src, dport, sport
    data = struct.pack("!H", seed) + src + dst + struct.pack("!BB", proto, 0)
    if proto in PORT_PROTOCOLS:
        data += struct.pack("!HH", sport, dport)
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode()  # noqa: S324 - the spec's hash


__all__ = ["community_id", "icmp_ports"]
