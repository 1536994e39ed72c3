"""Lines from a stream that cannot be re-read (stdin, a pipe), with bounded line length.

Files are tailed by :class:`sensors.sources.logfile.FileTailer` (``soc sensor logs --parser
jsonl``); this module reads a one-shot stream. Each line (its newline removed; a last line
without one included) comes with its byte offset; a line longer than ``max_line_bytes`` is cut
there and flagged, and the rest of it skipped without being buffered.

Delivery guarantee: none before the spool — a stream cannot be read twice. Event ids come from
(sensor id, source id, offset, bytes): give the same ``source_id`` to a re-run over the same
input and the store writes nothing new.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

DEFAULT_MAX_LINE_BYTES = 1024 * 1024
_READ_BYTES = 256 * 1024


@dataclass(frozen=True)
class StreamLine:
    raw: bytes
    offset: int
    truncated: bool = False


def read_lines(stream: BinaryIO, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[StreamLine]:
    buffer = bytearray()
    start = 0  # offset of the line in buffer
    position = 0  # bytes read so far
    truncated = False
    while True:
        data = stream.read1(_READ_BYTES) if hasattr(stream, "read1") else stream.read(_READ_BYTES)
        if not data:
            break
        cursor = 0
        while cursor < len(data):
            newline = data.find(b"\n", cursor)
            end = len(data) if newline < 0 else newline
            room = max_line_bytes - len(buffer)
            piece = data[cursor:end]
            if len(piece) > room:
                truncated = True
                piece = piece[:room]
            buffer += piece
            if newline < 0:
                cursor = len(data)
                continue
            yield StreamLine(bytes(buffer), start, truncated)
            cursor = newline + 1
            start = position + cursor
            buffer.clear()
            truncated = False
        position += len(data)
    if buffer or truncated:
        yield StreamLine(bytes(buffer), start, truncated)


__all__ = ["DEFAULT_MAX_LINE_BYTES", "StreamLine", "read_lines"]
