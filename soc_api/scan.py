"""``soc scan``: Sigma rules over files, in one command, with no server, store or tenant.

Inputs are read by the sensors' own code: ``.evtx`` through the Windows parser exactly as
``soc sensor evtx`` does (:func:`sensors.pipeline.evtx_events`), pcap/pcapng through the packet
analyzer of ``soc sensor pcap`` (:func:`sensors.netsensor.record_event`), and lines through
:func:`sensors.pipeline.build_line_event` with a parser picked per file (:func:`parser_for`).
No store: events go straight to the :class:`~detections.evaluation.Evaluator`.

Every core is used: the rules are compiled once (through the compiled-rule cache), then files
are matched in forked worker processes that inherit the compiled rules; each returns only the
events that matched and the ids of the rules they matched. This process feeds those, ordered
by time, to the evaluator's stateful half, so correlation rules see the whole scan as one
stream. A file that cannot be read is reported with its path and skipped.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from detections.alerts import Detection
from detections.evaluation import CompiledRule, Evaluator
from sensors.netsensor import record_event
from sensors.packets.analyzer import AnalyzerOptions, PacketAnalyzer
from sensors.parsers import ParseContext, ParserSpec, get_parser
from sensors.pipeline import build_line_event, evtx_events
from sensors.sources.evtx import EvtxFailure
from sensors.sources.jsonl import read_lines
from sensors.sources.network import PcapFile
from soc_core.errors import SocError
from soc_core.events import Event, utcnow

TENANT = "scan"
SENSOR_ID = "soc-scan"
EVTX_SUFFIXES = frozenset({".evtx"})
PCAP_SUFFIXES = frozenset({".pcap", ".pcapng", ".cap"})
JSON_SUFFIXES = frozenset({".json", ".jsonl", ".ndjson"})
# keys that mark a JSON line as a Windows event (Winlogbeat, EVTX JSON, NXLog)
_WINDOWS_KEYS = frozenset({"winlog", "Event", "EventID"})
_PCAP_CHUNK = 4096
UTC_ZONE = ZoneInfo("UTC")  # lines whose timestamps name no zone


@dataclass(frozen=True)
class _Identity:
    tenant: str = TENANT
    sensor_id: str = SENSOR_ID


IDENTITY = _Identity()


@dataclass(frozen=True)
class ScanInput:
    path: Path
    kind: str  # evtx, pcap, lines
    parser: str | None = None  # lines: the parser's name


@dataclass
class FileResult:
    path: str
    events: int = 0
    read_failures: int = 0
    error: str | None = None
    matched: list[tuple[Event, list[str]]] = field(default_factory=list)  # (event, rule ids)


@dataclass
class ScanResult:
    files: list[FileResult]
    detections: list[Detection]
    events_by_id: dict[str, Event]


def discover(paths: Iterable[Path], *, parser: str | None = None) -> tuple[list[ScanInput], list[FileResult]]:
    """The files named or under the named folders (sorted), and the paths that do not exist."""
    inputs: list[ScanInput] = []
    missing: list[FileResult] = []
    seen: set[Path] = set()
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            files = [path]
        else:
            missing.append(FileResult(str(path), error="no such file or directory"))
            continue
        for file in files:
            resolved = file.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            found = classify(file, parser=parser, named=file == path)
            if found is not None:
                inputs.append(found)
    return inputs, missing


def classify(path: Path, *, parser: str | None = None, named: bool = True) -> ScanInput | None:
    """How to read a file, by its name and first bytes; None for a file in a folder that is none
    of ours (pictures, scripts beside the logs). A file named on the command line is always read."""
    suffix = path.suffix.lower()
    if suffix in EVTX_SUFFIXES:
        return ScanInput(path, "evtx")
    if suffix in PCAP_SUFFIXES:
        return ScanInput(path, "pcap")
    if parser is not None:
        return ScanInput(path, "lines", parser)
    if suffix in JSON_SUFFIXES:
        return ScanInput(path, "lines", _json_parser(path))
    if suffix in {".log", ".txt"} or path.name.endswith((".log.1", "syslog", "auth.log", "messages", "secure")):
        return ScanInput(path, "lines", _text_parser(path))
    return ScanInput(path, "lines", _text_parser(path)) if named else None


def _first_line(path: Path) -> bytes:
    try:
        with path.open("rb") as stream:
            for line in stream:
                if line.strip():
                    return line[:65536]
    except OSError:
        pass
    return b""


def _json_parser(path: Path) -> str:
    """``windows`` for Winlogbeat / EVTX JSON / NXLog lines, else ``jsonl``."""
    try:
        first = json.loads(_first_line(path))
    except ValueError:
        return "jsonl"
    return "windows" if isinstance(first, dict) and _WINDOWS_KEYS & first.keys() else "jsonl"


def _text_parser(path: Path) -> str:
    """``apache`` for access-log lines (``host - user [time] "request"``), else ``auth`` (syslog
    lines, each program to its own parser: sshd, sudo, su …)."""
    line = _first_line(path).decode("utf-8", "replace")
    if line.lstrip().startswith("{"):
        return _json_parser(path)
    head = line.split('"', 1)[0]
    return "apache" if "[" in head and head.count(" ") >= 3 and '"' in line else "auth"


def read_events(item: ScanInput, counts: FileResult) -> Iterator[Event]:
    """The events of one input, built by the sensors' code; damaged records counted in ``counts``."""
    if item.kind == "evtx":
        for found in evtx_events(IDENTITY, item.path):
            if isinstance(found, EvtxFailure):
                counts.read_failures += 1
            else:
                yield found
    elif item.kind == "pcap":
        yield from _pcap_events(item.path)
    else:
        assert item.parser is not None
        yield from _line_events(item.path, get_parser(item.parser))


