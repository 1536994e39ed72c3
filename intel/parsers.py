"""Threat-intel files → normalised indicators: MISP feeds and events, STIX 2.1 bundles, CSV lists.

Pure of the store: each parser reads a file (or a feed directory) and returns a
:class:`Parsed` — the indicators, keyed by (type, value) so a value twice in one file is counted
as a duplicate, and every line or object it could not use with where it was (``file:line``,
``file: indicator--…``) and why. A bad line never stops the rest of the file; only a file that
cannot be read at all (missing, not JSON, not the format asked for) raises :class:`ParseError`.

Formats, as published:

* **MISP feed** — a directory with ``manifest.json`` (event uuid → summary) and one
  ``<uuid>.json`` per event; a **MISP event** file is ``{"Event": {...}}`` (or a
  ``restSearch`` answer, ``{"response": [{"Event": ...}]}``). Attributes (and those of the
  event's objects) of the types below become indicators; ``to_ids: false`` and deleted ones are
  skipped, as MISP means them not for detection. Confidence comes from the event's
  ``threat_level_id`` (1 high → 90, 2 medium → 70, 3 low → 40, 4 undefined → 50).
* **STIX 2.1** — a bundle whose ``indicator`` objects have ``pattern_type: stix`` and a pattern
  of ``=`` comparisons, joined by ``OR``, on ``ipv4-addr:value``, ``ipv6-addr:value``,
  ``domain-name:value``, ``url:value`` or ``file:hashes.'SHA-256'``/``MD5``/``'SHA-1'``. Any
  other pattern (AND, FOLLOWEDBY, MATCHES, other objects) is skipped with the reason.
* **CSV** — ``type,value[,confidence,first_seen,source]`` with or without that header line, or
  one column of values of the type given (``--type``). ``#`` comments and blank lines are
  ignored.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from intel.indicators import (
    DEFAULT_CONFIDENCE,
    Indicator,
    normalise,
    normalise_confidence,
    normalise_time,
)
from soc_core.errors import ParseError

Format = Literal["misp", "stix", "csv"]
FORMATS: tuple[Format, ...] = ("misp", "stix", "csv")
MAX_JSON_BYTES = 256 * 1024 * 1024  # one JSON file is read whole; bigger feeds come as several events
CSV_COLUMNS = ("type", "value", "confidence", "first_seen", "source")
Progress = Callable[[int], None]  # called with how many units (bytes, events, objects) were just done


@dataclass(frozen=True)
class Problem:
    where: str
    reason: str

    def render(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass
class Parsed:
    """What a file gave: indicators by (type, value), what was skipped and why, duplicates."""

    indicators: dict[tuple[str, str], Indicator] = field(default_factory=dict)
    skipped: list[Problem] = field(default_factory=list)
    duplicates: int = 0

    def add(self, indicator: Indicator) -> None:
        known = self.indicators.get(indicator.key)
        if known is None:
            self.indicators[indicator.key] = indicator
            return
        self.duplicates += 1
        self.indicators[indicator.key] = merge(known, indicator)

    def skip(self, where: str, reason: str) -> None:
        self.skipped.append(Problem(where, reason))


def merge(old: Indicator, new: Indicator) -> Indicator:
    """One indicator seen twice: the higher confidence, the earliest first and latest last seen."""
    firsts = [stamp for stamp in (old.first_seen, new.first_seen) if stamp]
    lasts = [stamp for stamp in (old.last_seen, new.last_seen) if stamp]
    return replace(
        old,
        confidence=max(old.confidence, new.confidence),
        first_seen=min(firsts) if firsts else None,
        last_seen=max(lasts) if lasts else None,
        source=old.source or new.source,
    )


def format_named(text: str) -> Format:
    """``text`` as a format name; :class:`ParseError` if it is none."""
    for known in FORMATS:
        if known == text:
            return known
    raise ParseError(f"unknown format {text!r}", where="format", hint=f"use one of {', '.join(FORMATS)}")


def detect_format(path: Path) -> Format:
    """The format of ``path`` from its name and, for JSON, its first bytes."""
    if not path.exists():
        raise ParseError("no such file or directory", where=str(path))
    if path.is_dir() or path.name == "manifest.json":
        return "misp"
    if path.suffix.lower() in (".csv", ".txt", ".tsv"):
        return "csv"
    if path.suffix.lower() == ".json":
        with path.open("rb") as handle:
            head = handle.read(4096).decode("utf-8", "replace")
        if re.search(r'"type"\s*:\s*"bundle"', head):
            return "stix"
        if '"Event"' in head or '"response"' in head:
            return "misp"
    raise ParseError("cannot tell the format of this file", where=str(path), hint="pass --format misp, stix or csv")


def parse_file(
    path: Path, fmt: Format | None = None, *, value_type: str | None = None, progress: Progress | None = None
) -> Parsed:
    """Parse ``path`` (a file, or a MISP feed directory) in ``fmt`` (detected if None)."""
    if not path.exists():
        raise ParseError("no such file or directory", where=str(path))
    fmt = fmt or detect_format(path)
    if fmt == "misp":
        return parse_misp(path, progress=progress)
    if fmt == "stix":
        return parse_stix(path, progress=progress)
    if fmt == "csv":
        return parse_csv(path, value_type=value_type, progress=progress)
    raise ParseError(f"unknown format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")


def _read_json(path: Path) -> Any:
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise ParseError(
            f"{size} bytes, over the {MAX_JSON_BYTES}-byte limit for one JSON file",
            where=str(path),
            hint="split the feed into several files",
        )
    try:
        return json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ParseError(f"not JSON: {exc}", where=str(path)) from exc


# MISP ----------------------------------------------------------------------------------------
# attribute type → (indicator type, which part of a "a|b" value); "domain|ip" gives both
MISP_TYPES: dict[str, tuple[tuple[str, int], ...]] = {
    "ip-src": (("ip", 0),),
    "ip-dst": (("ip", 0),),
    "ip-src|port": (("ip", 0),),
    "ip-dst|port": (("ip", 0),),
    "domain": (("domain", 0),),
    "hostname": (("domain", 0),),
    "domain|ip": (("domain", 0), ("ip", 1)),
    "hostname|port": (("domain", 0),),
    "url": (("url", 0),),
    "md5": (("md5", 0),),
    "sha1": (("sha1", 0),),
    "sha256": (("sha256", 0),),
    "filename|md5": (("md5", 1),),
    "filename|sha1": (("sha1", 1),),
    "filename|sha256": (("sha256", 1),),
}
THREAT_LEVEL_CONFIDENCE = {"1": 90, "2": 70, "3": 40, "4": DEFAULT_CONFIDENCE}


def parse_misp(path: Path, *, progress: Progress | None = None) -> Parsed:
    """A MISP feed (its directory or ``manifest.json``) or one MISP event file."""
    parsed = Parsed()
    if path.is_dir() or path.name == "manifest.json":
        directory = path if path.is_dir() else path.parent
        manifest_path = directory / "manifest.json"
        if not manifest_path.is_file():
            raise ParseError("a MISP feed directory needs a manifest.json", where=str(directory))
        manifest = _read_json(manifest_path)
        if not isinstance(manifest, dict):
            raise ParseError("manifest.json is not an object of event uuid → summary", where=str(manifest_path))
        for uuid in manifest:
            event_path = directory / f"{uuid}.json"
            if not re.fullmatch(r"[0-9a-fA-F-]{36}", str(uuid)):
                parsed.skip(f"{manifest_path}: {uuid}", "not an event uuid")
            elif not event_path.is_file():
                parsed.skip(f"{manifest_path}: {uuid}", f"the manifest lists it, but {event_path.name} is missing")
            else:
                try:
                    _misp_document(_read_json(event_path), event_path, parsed)
                except ParseError as exc:
                    parsed.skip(str(event_path), exc.message)
            if progress:
                progress(1)
        return parsed
    _misp_document(_read_json(path), path, parsed)
    if progress:
        progress(1)
    return parsed


def _misp_document(data: Any, path: Path, parsed: Parsed) -> None:
    if isinstance(data, dict) and isinstance(data.get("response"), list):
        events = [item.get("Event") if isinstance(item, dict) else None for item in data["response"]]
    elif isinstance(data, dict) and isinstance(data.get("Event"), dict):
        events = [data["Event"]]
    elif isinstance(data, dict) and isinstance(data.get("Attribute"), list):
        events = [data]
    else:
        raise ParseError('not a MISP event: expected {"Event": {...}}', where=str(path))
    for number, event in enumerate(events):
        if not isinstance(event, dict):
            parsed.skip(f"{path}: response[{number}]", "not a MISP event object")
            continue
        _misp_event(event, path, parsed)


def _misp_event(event: Mapping[str, Any], path: Path, parsed: Parsed) -> None:
    level = str(event.get("threat_level_id", "4"))
    confidence = THREAT_LEVEL_CONFIDENCE.get(level, DEFAULT_CONFIDENCE)
    org = event.get("Orgc")
    org = org if isinstance(org, dict) else {}
    source = " / ".join(str(part) for part in (org.get("name"), event.get("info")) if part)[:200] or None
    event_date = event.get("date")
    attributes = list(event.get("Attribute") or [])
    for obj in event.get("Object") or []:
        if isinstance(obj, dict):
            attributes.extend(obj.get("Attribute") or [])
    for number, attribute in enumerate(attributes):
        if not isinstance(attribute, dict):
            parsed.skip(f"{path}: attribute #{number}", "not an object")
            continue
        where = f"{path}: attribute {attribute.get('uuid') or f'#{number}'}"
        kind = str(attribute.get("type", ""))
        targets = MISP_TYPES.get(kind)
        if targets is None:
            parsed.skip(where, f"MISP type {kind!r} is not one we match (ip, domain, url, hash types)")
            continue
        if attribute.get("to_ids") in (False, "0", 0):
            parsed.skip(where, "to_ids is false: not meant for detection")
            continue
        if attribute.get("deleted") in (True, "1", 1):
            parsed.skip(where, "deleted")
            continue
        value = str(attribute.get("value", ""))
        pieces = value.split("|")
        if "|" in kind and len(pieces) != 2:
            parsed.skip(where, f"value {value!r} should be two parts joined by '|' for type {kind}")
            continue
        try:
            first = normalise_time(attribute.get("first_seen")) or normalise_time(event_date)
            last = normalise_time(attribute.get("last_seen")) or normalise_time(attribute.get("timestamp"))
        except ValueError as exc:
            parsed.skip(where, str(exc))
            continue
        for target, part in targets:
            try:
                indicator_type, normal = normalise(target, pieces[part])
            except ValueError as exc:
                parsed.skip(where, str(exc))
                continue
            parsed.add(Indicator(indicator_type, normal, confidence, first, last or first, source))


# STIX 2.1 ------------------------------------------------------------------------------------
STIX_PATHS: dict[str, str] = {
    "ipv4-addr:value": "ip",
    "ipv6-addr:value": "ip",
    "domain-name:value": "domain",
    "url:value": "url",
    "file:hashes.'sha-256'": "sha256",
    "file:hashes.sha256": "sha256",
    "file:hashes.'sha256'": "sha256",
    "file:hashes.md5": "md5",
    "file:hashes.'md5'": "md5",
    "file:hashes.'sha-1'": "sha1",
    "file:hashes.sha1": "sha1",
    "file:hashes.'sha1'": "sha1",
}
PATTERN_TOKEN = re.compile(
    r"\s*(?:(?P<open>\[)|(?P<close>\])|(?P<or>OR\b)"
    r"|(?P<path>[a-z0-9-]+:[A-Za-z0-9_.'-]+)\s*=\s*'(?P<value>(?:[^'\\]|\\.)*)')"
)


def parse_stix_pattern(pattern: str) -> list[tuple[str, str]]:
    """``(indicator type, raw value)`` of each comparison of a simple pattern; ``ValueError``
    naming what is not simple."""
    found: list[tuple[str, str]] = []
    position, depth = 0, 0
    text = pattern.strip()
    while position < len(text):
        token = PATTERN_TOKEN.match(text, position)
        if token is None:
            rest = text[position:].strip()
            raise ValueError(f"pattern part {rest[:60]!r} is not an '=' comparison joined by OR")
        if token.group("open"):
            depth += 1
        elif token.group("close"):
            depth -= 1
        elif token.group("path"):
            path = token.group("path")
            kind = STIX_PATHS.get(path.lower())
            if kind is None:
                raise ValueError(f"object path {path!r} is not one we match")
            found.append((kind, re.sub(r"\\(.)", r"\1", token.group("value"))))
        position = token.end()
        if depth not in (0, 1):
            raise ValueError("nested or unbalanced brackets")
    if depth != 0 or not found:
        raise ValueError("no complete [ ... ] comparison")
    return found


def parse_stix(path: Path, *, progress: Progress | None = None) -> Parsed:
    data = _read_json(path)
    if not isinstance(data, dict) or data.get("type") != "bundle" or not isinstance(data.get("objects"), list):
        raise ParseError('not a STIX 2.1 bundle: expected {"type": "bundle", "objects": [...]}', where=str(path))
    parsed = Parsed()
    objects = data["objects"]
    names = {
        obj.get("id"): obj.get("name")
        for obj in objects
        if isinstance(obj, dict) and obj.get("type") == "identity" and obj.get("name")
    }
    for number, obj in enumerate(objects):
        if progress:
            progress(1)
        if not isinstance(obj, dict):
            parsed.skip(f"{path}: objects[{number}]", "not an object")
            continue
        where = f"{path}: {obj.get('id') or f'objects[{number}]'}"
        if obj.get("type") != "indicator":
            if obj.get("type") not in ("identity", "marking-definition", "relationship", "extension-definition"):
                parsed.skip(where, f"a {obj.get('type')!r} object carries no indicator we load")
            continue
        if obj.get("pattern_type", "stix") != "stix":
            parsed.skip(where, f"pattern_type {obj.get('pattern_type')!r} (only stix patterns are read)")
            continue
        if obj.get("revoked") is True:
            parsed.skip(where, "revoked")
            continue
        try:
            comparisons = parse_stix_pattern(str(obj.get("pattern", "")))
            confidence = normalise_confidence(obj.get("confidence"))
            first = normalise_time(obj.get("valid_from")) or normalise_time(obj.get("created"))
            last = normalise_time(obj.get("modified")) or first
        except ValueError as exc:
            parsed.skip(where, str(exc))
            continue
        source = names.get(obj.get("created_by_ref")) or obj.get("name") or data.get("id")
        for kind, raw in comparisons:
            try:
                indicator_type, normal = normalise(kind, raw)
            except ValueError as exc:
                parsed.skip(where, str(exc))
                continue
            parsed.add(
                Indicator(indicator_type, normal, confidence, first, last, str(source)[:200] if source else None)
            )
    return parsed


# CSV -----------------------------------------------------------------------------------------
def _csv_lines(path: Path, progress: Progress | None) -> Iterator[tuple[int, str]]:
    try:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if progress:
                    progress(len(raw))
                try:
                    yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError as exc:
                    yield number, "\x00" + str(exc)  # reported by the caller as a bad line
    except OSError as exc:
        raise ParseError(f"cannot read: {exc.strerror}", where=str(path)) from exc


def parse_csv(path: Path, *, value_type: str | None = None, progress: Progress | None = None) -> Parsed:
    parsed = Parsed()
    columns: tuple[str, ...] | None = ("value",) if value_type else None
    for number, line in _csv_lines(path, progress):
        where = f"{path}:{number}"
        if line.startswith("\x00"):
            parsed.skip(where, f"not UTF-8: {line[1:]}")
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            row = [cell.strip() for cell in next(csv.reader(io.StringIO(line)))]
        except (csv.Error, StopIteration) as exc:
            parsed.skip(where, f"not a CSV line: {exc}")
            continue
        lowered = [cell.lower() for cell in row]
        if columns is None or (number == 1 and "value" in lowered):
            if "value" in lowered:  # a header line names the columns
                unknown = [cell for cell in lowered if cell not in CSV_COLUMNS]
                if unknown or (value_type is None and "type" not in lowered):
                    raise ParseError(
                        f"header names unknown columns {unknown}" if unknown else "header has no 'type' column",
                        where=where,
                        hint=f"use {','.join(CSV_COLUMNS)} (or one value column with --type)",
                    )
                columns = tuple(lowered)
                continue
            columns = CSV_COLUMNS
        record = dict(zip(columns, row, strict=False))
        if len(row) > len(columns):
            parsed.skip(where, f"{len(row)} columns, expected at most {len(columns)} ({','.join(columns)})")
            continue
        kind = record.get("type") or value_type
        if not kind:
            parsed.skip(where, "no type (give a type column or --type)")
            continue
        try:
            indicator_type, normal = normalise(kind, record.get("value", ""))
            confidence = normalise_confidence(record.get("confidence"))
            first = normalise_time(record.get("first_seen"))
        except ValueError as exc:
            parsed.skip(where, str(exc))
            continue
        parsed.add(Indicator(indicator_type, normal, confidence, first, first, record.get("source") or None))
    return parsed


__all__ = [
    "FORMATS",
    "Format",
    "Parsed",
    "Problem",
    "detect_format",
    "format_named",
    "merge",
    "parse_csv",
    "parse_file",
    "parse_misp",
    "parse_stix",
    "parse_stix_pattern",
]
