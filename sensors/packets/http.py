"""HTTP/1.x request and response heads from the first bytes of a TCP segment.

No stream reassembly: a request line and its headers are read from the segment that starts
them (they nearly always fit in one), whatever the port. A head cut short still gives what
was read; a segment that is not an HTTP head gives ``None``.
"""

from __future__ import annotations

import re
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


_TOKEN = re.compile(rb"[A-Z][A-Z0-9_-]{1,15}\Z")  # an extension method (CCM_POST, BPROPFIND …)
_VERSION_END = re.compile(rb" HTTP/[0-9.]*\Z")
_FIRST_WORD = re.compile(rb"[^ \r\n]{1,16}(?=[ \r\n])")


def _method(first: bytes, line: bytes) -> bool:
    """Whether ``first``, the first word of ``line``, is a request method: a known one, or an
    upper-case token on a line that ends with an HTTP/1.x version (so other text protocols are not)."""
    if first in METHODS:
        return True
    return bool(_TOKEN.match(first)) and _VERSION_END.search(line.rstrip(b"\r")) is not None


def looks_like_head(data: bytes) -> bool:
    """Whether ``data`` starts like a request line or a status line."""
    word = _FIRST_WORD.match(data)
    if word is None:
        return False
    first = word.group()
    if first in METHODS or data.startswith(b"HTTP/1."):
        return True
    return bool(_TOKEN.match(first)) and _method(first, data[: data.find(b"\n", 0, MAX_HEAD)])


def message_framing(head: bytes, fields: dict[str, Any], request_method: str | None) -> tuple[int, bool, bool]:
    """(body length, chunked, body runs to the end of the connection) of a parsed head.

    RFC 9112 section 6: a response to ``HEAD``, a 1xx, 204 or 304 has no body; a request with
    neither ``Transfer-Encoding`` nor ``Content-Length`` has none; a response with neither runs
    to the close. A 2xx to ``CONNECT`` and a 101 switch to another protocol (treated as "to the
    end": the stream stops being HTTP).
    """
    status = fields.get("http.response.status_code")
    if status is not None:
        if status == 101 or (request_method == "CONNECT" and 200 <= status < 300):
            return 0, False, True
        if request_method == "HEAD" or status < 200 or status in (204, 304):
            return 0, False, False
    headers = _headers(head.replace(b"\r\n", b"\n").split(b"\n")[1:])
    encoding = headers.get(b"transfer-encoding", b"").lower()
    if encoding:
        chunked = encoding.rsplit(b",", 1)[-1].strip() == b"chunked"
        # a request must end its codings with chunked; a response that does not runs to the close
        return 0, chunked, not chunked and status is not None
    length = headers.get(b"content-length")
    if length is not None:
        if length.isdigit():
            return int(length), False, False
        return 0, False, True  # a length that cannot be read: the body cannot be framed
    return 0, False, status is not None


def parse_http(payload: bytes) -> dict[str, Any] | None:
    """ECS fields of an HTTP request or response head, or ``None`` if it is not one."""
    word = _FIRST_WORD.match(payload)  # a method alone on its line ("OPTIONS") is a request too
    if word is None:
        return None
    first = word.group()
    head = payload[:MAX_HEAD].split(b"\r\n\r\n", 1)[0]
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    request = _method(first, lines[0])
    if not request and not first.startswith(b"HTTP/1."):
        return None
    parts = lines[0].split(b" ", 2)
    headers = _headers(lines[1:])
    fields: dict[str, Any] = {}
    if request:
        target = parts[1] if len(parts) >= 2 else b""
        fields["http.request.method"] = _text(first)
        if len(parts) == 3 and parts[2].startswith(b"HTTP/"):
            fields["http.version"] = _text(parts[2][5:].strip())
        if target:
            fields["url.original"] = _text(target)
            if (decoded := decoded_url(fields["url.original"])) is not None:
                fields["url.decoded"] = decoded  # as the web parser gives it: the web rules test it
        path = target
        if b"://" in target:  # absolute form, as sent to proxies
            rest = target.split(b"://", 1)[1]
            slash = rest.find(b"/")
            path = rest[slash:] if slash >= 0 else b"/"
        path, _, query = path.partition(b"?")
        if path:
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
        key = "http.request.body.bytes" if request else "http.response.body.bytes"
        fields[key] = int(length)
    return fields


__all__ = ["MAX_HEAD", "looks_like_head", "message_framing", "parse_http"]