def _pcap_events(path: Path) -> Iterator[Event]:
    analyzer = PacketAnalyzer(AnalyzerOptions())
    with PcapFile(path) as pcap:
        source = f"pcap:{pcap.path.resolve()}"
        for position, frame in enumerate(pcap):
            analyzer.feed(frame.timestamp, frame.data, frame.wire_len, frame.linktype, position)
            if (position + 1) % _PCAP_CHUNK == 0:
                yield from _drained(analyzer, source)
        analyzer.flush()
        yield from _drained(analyzer, source)


def _drained(analyzer: PacketAnalyzer, source: str) -> Iterator[Event]:
    for record in analyzer.drain():
        yield record_event(record, tenant=TENANT, sensor_id=SENSOR_ID, source=source)


def _line_events(path: Path, parser: ParserSpec) -> Iterator[Event]:
    context = ParseContext(now=utcnow(), tz=UTC_ZONE)
    source = str(path)
    with path.open("rb") as stream:
        for line in read_lines(stream):
            event, _ = build_line_event(
                IDENTITY,
                parser,
                line.raw,
                context,
                source=source,
                position=line.offset,
                extra={"log.offset": line.offset, "log.file.path": source},
                truncated=line.truncated,
            )
            yield event


# matching -----------------------------------------------------------------------------------
_EVALUATOR: Evaluator | None = None  # set before the workers fork: they inherit the compiled rules


def scan_file(item: ScanInput) -> FileResult:
    """Match one file's events (in a worker); a file that cannot be read is an error, not a crash."""
    assert _EVALUATOR is not None
    result = FileResult(str(item.path))
    stream_match = _EVALUATOR.stream_match
    try:
        for event in read_events(item, result):
            result.events += 1
            matched = stream_match(event)
            if matched:
                result.matched.append((event, [rule.meta.id for rule in matched]))
    except (SocError, OSError, ValueError, EOFError) as exc:
        result.error = exc.render() if isinstance(exc, SocError) else f"{type(exc).__name__}: {exc}"
    if result.error is None and result.read_failures and not result.events:
        result.error = f"no readable record ({result.read_failures} damaged parts)"
    return result


def run_scan(
    evaluator: Evaluator,
    inputs: Sequence[ScanInput],
    *,
    workers: int | None = None,
    progress: Callable[[FileResult], None] | None = None,
) -> ScanResult:
    """Match every input (over ``workers`` processes, default one per core), then emit the
    detections and correlation hits in time order."""
    global _EVALUATOR  # noqa: PLW0603 - what forked workers inherit
    _EVALUATOR = evaluator
    workers = max(1, min(workers or os.cpu_count() or 1, len(inputs)))
    results: dict[str, FileResult] = {}
    try:
        if workers == 1:
            for item in inputs:
                done = scan_file(item)
                results[done.path] = done
                if progress is not None:
                    progress(done)
        else:
            # fork: the workers start with the compiled rules, nothing is pickled but results
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                for done in pool.imap_unordered(scan_file, inputs):
                    results[done.path] = done
                    if progress is not None:
                        progress(done)
    finally:
        _EVALUATOR = None
    files = [results[str(item.path)] for item in inputs]
    by_id = {rule.meta.id: rule for rule in evaluator.compiled.rules}
    ordered: list[tuple[str, int, int, Event, list[CompiledRule]]] = []
    for index, result in enumerate(files):
        for position, (event, rule_ids) in enumerate(result.matched):
            stamp = str(event.get("@timestamp") or "")
            ordered.append((stamp, index, position, event, [by_id[rule_id] for rule_id in rule_ids]))
    ordered.sort(key=lambda entry: entry[:3])
    detections = evaluator.emit((event, rules) for *_, event, rules in ordered)
    events_by_id = {str(event.get("event.id")): event for *_, event, _ in ordered}
    return ScanResult(files, detections, events_by_id)


# output -------------------------------------------------------------------------------------
def match_record(detection: Detection, events_by_id: Mapping[str, Event]) -> dict[str, Any]:
    """One match as the JSON, JSON lines and CSV outputs give it."""
    rule = detection.rule
    events = [events_by_id[event_id] for event_id in detection.event_ids if event_id in events_by_id]
    return {
        "rule": {"id": rule.id, "title": rule.name, "level": rule.level},
        "attack": [tag for tag in rule.tags if tag.startswith("attack.")],
        "count": detection.count,
        "first_seen": detection.first_seen,
        "last_seen": detection.last_seen,
        "group": detection.group,
        "files": sorted({str(event.get("log.file.path") or "") for event in events} - {""}),
        "events": [dict(event) for event in events],
    }


def summary_rows(detections: Sequence[Detection]) -> list[dict[str, Any]]:
    """Matches per rule, most first: rule, level, ATT&CK, matches, events."""
    rows: dict[str, dict[str, Any]] = {}
    for detection in detections:
        rule = detection.rule
        row = rows.setdefault(
            rule.id,
            {
                "rule": rule.id,
                "title": rule.name,
                "level": rule.level,
                "attack": [t for t in rule.tags if t.startswith("attack.")],
                "matches": 0,
                "events": 0,
            },
        )
        row["matches"] += 1
        row["events"] += len(detection.event_ids)
    return sorted(rows.values(), key=lambda row: (-row["matches"], row["rule"]))


__all__ = [
    "FileResult",
    "ScanInput",
    "ScanResult",
    "classify",
    "discover",
    "match_record",
    "read_events",
    "run_scan",
    "scan_file",
    "summary_rows",
]
