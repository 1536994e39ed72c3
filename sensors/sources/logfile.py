"""Tail log files matched by glob patterns, with checkpoints that move only on delivery.

Delivery guarantee: at least once. Every complete line is yielded as a :class:`LogRecord`
carrying an ack token; the checkpoint of a file is the end of the longest run of lines from
its start that the forwarder acknowledged, and only that is written to the state file. After a
crash the tailer re-reads from the checkpoint, and deterministic event ids make the repeats
harmless.

File identity is a fingerprint of the file's first line (at most ``fingerprint_bytes`` bytes),
not its inode, so:

* **rename rotation** (``app.log`` → ``app.log.1``, new ``app.log``): the open handle keeps
  reading the renamed file to its end; a rotated file matched by the glob is the same identity
  and is never read twice. A file is opened in the poll that finds it, read or not yet, so
  only a file renamed away before any poll saw it is out of reach;
* **copytruncate**: the copy has the old fingerprint, so when it is matched by the glob the
  tailer continues from its offset in the copy and loses nothing; when it is not, the lines
  written between the last read and the truncation are lost — that loss is counted in
  ``identity_lost``;
* **in-place truncation** (same first line, shorter file): detected, read again from 0 under a
  new generation (part of the event id) so rewritten lines are new events;
* **inode reuse** and **deleted files**: a new first line is a new identity, read from 0; a
  deleted file is read to its end through the open handle, then closed after ``idle_close``
  seconds without growth.

A file whose first line is not complete yet (no newline and shorter than ``fingerprint_bytes``)
waits. Files sharing a first line are taken for one file (put something unique, such as a
timestamp, in the first line, which every syslog file does). Lines longer than
``max_line_bytes`` are cut there and flagged; the file stays tailed. Files that exist when the
tailer first starts, without a checkpoint, are read from their end unless ``from_beginning``;
files that appear later are always read from their start.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import hashlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from soc_core.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_EXCLUDE = ("*.gz", "*.bz2", "*.xz", "*.zst", "*.zip")
STATE_VERSION = 1


@dataclass(frozen=True)
class LogRecord:
    """One line: its bytes (newline removed), where it came from, and its ack token."""

    raw: bytes
    source: str
    path: str
    offset: int
    end: int
    token: int
    truncated: bool = False


@dataclass
class _Pending:
    token: int
    end: int
    done: bool = False


@dataclass
class _File:
    """A file identity being read."""

    fingerprint: str
    generation: int
    path: str
    line_start: int
    handle: BinaryIO | None = None
    buffer: bytearray = field(default_factory=bytearray)
    line_length: int = 0
    last_growth: float = 0.0
    seen: bool = True
    at_eof: bool = False
    pending: deque[_Pending] = field(default_factory=deque)

    @property
    def source(self) -> str:
        return self.fingerprint if self.generation == 0 else f"{self.fingerprint}#{self.generation}"

    @property
    def read_position(self) -> int:
        return self.line_start + self.line_length

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def fingerprint_of(handle: BinaryIO, size: int) -> str | None:
    """Hash of the first line (at most ``size`` bytes); ``None`` while that line is incomplete."""
    handle.seek(0)
    head = handle.read(size)
    newline = head.find(b"\n")
    if newline >= 0:
        head = head[: newline + 1]
    elif len(head) < size:
        return None
    return hashlib.blake2b(head, digest_size=12).hexdigest()


@dataclass(frozen=True)
class StartPoint:
    """Where a file is read from at the tailer's first poll, and why: its ``checkpoint``,
    its ``end`` (no checkpoint, not ``from_beginning``) or its ``beginning``."""

    path: str
    size: int
    offset: int
    why: str


class FileTailer:
    """Tail every regular file matched by ``patterns``; see the module docstring."""

    def __init__(
        self,
        patterns: Sequence[str],
        *,
        state_path: Path,
        from_beginning: bool = False,
        exclude: Sequence[str] = DEFAULT_EXCLUDE,
        fingerprint_bytes: int = 1024,
        max_line_bytes: int = 1024 * 1024,
        read_bytes: int = 256 * 1024,
        idle_close: float = 5.0,
        forget_after: float = 7 * 86400.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not patterns:
            raise ConfigError("a file input needs at least one path or glob pattern")
        if fingerprint_bytes < 16 or max_line_bytes < 1:
            raise ConfigError("fingerprint_bytes must be ≥ 16 and max_line_bytes ≥ 1")
        self.patterns = [str(pattern) for pattern in patterns]
        self.exclude = list(exclude)
        self.state_path = Path(state_path)
        self.from_beginning = from_beginning
        self.fingerprint_bytes = fingerprint_bytes
        self.max_line_bytes = max_line_bytes
        self.read_bytes = read_bytes
        self.idle_close = idle_close
        self.forget_after = forget_after
        self._clock = clock
        self._files: dict[str, _File] = {}
        self._tokens: dict[int, tuple[_File, _Pending]] = {}
        self._next_token = 0
        self._first_scan = True
        self._turn = 0
        self._dirty = False
        self._commit_failing = False
        self._checkpoints: dict[str, dict[str, Any]] = self._load_state()
        self.stats: dict[str, int] = dict.fromkeys(
            (
                "lines_read",
                "bytes_read",
                "lines_truncated",
                "files_opened",
                "files_closed",
                "truncations",
                "identity_lost",
            ),
            0,
        )

    # ---------------------------------------------------------------------------- reading
    def poll(self, max_records: int = 1000, *, final: bool = False) -> list[LogRecord]:
        """Read what is new, up to about ``max_records`` lines.

        ``final`` (one-shot imports) also yields a last line that has no newline yet and
        closes files that are gone without waiting ``idle_close``.
        """
        now = self._clock()
        found = self._scan()
        for record in self._files.values():
            record.seen = False
        for fingerprint, path in found.items():
            tracked = self._files.get(fingerprint)
            if tracked is None:
                tracked = self._start(fingerprint, path, now)
                if tracked is None:
                    continue
                # Held open from the moment it is found: the poll's budget may go to another
                # file's backlog before this one is read, and a rename out of the glob in
                # between (rotation on a busy machine) would otherwise put every line of it
                # out of reach.
                self._open(tracked, found)
            tracked.seen = True
            if tracked.handle is None:
                tracked.path = path
        self._first_scan = False
        records: list[LogRecord] = []
        order = sorted(self._files.values(), key=lambda item: item.path)
        self._turn = (self._turn + 1) % max(len(order), 1)  # no file starves the others
        read_now: set[str] = set()
        for tracked in order[self._turn :] + order[: self._turn]:
            if len(records) >= max_records:
                break
            self._read(tracked, found, records, max_records=max_records, now=now, final=final)
            read_now.add(tracked.fingerprint)
        for key, tracked in list(self._files.items()):
            idle = now - tracked.last_growth >= self.idle_close
            # Only a file this poll read to its end: one the budget skipped may have grown since
            # its last read, and on a busy machine it can be skipped for longer than idle_close.
            done = key in read_now and tracked.at_eof
            if not tracked.seen and done and (final or idle or tracked.handle is None):
                tracked.close()
                del self._files[key]
                self.stats["files_closed"] += 1
        return records

    def _scan(self) -> dict[str, str]:
        """Fingerprint → path of every ready file matched now (one path per identity)."""
        candidates: dict[str, list[tuple[str, int]]] = {}
        paths: set[str] = set()
        for pattern in self.patterns:
            paths.update(glob.glob(pattern, recursive=True))
        for path in sorted(paths):
            name = os.path.basename(path)
            if any(fnmatch.fnmatch(name, rule) for rule in self.exclude):
                continue
            if not os.path.isfile(path):  # never open a FIFO or device: it could block
                continue
            try:
                with open(path, "rb") as handle:
                    fingerprint = fingerprint_of(handle, self.fingerprint_bytes)
                    size = os.fstat(handle.fileno()).st_size
            except OSError as exc:  # vanished between glob and open, or unreadable
                log.debug("cannot read %s: %s", path, exc)
                continue
            if fingerprint is not None:
                candidates.setdefault(fingerprint, []).append((path, size))
        found: dict[str, str] = {}
        for fingerprint, options in candidates.items():
            tracked = self._files.get(fingerprint)
            current = [path for path, _ in options if tracked and path == tracked.path]
            found[fingerprint] = current[0] if current else max(options, key=lambda o: o[1])[0]
        return found

    def _start(self, fingerprint: str, path: str, now: float) -> _File | None:
        saved = self._checkpoints.get(fingerprint)
        if saved is not None:
            start, generation = int(saved["offset"]), int(saved.get("generation", 0))
        elif self._first_scan and not self.from_beginning:
            start, generation = self._end_of_last_line(path), 0
        else:
            start, generation = 0, 0
        tracked = _File(fingerprint, generation, path, start, last_growth=now)
        self._files[fingerprint] = tracked
        self._checkpoint(tracked, start)
        return tracked

    def start_points(self) -> list[StartPoint]:
        """Where each file matched now would be read from at the first poll (what
        :meth:`_start` decides), for the operator: a checkpoint wins over ``from_beginning``."""
        points = []
        for fingerprint, path in sorted(self._scan().items(), key=lambda item: item[1]):
            size = os.path.getsize(path)
            saved = self._checkpoints.get(fingerprint)
            if saved is not None:
                points.append(StartPoint(path, size, int(saved["offset"]), "checkpoint"))
            elif self._first_scan and not self.from_beginning:
                points.append(StartPoint(path, size, self._end_of_last_line(path), "end"))
            else:
                points.append(StartPoint(path, size, 0, "beginning"))
        return points

    def forget(self) -> None:
        """Drop every saved checkpoint (before the first poll): the files start as new ones."""
        self._checkpoints.clear()
        self._dirty = True

    def _end_of_last_line(self, path: str) -> int:
        try:
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                tail = min(size, 64 * 1024)
                handle.seek(size - tail)
                newline = handle.read(tail).rfind(b"\n")
        except OSError:
            return 0
        return size if newline < 0 else size - tail + newline + 1

    def _open(self, tracked: _File, found: dict[str, str]) -> bool:
        """Make sure ``tracked.handle`` is open on a file that still has its identity."""
        if tracked.handle is not None:
            try:
                same = fingerprint_of(tracked.handle, self.fingerprint_bytes) == tracked.fingerprint
            except OSError:
                same = False
            if same:
                self._follow_rename(tracked, found)
                return True
            # This inode was truncated or rewritten (copytruncate): follow the copy, if matched.
            tracked.close()
            if tracked.fingerprint not in found:
                # This poll's scan may predate the copy (the process was paused between its glob
                # and now). A copytruncate copies before it truncates, so a scan made now, after
                # the truncation was seen, finds the copy if the glob matches it.
                found.update(self._scan())
            if tracked.fingerprint not in found:
                self._lose(tracked)
                return False
            tracked.path = found[tracked.fingerprint]
        path = found.get(tracked.fingerprint)
        if path is None:
            return False
        try:
            handle = open(path, "rb")  # noqa: SIM115 - kept open across polls on purpose
        except OSError as exc:
            log.debug("cannot open %s: %s", path, exc)
            return False
        if fingerprint_of(handle, self.fingerprint_bytes) != tracked.fingerprint:
            handle.close()  # replaced between the scan and now: the next scan sorts it out
            return False
        tracked.handle, tracked.path = handle, path
        self.stats["files_opened"] += 1
        return True

    @staticmethod
    def _follow_rename(tracked: _File, found: dict[str, str]) -> None:
        """Report the current name of a renamed file (``log.file.path``)."""
        path = found.get(tracked.fingerprint)
        if path is None or path == tracked.path or tracked.handle is None:
            return
        with contextlib.suppress(OSError):
            if os.path.samestat(os.stat(path), os.fstat(tracked.handle.fileno())):
                tracked.path = path

    def _lose(self, tracked: _File) -> None:
        """The identity's content is gone (copytruncate without a matched copy): count it."""
        self.stats["identity_lost"] += 1
        log.warning(
            "%s was truncated in place (copytruncate?) and its copy is not matched by %s: "
            "lines written after offset %d and before the truncation are lost",
            tracked.path,
            self.patterns,
            tracked.read_position,
        )
        tracked.at_eof = True

    def _read(
        self,
        tracked: _File,
        found: dict[str, str],
        records: list[LogRecord],
        *,
        max_records: int,
        now: float,
        final: bool,
    ) -> None:
        if not self._open(tracked, found):
            tracked.at_eof = True
            return
        handle = tracked.handle
        assert handle is not None
        size = os.fstat(handle.fileno()).st_size
        if size < tracked.read_position:
            self._truncated(tracked)
        handle.seek(tracked.read_position)
        tracked.at_eof = False
        while len(records) < max_records:
            data = handle.read(self.read_bytes)
            if not data:
                tracked.at_eof = True
                break
            tracked.last_growth = now
            self.stats["bytes_read"] += len(data)
            self._split(tracked, data, records, max_records)
        if final and tracked.at_eof and tracked.line_length:
            self._emit(tracked, tracked.read_position, records)

    def _truncated(self, tracked: _File) -> None:
        self.stats["truncations"] += 1
        log.warning("%s was truncated in place; reading it again from the start", tracked.path)
        for pending in tracked.pending:
            self._tokens.pop(pending.token, None)
        tracked.pending.clear()
        tracked.generation += 1
        tracked.line_start, tracked.line_length = 0, 0
        tracked.buffer.clear()
        self._checkpoint(tracked, 0)

    def _split(self, tracked: _File, data: bytes, records: list[LogRecord], max_records: int) -> None:
        """Cut ``data`` into lines; stop at ``max_records`` (the rest is read again next poll)."""
        position = 0
        while position < len(data) and len(records) < max_records:
            newline = data.find(b"\n", position)
            if 0 <= newline - position <= self.max_line_bytes and not tracked.line_length:
                # the common case: a whole line of allowed length inside this read, nothing buffered
                tracked.line_length = newline - position
                self._emit(tracked, tracked.line_start + tracked.line_length + 1, records, data[position:newline])
                position = newline + 1
                continue
            stop = len(data) if newline < 0 else newline
            room = self.max_line_bytes - len(tracked.buffer)
            if room > 0:
                tracked.buffer += data[position : min(stop, position + room)]
            tracked.line_length += stop - position
            if newline < 0:
                return
            self._emit(tracked, tracked.line_start + tracked.line_length + 1, records)
            position = newline + 1

    def _emit(self, tracked: _File, end: int, records: list[LogRecord], whole: bytes | None = None) -> None:
        """The line ending at ``end``: ``whole`` if given (it was never buffered), else the buffer."""
        if whole is None:
            raw = bytes(tracked.buffer)
            tracked.buffer.clear()
        else:
            raw = whole
        truncated = tracked.line_length > len(raw)
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        start = tracked.line_start
        tracked.line_start, tracked.line_length = end, 0
        if not raw:
            if not tracked.pending:
                self._checkpoint(tracked, end)
            return
        self._next_token += 1
        pending = _Pending(self._next_token, end)
        tracked.pending.append(pending)
        self._tokens[pending.token] = (tracked, pending)
        self.stats["lines_read"] += 1
        if truncated:
            self.stats["lines_truncated"] += 1
        records.append(LogRecord(raw, tracked.source, tracked.path, start, end, pending.token, truncated))

    # ------------------------------------------------------------------------ checkpoints
    def ack(self, token: int) -> None:
        """The line with this token is delivered (or dead-lettered, or dropped on purpose)."""
        entry = self._tokens.pop(token, None)
        if entry is None:
            return  # a line of an identity that was since truncated and read again
        tracked, pending = entry
        pending.done = True
        advanced = None
        while tracked.pending and tracked.pending[0].done:
            advanced = tracked.pending.popleft().end
        if advanced is not None:
            self._checkpoint(tracked, advanced)

    def _checkpoint(self, tracked: _File, offset: int) -> None:
        self._checkpoints[tracked.fingerprint] = {
            "generation": tracked.generation,
            "offset": offset,
            "path": tracked.path,
            "updated": time.time(),
        }
        self._dirty = True

    @property
    def unacknowledged(self) -> int:
        return len(self._tokens)

    def checkpoints(self) -> dict[str, dict[str, Any]]:
        """Fingerprint → ``{"generation", "offset", "path", "updated"}`` (a copy)."""
        return {key: dict(value) for key, value in self._checkpoints.items()}

    def commit(self) -> bool:
        """Write the checkpoints if they changed (atomically: temp file, fsync, rename)."""
        if not self._dirty:
            return False
        horizon = time.time() - self.forget_after
        for key in [k for k, v in self._checkpoints.items() if v["updated"] < horizon]:
            if key not in self._files:  # a file gone for good: forget it
                del self._checkpoints[key]
        temporary = self.state_path.with_name(self.state_path.name + ".tmp")
        body = {"version": STATE_VERSION, "patterns": self.patterns, "files": self._checkpoints}
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            with open(temporary, "w", encoding="utf-8") as handle:
                json.dump(body, handle, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.state_path)
        except OSError as exc:
            # The saved checkpoint stays behind the delivered data: a restart re-reads some
            # lines (same event ids, so no duplicates). Try again at the next commit.
            with contextlib.suppress(OSError):
                temporary.unlink()
            if not self._commit_failing:
                log.error("cannot save checkpoints to %s: %s; retrying at each commit", self.state_path, exc)
            self._commit_failing = True
            return False
        if self._commit_failing:
            log.info("checkpoints saved to %s again", self.state_path)
        self._commit_failing = False
        self._dirty = False
        return True

    def _load_state(self) -> dict[str, dict[str, Any]]:
        try:
            body = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            # A damaged state file must not stop the sensor: start over and say so.
            log.error("checkpoint file %s is unreadable (%s); starting without it", self.state_path, exc)
            with contextlib.suppress(OSError):
                os.replace(self.state_path, self.state_path.with_suffix(".corrupt"))
            return {}
        files = body.get("files") if isinstance(body, dict) else None
        if not isinstance(files, dict):
            log.error("checkpoint file %s has no 'files' map; starting without it", self.state_path)
            return {}
        return {
            str(key): value
            for key, value in files.items()
            if isinstance(value, dict)
            and isinstance(value.get("offset"), int)
            and isinstance(value.get("updated"), int | float)
        }

    def close(self) -> None:
        """Write the checkpoints and close every file."""
        self.commit()
        for tracked in self._files.values():
            tracked.close()
        self._files.clear()


__all__ = ["DEFAULT_EXCLUDE", "FileTailer", "LogRecord", "StartPoint", "fingerprint_of"]
