"""DNS messages (RFC 1035) → ECS ``dns.*`` fields, with our own bounded parser.

Names are read with compression pointers followed at most ``MAX_POINTERS`` times and only
backwards, so a crafted message cannot loop. Labels are shown as text with non-printable bytes
escaped as ``\\DDD`` (the master-file convention). Anything malformed raises
:class:`~sensors.packets.decode.DecodeError`; a message whose answers are cut short keeps the
question and the answers read so far and is flagged ``truncated``.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from sensors.packets.decode import DecodeError

MAX_POINTERS = 32
MAX_ANSWERS = 64
_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")

QTYPES = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT", 28: "AAAA",
    29: "LOC", 33: "SRV", 35: "NAPTR", 39: "DNAME", 41: "OPT", 43: "DS", 44: "SSHFP", 46: "RRSIG",
    47: "NSEC", 48: "DNSKEY", 50: "NSEC3", 52: "TLSA", 64: "SVCB", 65: "HTTPS", 99: "SPF",
    249: "TKEY", 250: "TSIG", 251: "IXFR", 252: "AXFR", 255: "ANY", 257: "CAA",
}  # fmt: skip
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
          6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE"}  # fmt: skip
CLASSES = {1: "IN", 3: "CH", 4: "HS", 254: "NONE", 255: "ANY"}
_NAME_TYPES = frozenset({2, 5, 12, 39})
_FLAGS = ((0x0400, "AA"), (0x0200, "TC"), (0x0100, "RD"), (0x0080, "RA"), (0x0020, "AD"), (0x0010, "CD"))
_PRINTABLE = frozenset(range(0x21, 0x7F)) - {ord("."), ord("\\")}


def type_name(value: int) -> str:
    return QTYPES.get(value, f"TYPE{value}")


def read_name(data: bytes, offset: int) -> tuple[str, int]:
    """The name at ``offset`` and the offset just after it in the message."""
    labels: list[str] = []
    end = -1
    jumps = 0
    size = len(data)
    while True:
        if offset >= size:
            raise DecodeError("DNS name runs past the message")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= size:
                raise DecodeError("DNS compression pointer truncated")
            target = ((length & 0x3F) << 8) | data[offset + 1]
            if end < 0:
                end = offset + 2
            jumps += 1
            if jumps > MAX_POINTERS or target >= offset:
                raise DecodeError("DNS compression pointer loops or points forward")
            offset = target
            continue
        if length & 0xC0:
            raise DecodeError(f"DNS label type 0x{length & 0xC0:02x} is not supported")
        offset += 1
        if length == 0:
            break
        if offset + length > size:
            raise DecodeError("DNS label runs past the message")
        raw = data[offset : offset + length]
        if all(byte in _PRINTABLE for byte in raw):
            labels.append(raw.decode("ascii"))
        else:
            labels.append("".join(chr(b) if b in _PRINTABLE else f"\\{b:03d}" for b in raw))
        offset += length
    return ".".join(labels), end if end >= 0 else offset


def _rdata(data: bytes, rtype: int, start: int, length: int) -> str:
    body = data[start : start + length]
    if rtype == 1 and length == 4:
        return socket.inet_ntop(socket.AF_INET, body)
    if rtype == 28 and length == 16:
        return socket.inet_ntop(socket.AF_INET6, body)
    if rtype in _NAME_TYPES:
        return read_name(data, start)[0]
    if rtype == 15 and length > 2:
        return read_name(data, start + 2)[0]
    if rtype == 16:
        parts, pos = [], 0
        while pos < len(body):
            count = body[pos]
            parts.append(body[pos + 1 : pos + 1 + count].decode("utf-8", errors="backslashreplace"))
            pos += 1 + count
        return " ".join(parts)
    return body.hex()


def parse_dns(data: bytes) -> dict[str, Any]:
    """ECS fields of one DNS message (UDP payload, or TCP payload without the length)."""
    if len(data) < 12:
        raise DecodeError(f"DNS message too short ({len(data)} bytes)")
    ident, flags, qdcount, ancount, _nscount, _arcount = _HEADER.unpack_from(data)
    response = bool(flags & 0x8000)
    fields: dict[str, Any] = {
        "dns.id": str(ident),
        "dns.type": "answer" if response else "query",
        "dns.op_code": str((flags >> 11) & 0x0F),
        "dns.header_flags": [name for bit, name in _FLAGS if flags & bit] + (["QR"] if response else []),
    }
    if response:
        fields["dns.response_code"] = RCODES.get(flags & 0x0F, str(flags & 0x0F))
    offset = 12
    questions: list[dict[str, str]] = []
    for _ in range(min(qdcount, MAX_ANSWERS)):
        name, offset = read_name(data, offset)
        if offset + 4 > len(data):
            raise DecodeError("DNS question truncated")
        qtype, qclass = struct.unpack_from("!HH", data, offset)
        offset += 4
        questions.append({"name": name, "type": type_name(qtype), "class": CLASSES.get(qclass & 0x7FFF, str(qclass))})
    for _ in range(qdcount - len(questions)):  # beyond the bound: skipped, to reach the answers
        offset = read_name(data, offset)[1] + 4
    if questions:
        # ECS has one question; mDNS and some resolvers ask several: all are in dns.questions.
        first = questions[0]
        fields["dns.question.name"] = first["name"]
        fields["dns.question.type"] = first["type"]
        fields["dns.question.class"] = first["class"]
        if len(questions) > 1:
            fields["dns.questions"] = questions
    if response and ancount:
        answers: list[dict[str, Any]] = []
        resolved: list[str] = []
        try:
            for _ in range(min(ancount, MAX_ANSWERS)):
                name, offset = read_name(data, offset)
                if offset + 10 > len(data):
                    raise DecodeError("DNS answer truncated")
                rtype, rclass, ttl, length = _RR.unpack_from(data, offset)
                offset += 10
                if offset + length > len(data):
                    raise DecodeError("DNS answer data runs past the message")
                value = _rdata(data, rtype, offset, length)
                offset += length
                answers.append({"name": name, "type": type_name(rtype), "class": CLASSES.get(rclass, str(rclass)),
                                "ttl": ttl, "data": value})  # fmt: skip
                if rtype in (1, 28):
                    resolved.append(value)
        except DecodeError:
            fields["dns.truncated"] = True
        if answers:
            fields["dns.answers"] = answers
        if resolved:
            fields["dns.resolved_ip"] = resolved
    return fields


__all__ = ["parse_dns", "read_name", "type_name"]
