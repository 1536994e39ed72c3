"""TLS ClientHello / ServerHello → SNI, versions, JA3, JA3S and a JA4-style fingerprint.

Only handshake heads are read: a ClientHello larger than one segment (post-quantum key shares
make them ~1.8 kB) is collected by the caller up to ``MAX_HELLO`` bytes and parsed whole.

JA3 = md5("version,ciphers,extensions,groups,point formats"), decimal values joined by ``-``,
GREASE values left out. The JA4-style fingerprint follows FoxIO's JA4 layout
(``t13d1516h2_<sorted ciphers>_<sorted extensions>_<signature algorithms>``, each hash a
truncated sha256); it is computed by our own code, so we call it "JA4-style" until checked
against the reference implementation.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

from sensors.packets.decode import DecodeError

MAX_HELLO = 16 * 1024 + 5
CONTENT_HANDSHAKE = 0x16
VERSIONS = {0x0300: "3.0", 0x0301: "1.0", 0x0302: "1.1", 0x0303: "1.2", 0x0304: "1.3"}
PROTOCOL = {0x0300: "ssl"}
JA4_VERSIONS = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3", 0x0002: "s2",
                0xFEFF: "d1", 0xFEFD: "d2", 0xFEFC: "d3"}  # fmt: skip
EXT_SNI, EXT_GROUPS, EXT_POINTS, EXT_SIGALGS, EXT_ALPN, EXT_VERSIONS = 0, 10, 11, 13, 16, 43


def is_grease(value: int) -> bool:
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


def record_length(data: bytes) -> int | None:
    """Bytes needed for the first TLS handshake record, or ``None`` if ``data`` is not one."""
    if len(data) < 5 or data[0] != CONTENT_HANDSHAKE or data[1] != 3 or data[2] > 4:
        return None
    return 5 + ((data[3] << 8) | data[4])


def _u16s(data: bytes) -> list[int]:
    return [v for (v,) in struct.iter_unpack("!H", data[: len(data) - len(data) % 2])]


def _hello(data: bytes, expected: int) -> tuple[int, bytes]:
    """(version field, body after it) of the handshake message in a handshake record."""
    if record_length(data) is None or len(data) < 9:
        raise DecodeError("not a TLS handshake record")
    body = data[5 : record_length(data)]
    if body[0] != expected:
        raise DecodeError(f"TLS handshake type {body[0]}, expected {expected}")
    length = int.from_bytes(body[1:4], "big")
    message = body[4 : 4 + length]
    if len(message) < 34:
        raise DecodeError("TLS hello truncated")
    return (message[0] << 8) | message[1], message[34:]


def _extensions(data: bytes, offset: int) -> list[tuple[int, bytes]]:
    if offset + 2 > len(data):
        return []
    end = min(offset + 2 + ((data[offset] << 8) | data[offset + 1]), len(data))
    offset += 2
    extensions = []
    while offset + 4 <= end:
        kind, length = struct.unpack_from("!HH", data, offset)
        extensions.append((kind, data[offset + 4 : offset + 4 + length]))
        offset += 4 + length
    return extensions


def _alpn(data: bytes) -> list[bytes]:
    names, pos = [], 2
    while pos < len(data):
        size = data[pos]
        names.append(data[pos + 1 : pos + 1 + size])
        pos += 1 + size
    return names


def _ja4_alpn(first: bytes | None) -> str:
    if not first:
        return "00"
    head, tail = chr(first[0]), chr(first[-1])
    if head.isascii() and head.isalnum() and tail.isascii() and tail.isalnum():
        return head + tail
    text = first.hex()
    return text[0] + text[-1]


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12] if text else "000000000000"


def parse_client_hello(data: bytes, *, transport: str = "t") -> dict[str, Any]:
    """ECS ``tls.*`` fields of a ClientHello record (``data`` starts at the record header)."""
    version, rest = _hello(data, 1)
    if not rest:
        raise DecodeError("ClientHello truncated")
    offset = 1 + rest[0]  # session id
    if offset + 2 > len(rest):
        raise DecodeError("ClientHello cipher suites truncated")
    cipher_len = (rest[offset] << 8) | rest[offset + 1]
    ciphers = [c for c in _u16s(rest[offset + 2 : offset + 2 + cipher_len]) if not is_grease(c)]
    offset += 2 + cipher_len
    if offset >= len(rest):
        raise DecodeError("ClientHello compression methods truncated")
    offset += 1 + rest[offset]
    extensions = _extensions(rest, offset)
    kinds = [kind for kind, _ in extensions if not is_grease(kind)]
    body = dict(extensions)
    groups = [g for g in _u16s(body.get(EXT_GROUPS, b"")[2:]) if not is_grease(g)]
    points = list(body.get(EXT_POINTS, b"")[1:])
    supported = [v for v in _u16s(body.get(EXT_VERSIONS, b"")[1:]) if not is_grease(v)]
    sigalgs = _u16s(body.get(EXT_SIGALGS, b"")[2:])
    alpn = _alpn(body[EXT_ALPN]) if EXT_ALPN in body else []
    fields: dict[str, Any] = {}
    sni = body.get(EXT_SNI)
    if sni is not None and len(sni) > 5 and sni[2] == 0:
        size = (sni[3] << 8) | sni[4]
        fields["tls.client.server_name"] = sni[5 : 5 + size].decode("utf-8", errors="backslashreplace")
    ja3 = ",".join(
        [str(version), "-".join(map(str, ciphers)), "-".join(map(str, kinds)), "-".join(map(str, groups)),
         "-".join(map(str, points))]
    )  # fmt: skip
    fields["tls.client.ja3"] = hashlib.md5(ja3.encode()).hexdigest()  # noqa: S324 - JA3 is md5 by definition
    best = max(supported) if supported else version
    fields["tls.client.supported_versions"] = [VERSIONS.get(v, hex(v)) for v in supported or [version]]
    fields["tls.client.supported_ciphers"] = [f"0x{c:04x}" for c in ciphers]
    if alpn:
        fields["tls.client.alpn"] = [name.decode("utf-8", errors="backslashreplace") for name in alpn]
    ext_hex = sorted(f"{k:04x}" for k in kinds if k not in (EXT_SNI, EXT_ALPN))
    part_c = ",".join(ext_hex)
    if sigalgs and part_c:
        part_c += "_" + ",".join(f"{s:04x}" for s in sigalgs)
    fields["tls.client.ja4"] = (
        f"{transport}{JA4_VERSIONS.get(best, '00')}{'d' if 'tls.client.server_name' in fields else 'i'}"
        f"{min(len(ciphers), 99):02d}{min(len(kinds), 99):02d}{_ja4_alpn(alpn[0] if alpn else None)}"
        f"_{_short_hash(','.join(sorted(f'{c:04x}' for c in ciphers)))}_{_short_hash(part_c)}"
    )
    fields["tls.version"] = VERSIONS.get(best, hex(best))
    fields["tls.version_protocol"] = PROTOCOL.get(best, "tls")
    return fields


def parse_server_hello(data: bytes) -> dict[str, Any]:
    """Negotiated version, cipher and JA3S of a ServerHello record."""
    version, rest = _hello(data, 2)
    if len(rest) < 1 or len(rest) < 1 + rest[0] + 3:
        raise DecodeError("ServerHello truncated")
    offset = 1 + rest[0]
    cipher = (rest[offset] << 8) | rest[offset + 1]
    extensions = _extensions(rest, offset + 3)
    kinds = [kind for kind, _ in extensions]
    chosen = version
    for kind, value in extensions:
        if kind == EXT_VERSIONS and len(value) >= 2:
            chosen = (value[0] << 8) | value[1]
    ja3s = f"{version},{cipher},{'-'.join(map(str, kinds))}"
    return {
        "tls.version": VERSIONS.get(chosen, hex(chosen)),
        "tls.version_protocol": PROTOCOL.get(chosen, "tls"),
        "tls.cipher": f"0x{cipher:04x}",
        "tls.server.ja3s": hashlib.md5(ja3s.encode()).hexdigest(),  # noqa: S324 - JA3S is md5 by definition
    }


__all__ = ["MAX_HELLO", "is_grease", "parse_client_hello", "parse_server_hello", "record_length"]
