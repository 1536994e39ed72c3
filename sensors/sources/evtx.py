"""Read Windows ``.evtx`` files (and folders of them) with the ``evtx`` package (pyevtx-rs).

Each record comes out as :class:`EvtxRecord` (its JSON rendering and record id) or, when a
chunk or record is damaged, as :class:`EvtxFailure` — the reader goes on with the next record,
so a broken file yields what can be read and a count of what could not, never an exception.

A file's identity is a fingerprint of its first chunk (bytes 4 KiB–68 KiB, after the file
header whose counters change while Windows writes the log), so a copy or a later export of
the same log gives the same record identities; event ids come from (sensor id, fingerprint,
record id) and re-importing a file writes nothing new.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from evtx import PyEvtxParser

log = logging.getLogger(__name__)

FILE_HEADER_BYTES = 4096
CHUNK_BYTES = 65536
MAX_CONSECUTIVE_ERRORS = 1000


@dataclass(frozen=True)
class EvtxRecord:
    record_id: int
    data: str


@dataclass(frozen=True)
class EvtxFailure:
    reason: str


def evtx_files(paths: Iterable[str | Path]) -> list[Path]:
    """Every ``.evtx`` file named or under a named folder, sorted, without repeats."""
    found: dict[Path, None] = {}
    for item in paths:
        path = Path(item)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix.lower() == ".evtx":
                    found.setdefault(child, None)
        elif path.is_file():
            found.setdefault(path, None)
    return list(found)


def fingerprint(path: Path) -> str:
    with open(path, "rb") as handle:
        handle.seek(FILE_HEADER_BYTES)
        chunk = handle.read(CHUNK_BYTES)
    if not chunk:  # no chunk at all: the header is all there is
        with open(path, "rb") as handle:
            chunk = handle.read(FILE_HEADER_BYTES)
    return hashlib.blake2b(chunk, digest_size=12).hexdigest()


def read_evtx(path: Path) -> Iterator[EvtxRecord | EvtxFailure]:
    """The records of one file in order, damaged ones as :class:`EvtxFailure`."""
    try:
        parser = PyEvtxParser(str(path))
        records = iter(parser.records_json())
    except (OSError, RuntimeError, ValueError) as exc:
        yield EvtxFailure(f"cannot open {path} as EVTX: {exc}")
        return
    errors = 0
    while True:
        try:
            record = next(records)
        except StopIteration:
            return
        except Exception as exc:  # the Rust parser raises plain RuntimeErrors per bad record
            errors += 1
            yield EvtxFailure(f"{path}: {exc}")
            if errors >= MAX_CONSECUTIVE_ERRORS:
                yield EvtxFailure(f"{path}: giving up after {errors} consecutive damaged records")
                return
            continue
        errors = 0
        if not isinstance(record, dict):
            yield EvtxFailure(f"{path}: unexpected record {type(record).__name__}")
            continue
        yield EvtxRecord(int(record["event_record_id"]), str(record["data"]))


__all__ = ["EvtxFailure", "EvtxRecord", "evtx_files", "fingerprint", "read_evtx"]
