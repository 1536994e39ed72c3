"""A bounded on-disk FIFO of records in segment files, with a durable read cursor.

Layout of the spool directory::

    segment-000000000001.log   records, appended; a new segment on every start and when full
    cursor.json                {"segment": n, "offset": o}: everything before it is delivered

Each record is framed as ``MAGIC (4) | length (4, big-endian) | crc32(length + payload) (4) |
payload``. Reading never trusts the disk: a bad magic, an impossible length, a checksum
mismatch or a torn last record is counted in ``records_corrupt`` and skipped by searching for
the next magic; a missing segment is counted in ``segments_missing``. Nothing in a damaged
spool stops the forwarder from starting.

Guarantee: a record is either wholly written (``append`` returned) or not acknowledged at all
(``append`` raised :class:`SpoolError` after cutting the partial frame off again); the same
holds per record for ``append_many``, which writes a run of records at once. Writes go to
the OS before the call returns, so a killed process loses nothing; with ``fsync=True`` they also survive a power
cut, at the cost of one fsync per ``sync()``.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import logging
import os
import re
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, NamedTuple

from sensors.errors import SpoolError, SpoolFull
from soc_core.errors import ConfigError

log = logging.getLogger(__name__)

MAGIC = b"CGs1"
HEADER = struct.Struct(">4sII")
MAX_RECORD_BYTES = 64 * 1024 * 1024
_SEGMENT = re.compile(r"segment-(\d{12})\.log$")


class Position(NamedTuple):
    """Where a record ends: (segment id, byte offset after it). Ordered like the spool."""

    segment: int
    offset: int


def frame(payload: bytes) -> bytes:
    length = struct.pack(">I", len(payload))
    return HEADER.pack(MAGIC, len(payload), zlib.crc32(length + payload)) + payload


class Spool:
    """Append records, read them in order, commit what was delivered; see the module doc."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = 256 * 1024 * 1024,
        segment_bytes: int = 8 * 1024 * 1024,
        fsync: bool = False,
    ) -> None:
        if max_bytes < segment_bytes or segment_bytes < HEADER.size + 1:
            raise ConfigError("spool max_bytes must be ≥ segment_bytes > 12")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.stats = {"records_corrupt": 0, "segments_missing": 0, "appended": 0, "cursor_errors": 0}
        self._cursor_saved = True
        self.directory.mkdir(parents=True, exist_ok=True)
        self._sizes: dict[int, int] = {}
        self._read_handle: tuple[int, BinaryIO] | None = None
        for entry in self.directory.iterdir():
            match = _SEGMENT.match(entry.name)
            if match:
                self._sizes[int(match.group(1))] = entry.stat().st_size
        self._cursor = self._load_cursor()
        for segment in [s for s in self._sizes if s < self._cursor.segment]:
            self._delete(segment)  # consumed already: a crash came between cursor save and delete
        # The cursor's own segment is missing if the cursor points into it, or if records follow
        # it (at offset 0 with nothing after it, it is only a fresh spool's empty segment).
        later_records = any(size for segment, size in self._sizes.items() if segment > self._cursor.segment)
        if self._cursor.segment not in self._sizes and (self._cursor.offset > 0 or later_records):
            self._missing(self._cursor.segment)
        known = sorted(self._sizes)
        if known and known[0] > self._cursor.segment + 1:
            self._missing(*range(self._cursor.segment + 1, known[0]))
        for before, after in itertools.pairwise(known):
            if after - before > 1:
                self._missing(*range(before + 1, after))
        self._write_segment = max([*self._sizes, self._cursor.segment]) + 1
        self._write_fd = self._open_segment(self._write_segment)
        if not any(size for segment, size in self._sizes.items() if segment != self._write_segment):
            for segment in [s for s in self._sizes if s != self._write_segment]:
                self._delete(segment)  # nothing left from the last run: start clean
            self._cursor = Position(self._write_segment, 0)
            self._save_cursor()
        self._read = self._cursor
        self._last_read = self._cursor

    # -------------------------------------------------------------------------- writing
    @property
    def size(self) -> int:
        """Bytes on disk in segment files."""
        return sum(self._sizes.values())

    def append(self, payload: bytes) -> Position:
        """Persist one record; :class:`SpoolFull` at the limit, :class:`SpoolError` on I/O errors."""
        return self.append_many([payload])[0]

    def append_many(self, payloads: Sequence[bytes]) -> list[Position]:
        """Persist records in order, one write per segment they land in (not one per record).

        Returns the positions of the records persisted: all of them, or a prefix where the
        spool's limit (or an I/O error after a first write went through) stops it. Raises
        :class:`SpoolFull` when not even the first fits and :class:`SpoolError` when an I/O error
        comes before anything was persisted; a failed write is cut off again, so no record is
        ever half there.
        """
        taken: list[Position] = []
        frames: list[bytes] = []
        pending: list[Position] = []
        size = self.size
        used = self._sizes[self._write_segment]
        try:
            for payload in payloads:
                data = frame(payload)
                if len(data) > min(self.max_bytes, MAX_RECORD_BYTES):
                    if taken or pending:
                        break  # raised on its own, at the next call
                    raise SpoolError(f"a record of {len(data)} bytes can never fit in the spool")
                if size + len(data) > self.max_bytes:
                    if taken or pending:
                        break
                    raise SpoolFull(f"spool {self.directory} is full ({size} of {self.max_bytes} bytes)")
                if used and used + len(data) > self.segment_bytes:
                    self._write(frames)
                    taken += pending
                    frames, pending = [], []
                    self._roll()
                    used = 0
                used += len(data)
                size += len(data)
                frames.append(data)
                pending.append(Position(self._write_segment, used))
            self._write(frames)
            taken += pending
        except SpoolError:
            if not taken:
                raise
            # what was written stands; the error comes again with the next call
        return taken

    def _write(self, frames: Sequence[bytes]) -> None:
        """Append whole frames to the write segment, or nothing (:class:`SpoolError`)."""
        if not frames:
            return
        data = memoryview(b"".join(frames))
        used = self._sizes[self._write_segment]
        try:
            done = 0
            while done < len(data):  # a short write (disk nearly full): the next one says why
                done += os.write(self._write_fd, data[done:])
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._write_fd, used)  # never leave half a record behind
            raise SpoolError(
                f"cannot append to spool segment {self._path(self._write_segment)}: {_describe(exc)}",
                hint="free space on that disk; the record was not acknowledged and will be offered again",
            ) from exc
        self._sizes[self._write_segment] = used + len(data)
        self.stats["appended"] += len(frames)

    def sync(self) -> None:
        if self.fsync:
            os.fsync(self._write_fd)

    def _roll(self) -> None:
        """Continue in a new segment; if it cannot be created, keep writing to the current one."""
        fd = self._open_segment(self._write_segment + 1)
        if self.fsync:
            os.fsync(self._write_fd)
        os.close(self._write_fd)
        self._write_segment += 1
        self._write_fd = fd

    def _open_segment(self, segment: int) -> int:
        try:
            fd = os.open(self._path(segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise SpoolError(f"cannot create spool segment {self._path(segment)}: {_describe(exc)}") from exc
        self._sizes[segment] = os.fstat(fd).st_size
        return fd

    # -------------------------------------------------------------------------- reading
    @property
    def end(self) -> Position:
        return Position(self._write_segment, self._sizes[self._write_segment])

    @property
    def unread(self) -> bool:
        return self._read < self.end

    @property
    def uncommitted(self) -> bool:
        """Records may exist that were not committed (delivered) yet."""
        return self.unread or self._last_read > self._cursor

    def read(self, max_records: int) -> list[tuple[Position, bytes]]:
        """The next records after the read position (which advances; commit separately)."""
        out: list[tuple[Position, bytes]] = []
        while len(out) < max_records and self._read < self.end:
            segment, offset = self._read
            size = self._sizes.get(segment)
            if size is None or offset >= size:
                self._read = self._next_segment(segment)
                continue
            record = self._record_at(segment, offset, size)
            if record is None:
                continue
            out.append(record)
        return out

    def skip(self, end: Position, length: int) -> bool:
        """Move past the next record without reading it, when the caller holds it in memory.

        ``end`` is where :meth:`append` said the record ends and ``length`` its payload size.
        Nothing moves, and ``False`` comes back, unless that record is the next one to read.
        """
        start = end.offset - HEADER.size - length
        segment, offset = self._read
        if (segment, offset) != (end.segment, start):
            size = self._sizes.get(segment)
            at_segment_end = size is not None and offset >= size
            if not (at_segment_end and start == 0 and self._next_segment(segment).segment == end.segment):
                return False
        if end > self.end:
            return False
        self._read = self._last_read = end
        return True

    def _next_segment(self, segment: int) -> Position:
        later = [s for s in self._sizes if s > segment]
        return Position(min(later), 0) if later else self.end

    def _record_at(self, segment: int, offset: int, size: int) -> tuple[Position, bytes] | None:
        """Read the record at ``offset``; on damage count it and move the read position on."""
        handle = self._reader(segment)
        handle.seek(offset)
        header = handle.read(HEADER.size)
        if len(header) == HEADER.size:
            magic, length, checksum = HEADER.unpack(header)
            if magic == MAGIC and length <= MAX_RECORD_BYTES and offset + HEADER.size + length <= size:
                payload = handle.read(length)
                if zlib.crc32(header[4:8] + payload) == checksum:
                    end = Position(segment, offset + HEADER.size + length)
                    self._read = self._last_read = end
                    return end, payload
        self.stats["records_corrupt"] += 1
        handle.seek(offset + 1)
        rest = handle.read(size - offset - 1)
        found = rest.find(MAGIC)
        log.warning("spool segment %s: damaged record at offset %d skipped", segment, offset)
        self._read = Position(segment, offset + 1 + found) if found >= 0 else Position(segment, size)
        return None

    def _reader(self, segment: int) -> BinaryIO:
        if self._read_handle is not None and self._read_handle[0] == segment:
            return self._read_handle[1]
        self._close_reader()
        handle = open(self._path(segment), "rb")  # noqa: SIM115 - reused across reads
        self._read_handle = (segment, handle)
        return handle

    def _close_reader(self) -> None:
        if self._read_handle is not None:
            self._read_handle[1].close()
            self._read_handle = None

    # ------------------------------------------------------------------------ committing
    def commit(self, position: Position) -> None:
        """Everything up to ``position`` is delivered: save the cursor, drop used segments."""
        if position <= self._cursor:
            return
        segment, offset = position
        if segment != self._write_segment and offset >= self._sizes.get(segment, 0):
            position = self._next_segment(segment)  # an old segment used up: let it go
        if position == self.end and position.offset > 0:
            try:
                self._roll()  # drained: start a fresh segment so the used one can go
            except SpoolError as exc:
                log.error("%s; the drained segment is kept for now", exc)
            else:
                position = self.end
                self._read = max(self._read, position)
        self._cursor = position
        if not self._save_cursor():
            return  # segments before the saved cursor stay until it can be saved
        for segment in [s for s in self._sizes if s < position.segment]:
            self._delete(segment)

    def _delete(self, segment: int) -> None:
        if self._read_handle is not None and self._read_handle[0] == segment:
            self._close_reader()
        with contextlib.suppress(FileNotFoundError):
            self._path(segment).unlink()
        self._sizes.pop(segment, None)

    def _missing(self, *segments: int) -> None:
        self.stats["segments_missing"] += len(segments)
        log.warning("spool %s: segments %s are missing; their records are lost", self.directory, segments)

    def _path(self, segment: int) -> Path:
        return self.directory / f"segment-{segment:012d}.log"

    def _load_cursor(self) -> Position:
        path = self.directory / "cursor.json"
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
            return Position(int(body["segment"]), int(body["offset"]))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("spool cursor %s is unreadable (%s); reading the spool from its start", path, exc)
        return Position(min(self._sizes, default=0), 0)

    def _save_cursor(self) -> bool:
        """Write the cursor atomically; ``False`` (logged, counted) if the disk refused.

        An unsaved cursor only means a restart delivers some records again (harmless with
        deterministic ids), so it is retried at the next commit instead of stopping delivery.
        """
        path = self.directory / "cursor.json"
        temporary = path.with_suffix(".tmp")
        try:
            temporary.write_text(json.dumps(dict(self._cursor._asdict())), encoding="utf-8")
            if self.fsync:
                with open(temporary, "rb") as handle:
                    os.fsync(handle.fileno())
            os.replace(temporary, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            self.stats["cursor_errors"] += 1
            if self.stats["cursor_errors"] == 1 or self._cursor_saved:
                log.error("cannot save spool cursor %s: %s; delivered records stay on disk", path, _describe(exc))
            self._cursor_saved = False
            return False
        if not self._cursor_saved:
            log.info("spool cursor %s saved again", path)
        self._cursor_saved = True
        return True

    def close(self) -> None:
        self._close_reader()
        with contextlib.suppress(OSError):
            self.sync()
            os.close(self._write_fd)


def _describe(exc: OSError) -> str:
    """``No space left on device (ENOSPC)``: the reason and the errno name an operator greps for."""
    if exc.errno is None:
        return str(exc)
    return f"{exc.strerror or os.strerror(exc.errno)} ({errno.errorcode.get(exc.errno, exc.errno)})"


__all__ = ["MAGIC", "Position", "Spool", "frame"]
