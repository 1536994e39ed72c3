"""HTTP/1.x request and response heads from the first bytes of a TCP segment.

No stream reassembly: a request line and its headers are read from the segment that starts
them (they nearly always fit in one), whatever the port. A head cut short still gives what
was read; a segment that is not an HTTP head gives ``None``.
"""

from __future__ import annotations

from typing import Any

from sensors.parsers.web import decoded_url

METHODS = frozenset(
    {b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE", b"PROPFIND",
     b"PROPPATCH", b"MKCOL", b"COPY", b"MOVE", b"LOCK", b"UNLOCK", b"SEARCH", b"QUERY"}
)  # fmt: skip
MAX_HEAD = 8192


def _text(value: bytes) -> str:
    return value.decode("utf-8", errors="backslashreplace")


def _headers(lines: list[bytes]) -> dict[bytes, bytes]:
    headers: dict[bytes, bytes] = {}
    for line in lines:
        name, sep, value = line.partition(b":")
        if sep:
            headers.setdefault(name.strip().lower(), value.strip())
    return headers


def parse_http(payload: bytes) -> dict[str, Any] | None:
    """ECS fields of an HTTP request or response head, or ``None`` if it is not one."""
    space = payload.find(b" ", 0, 16)
    if space <= 0:
        return None
    first = payload[:space]
    if first not in METHODS and not first.startswith(b"HTTP/1."):
        return None
    head = payload[:MAX_HEAD].split(b"\r\n\r\n", 1)[0]
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    parts = lines[0].split(b" ", 2)
    headers = _headers(lines[1:])
    fields: dict[str, Any] = {}
    if first in METHODS:
        if len(parts) < 2:
            return None
        target = parts[1]
        fields["http.request.method"] = _text(first)
        if len(parts) == 3 and parts[2].startswith(b"HTTP/"):
            fields["http.version"] = _text(parts[2][5:].strip())
        fields["url.original"] = _text(target)
        if (decoded := decoded_url(fields["url.original"])) is not None:
            fields["url.decoded"] = decoded  # as the web parser gives it: the web rules test it
        path = target
        if b"://" in target:  # absolute form, as sent to proxies
            rest = target.split(b"://", 1)[1]
            slash = rest.find(b"/")
            path = rest[slash:] if slash >= 0 else b"/"
        path, _, query = path.partition(b"?")
        fields["url.path"] = _text(path)
        if query:
            fields["url.query"] = _text(query)
        host = headers.get(b"host")
        if host is not None:
            fields["url.domain"] = _text(host.rsplit(b":", 1)[0] if host.count(b":") == 1 else host)
        agent = headers.get(b"user-agent")
        if agent is not None:
            fields["user_agent.original"] = _text(agent)
        referrer = headers.get(b"referer")
        if referrer is not None:
            fields["http.request.referrer"] = _text(referrer)
    else:
        fields["http.version"] = _text(first[5:])
        if len(parts) < 2 or not parts[1].isdigit():
            return None
        fields["http.response.status_code"] = int(parts[1])
        mime = headers.get(b"content-type")
        if mime is not None:
            fields["http.response.mime_type"] = _text(mime.split(b";", 1)[0].strip())
    length = headers.get(b"content-length")
    if length is not None and length.isdigit():
        key = "http.request.body.bytes" if first in METHODS else "http.response.body.bytes"
        fields[key] = int(length)
    return fields


__all__ = ["parse_http"]
