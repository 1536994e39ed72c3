"""One direction of an HTTP/1.x connection: every message head out of its byte stream.

Segments are put in order by their TCP sequence numbers: a retransmission (data before the
next expected byte) is dropped, the new part of an overlapping one is kept. After each head the
message body is skipped by its framing (``Content-Length``, ``chunked``, none for requests
without a length, for ``HEAD`` answers and for 1xx/204/304), so pipelined requests and the
responses that follow each other on a keep-alive connection all come out, in order.

When the stream cannot be followed — a gap (a lost segment), a head longer than
:data:`~sensors.packets.http.MAX_HEAD`, a body to the end of the connection, a tunnel after
``CONNECT`` or an upgrade — it waits for a segment that starts with a new head and goes on
from there (``resyncs`` counts how often), as a one-segment reader would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from sensors.packets.http import MAX_HEAD, looks_like_head, message_framing, parse_http

MAX_CHUNK_LINE = 1024  # a chunk-size line with extensions; longer is not HTTP
State = Literal["head", "body", "chunk_size", "chunk_data", "trailer", "lost"]


class HttpStream:
    """Feed one direction's TCP payloads in capture order; get its message heads as fields."""

    __slots__ = ("_buffer", "_next_seq", "_remaining", "_state", "resyncs", "retransmitted")

    def __init__(self) -> None:
        self._next_seq: int | None = None
        self._state: State = "head"
        self._buffer = bytearray()
        self._remaining = 0
        self.resyncs = 0
        self.retransmitted = 0

    def feed(self, seq: int, payload: bytes, request_method: Callable[[], Any] | None = None) -> list[dict[str, Any]]:
        """The heads completed by this segment. ``request_method()`` gives the method of the
        request the next response answers (a ``HEAD`` answer has no body)."""
        if self._next_seq is not None:
            ahead = (seq - self._next_seq) & 0xFFFF_FFFF
            if ahead >= 0x8000_0000:  # before the next expected byte: (partly) seen already
                behind = 0x1_0000_0000 - ahead
                if behind >= len(payload):
                    self.retransmitted += 1
                    return []
                payload, seq = payload[behind:], self._next_seq
            elif ahead:  # bytes are missing: whatever was in progress cannot be finished
                self._lose()
        self._next_seq = (seq + len(payload)) & 0xFFFF_FFFF
        if self._state == "lost":
            if not looks_like_head(payload):
                return []
            self._state = "head"
        return self._read(payload, request_method)

    def _lose(self) -> None:
        if self._state != "lost":
            self.resyncs += 1
        self._state = "lost"
        self._buffer.clear()

    def _read(self, data: bytes, request_method: Callable[[], Any] | None) -> list[dict[str, Any]]:
        heads: list[dict[str, Any]] = []
        pos, end = 0, len(data)
        while pos < end:
            state = self._state
            if state == "head":
                if not self._buffer and not looks_like_head(data[pos:]):
                    self._lose()
                    break
                pos = self._head(data, pos, heads, request_method)
            elif state in ("body", "chunk_data"):
                take = min(self._remaining, end - pos)
                self._remaining -= take
                pos += take
                if self._remaining == 0:
                    self._state = "chunk_size" if state == "chunk_data" else "head"
            elif state in ("chunk_size", "trailer"):
                newline = data.find(b"\n", pos)
                stop = end if newline < 0 else newline
                self._buffer += data[pos:stop]
                if len(self._buffer) > MAX_CHUNK_LINE:
                    self._lose()
                    break
                if newline < 0:
                    break
                pos = newline + 1
                line = bytes(self._buffer).strip()
                self._buffer.clear()
                if state == "trailer":
                    if not line:
                        self._state = "head"
                    continue
                try:
                    size = int(line.split(b";", 1)[0], 16)
                except ValueError:
                    self._lose()
                    break
                if size == 0:
                    self._state = "trailer"
                else:
                    self._state, self._remaining = "chunk_data", size + 2  # the data and its CRLF
            else:  # lost
                break
        return heads

    def _head(
        self, data: bytes, pos: int, heads: list[dict[str, Any]], request_method: Callable[[], Any] | None
    ) -> int:
        """Collect a head from ``pos``; when it is whole, emit it and set up its body."""
        start = max(len(self._buffer) - 3, 0)
        self._buffer += data[pos:]
        found = self._buffer.find(b"\r\n\r\n", start)
        size = 4
        if found < 0:
            found, size = self._buffer.find(b"\n\n", start), 2
        if found < 0:
            if len(self._buffer) > MAX_HEAD:
                fields = parse_http(bytes(self._buffer))
                if fields is not None:
                    heads.append(fields)  # what was read of it: its body cannot be framed
                self._lose()
            return len(data)
        head = bytes(self._buffer[: found + size])
        used = len(head) - (len(self._buffer) - (len(data) - pos))
        self._buffer.clear()
        fields = parse_http(head)
        if fields is None:
            self._lose()
            return len(data)
        method = fields.get("http.request.method") or (request_method() if request_method is not None else None)
        length, chunked, to_close = message_framing(head, fields, method)
        status = fields.get("http.response.status_code")
        if status is None or status >= 200 or status == 101:  # 100/102/103 come before the answer
            heads.append(fields)
        if to_close:
            self._lose()  # a body to the end of the connection, a tunnel or another protocol
            return len(data)
        if chunked:
            self._state = "chunk_size"
        elif length:
            self._state, self._remaining = "body", length
        else:
            self._state = "head"
        return pos + used


__all__ = ["HttpStream"]
