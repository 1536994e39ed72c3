"""Syslog lines: RFC 3164 (BSD, as written to /var/log/*) and RFC 5424, read leniently.

Accepted RFC 3164 shapes, each with an optional ``<PRI>``::

    Feb  5 10:00:00 host tag[pid]: message        classic file format
    Feb 05 2024 10:00:00.123 host tag: message    with a year and/or fractions (network gear)
    2024-02-05T10:00:00.123+07:00 host tag: msg   rsyslog's high-precision file format
    Feb  5 10:00:00 tag[pid]: message             no hostname (local senders)

A BSD timestamp has no year: the current year is assumed, and the previous one when that
would put the line more than a day in the future (December lines read in January). Timestamps
without a zone are in the input's configured zone. Like rsyslog, control characters in the
message are escaped as ``#ooo`` (octal) so they cannot forge lines or terminal escapes.

Parse status (``log.parse_status``, see :data:`PARSE_STATUS`):

* ``ok`` — the header was read as it is (a missing ``<PRI>`` is normal in files);
* ``partial`` — the line is syslog but part of its header was unusable, so a default stands in
  and ``error.message`` says what: a priority out of 0-191 (left out), a missing timestamp after
  a valid ``<PRI>`` (RFC 3164 4.3.2: the receive time, the rest is the message), an impossible
  date, an RFC 5424 ``-`` or non-ISO timestamp (the receive time), broken RFC 5424 structured
  data (left out, the rest is the message);
* ``failed`` — no syslog header at all (no valid ``<PRI>`` and no timestamp): :class:`ParseError`,
  and the pipeline keeps the line as a ``parse_failure`` event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sensors.parsers.context import PARSE_STATUS, Fields, ParseContext
from soc_core.errors import ParseError

DATASET = "system.syslog"

FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "security", "console", "solaris-cron",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
MAX_TAG_LENGTH = 256

MAX_REMEMBERED_TIMES = 4096  # timestamp texts one ParseContext remembers (see ParseContext.times)
_PRI = re.compile(r"<(\d{1,3})>")
_RFC5424 = re.compile(r"<(\d{1,3})>(\d{1,2}) (\S+) (\S+) (\S+) (\S+) (\S+)(?: (.*))?$", re.DOTALL)
_BSD_TIME = re.compile(
    r"(?P<mon>[A-Za-z]{3}) +(?P<day>\d{1,2}) +(?:(?P<year>\d{4}) +)?"
    r"(?P<h>\d{1,2}):(?P<m>\d{2}):(?P<s>\d{2})(?:\.(?P<frac>\d{1,9}))?(?=\s|$)"
)
_ISO_TIME = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d{1,9}))?"
    r"(?P<zone>Z|[+-]\d{2}:?\d{2})?(?=\s|$)"
)
_TAG = re.compile(rf"(?P<tag>[^\s\[\]:]{{1,{MAX_TAG_LENGTH}}})(?:\[(?P<pid>[^\]\s]{{0,32}})\])?:(?:\s|$)")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass
class SyslogMessage:
    """The header fields of one syslog line, before they become ECS fields."""

    timestamp: datetime
    message: str
    hostname: str | None = None
    appname: str | None = None
    procid: str | None = None
    priority: int | None = None
    version: int | None = None
    msgid: str | None = None
    structured_data: dict[str, dict[str, str]] = field(default_factory=dict)
    issues: list[str] = field(default_factory=list)  # header parts replaced by defaults (partial)

    def fields(self, dataset: str = DATASET) -> Fields:
        out: Fields = {"@timestamp": self.timestamp, "event.dataset": dataset}
        out["message"] = self.message
        out[PARSE_STATUS] = "partial" if self.issues else "ok"
        if self.issues:
            out["error.message"] = "; ".join(self.issues)
        if self.hostname:
            out["host.name"] = self.hostname
            out["log.syslog.hostname"] = self.hostname
        if self.appname:
            out["process.name"] = self.appname
            out["log.syslog.appname"] = self.appname
        if self.procid:
            out["log.syslog.procid"] = self.procid
            if self.procid.isdigit() and len(self.procid) <= 10:
                out["process.pid"] = int(self.procid)
        if self.priority is not None:
            facility, severity = divmod(self.priority, 8)
            out["log.syslog.priority"] = self.priority
            out["log.syslog.facility.code"] = facility
            out["log.syslog.facility.name"] = FACILITIES[facility]
            out["log.syslog.severity.code"] = severity
            out["log.syslog.severity.name"] = SEVERITIES[severity]
            out["log.level"] = SEVERITIES[severity]
        if self.version is not None:
            out["log.syslog.version"] = str(self.version)
        if self.msgid:
            out["log.syslog.msgid"] = self.msgid
        if self.structured_data:
            out["log.syslog.structured_data"] = self.structured_data
        return out


def parse(line: str, ctx: ParseContext) -> Fields:
    """ECS fields of a syslog line; :class:`ParseError` when it has no syslog header."""
    return parse_message(line, ctx).fields()


def parse_message(line: str, ctx: ParseContext) -> SyslogMessage:
    """The header and message of an RFC 5424 or RFC 3164 line."""
    line = line.rstrip("\r\n")
    if _RFC5424.match(line):
        return _parse_5424(line, ctx)
    return _parse_3164(line, ctx)


def escape_control(text: str) -> str:
    """``#ooo`` for control characters other than tab, as rsyslog writes them."""
    if text.isprintable():  # the usual case, checked in C: no control characters at all
        return text
    return _CONTROL.sub(lambda m: f"#{ord(m.group()):03o}", text)


def _priority(text: str, issues: list[str]) -> int | None:
    value = int(text)
    if value > 191:
        issues.append(f"syslog priority <{value}> is out of range 0-191; left out")
        return None
    return value


def _parse_3164(line: str, ctx: ParseContext) -> SyslogMessage:
    rest = line
    priority = None
    issues: list[str] = []
    pri = _PRI.match(rest)
    if pri:
        priority = _priority(pri.group(1), issues)
        rest = rest[pri.end() :]
    stamp = _BSD_TIME.match(rest)
    if stamp is not None and stamp.group("mon").lower() not in MONTHS:
        stamp = None  # "Foo  5 10:00:00" is not a timestamp at all
    stamp = stamp or _ISO_TIME.match(rest)
    if stamp is None:
        if priority is None:
            raise ParseError("no syslog timestamp ('Mmm dd hh:mm:ss' or ISO 8601) and no valid <PRI>")
        # RFC 3164 4.3.2: a valid PRI without a TIMESTAMP: the receive time; the rest is the message
        issues.append("no syslog timestamp; the receive time was used")
        return SyslogMessage(timestamp=ctx.now, message=escape_control(rest), priority=priority, issues=issues)
    try:
        timestamp = _timestamp(stamp, ctx)
    except ParseError as exc:
        timestamp = ctx.now
        issues.append(f"{exc.message}; the receive time was used")
    rest = rest[stamp.end() :].lstrip(" ")
    hostname = None
    tag = _TAG.match(rest)
    if not tag:
        # The first word is the hostname unless it is already the tag (local senders omit it).
        word, _, after = rest.partition(" ")
        if word:
            hostname = word
            rest = after.lstrip(" ")
            tag = _TAG.match(rest)
    appname = procid = None
    if tag:
        appname = tag.group("tag")
        procid = tag.group("pid") or None
        rest = rest[tag.end() :]
    return SyslogMessage(
        timestamp=timestamp,
        message=escape_control(rest),
        hostname=hostname,
        appname=appname,
        procid=procid,
        priority=priority,
        issues=issues,
    )


def _timestamp(match: re.Match[str], ctx: ParseContext) -> datetime:
    """The moment a BSD or ISO timestamp match names; :class:`ParseError` if it cannot exist."""
    text = match.group()
    known = ctx.times.get(text)
    if known is not None:
        return known
    if match.re is _BSD_TIME:
        moment = _bsd_timestamp(match, ctx)
    else:
        moment = _iso_timestamp(match.group("date"), match.group("time"), match, ctx)
    if len(ctx.times) >= MAX_REMEMBERED_TIMES:  # a context over a long stream: start afresh
        ctx.times.clear()
    ctx.times[text] = moment
    return moment


def _bsd_timestamp(match: re.Match[str], ctx: ParseContext) -> datetime:
    month = MONTHS[match.group("mon").lower()]  # the caller checked it
    micros = _micros(match.group("frac"))
    parts = (int(match.group("day")), int(match.group("h")), int(match.group("m")))
    day, hour, minute = parts
    second = int(match.group("s"))
    try:
        if match.group("year"):
            year = int(match.group("year"))
            return datetime(year, month, day, hour, minute, second, micros, tzinfo=ctx.tz)
        return _infer_year(month, (day, hour, minute, second, micros), ctx)
    except ValueError as exc:
        raise ParseError(f"invalid syslog timestamp {match.group()!r}: {exc}") from exc


_DAY = timedelta(days=1)


def _infer_year(month: int, clock: tuple[int, int, int, int, int], ctx: ParseContext) -> datetime:
    """The latest year in which ``month``/day at that time is not more than a day ahead."""
    now = ctx.local_now
    limit = now + _DAY
    last_error: ValueError | None = None
    # Feb 29 only exists in leap years: walk back until the date exists and is not in the future.
    for year in range(now.year, now.year - 8, -1):
        try:
            moment = datetime(year, month, *clock, tzinfo=ctx.tz)
        except ValueError as exc:
            last_error = exc
            continue
        if moment <= limit:
            return moment
    raise last_error or ValueError("no year fits")


def _iso_timestamp(date: str, time: str, match: re.Match[str], ctx: ParseContext) -> datetime:
    zone = match.group("zone")
    text = f"{date}T{time}.{_micros(match.group('frac')):06d}"
    if zone:
        text += "+00:00" if zone == "Z" else zone
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ParseError(f"invalid ISO 8601 timestamp {match.group()!r}: {exc}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ctx.tz)
    return moment


def _micros(frac: str | None) -> int:
    return int((frac or "0")[:6].ljust(6, "0"))


def _nil(value: str) -> str | None:
    return None if value == "-" else value


def _parse_5424(line: str, ctx: ParseContext) -> SyslogMessage:
    match = _RFC5424.match(line)
    assert match is not None  # checked by the caller
    pri, version, stamp, host, app, procid, msgid, rest = match.groups()
    issues: list[str] = []
    priority = _priority(pri, issues)
    timestamp = ctx.now
    iso = _ISO_TIME.fullmatch(stamp)
    if stamp == "-":
        issues.append("RFC 5424 timestamp is '-'; the receive time was used")
    elif not iso:
        issues.append(f"RFC 5424 timestamp {stamp!r} is not ISO 8601; the receive time was used")
    else:
        try:
            timestamp = _iso_timestamp(iso.group("date"), iso.group("time"), iso, ctx)
        except ParseError as exc:
            issues.append(f"{exc.message}; the receive time was used")
    try:
        structured, message = _structured_data(rest or "")
    except ParseError as exc:
        structured, message = {}, rest or ""
        issues.append(f"{exc.message}; left out, the rest is the message")
    if message.startswith("\ufeff"):
        message = message[1:]
    return SyslogMessage(
        timestamp=timestamp,
        message=escape_control(message),
        hostname=_nil(host),
        appname=_nil(app),
        procid=_nil(procid),
        priority=priority,
        version=int(version),
        msgid=_nil(msgid),
        structured_data=structured,
        issues=issues,
    )


def _structured_data(text: str) -> tuple[dict[str, dict[str, str]], str]:
    """Parse ``-`` or ``[id k="v" ...]...`` at the start of ``text``; return it and the MSG."""
    if text == "-" or text.startswith("- "):
        return {}, text[2:]
    if not text.startswith("["):
        raise ParseError("RFC 5424 structured data must be '-' or start with '['")
    elements: dict[str, dict[str, str]] = {}
    pos = 0
    while pos < len(text) and text[pos] == "[":
        element, pos = _sd_element(text, pos + 1)
        elements.update(element)
    if pos < len(text):
        if text[pos] != " ":
            raise ParseError(f"RFC 5424 structured data ends badly at column {pos}")
        pos += 1
    return elements, text[pos:]


def _sd_element(text: str, pos: int) -> tuple[dict[str, dict[str, str]], int]:
    end = len(text)
    start = pos
    while pos < end and text[pos] not in " ]":
        pos += 1
    sd_id = text[start:pos]
    if not sd_id:
        raise ParseError("RFC 5424 structured data element without an id")
    params: dict[str, str] = {}
    while pos < end and text[pos] == " ":
        pos += 1
        name_start = pos
        while pos < end and text[pos] not in '= ]"':
            pos += 1
        name = text[name_start:pos]
        if not name or text[pos : pos + 2] != '="':
            raise ParseError(f"RFC 5424 structured data parameter malformed in [{sd_id}]")
        pos += 2
        value: list[str] = []
        while pos < end and text[pos] != '"':
            if text[pos] == "\\" and pos + 1 < end and text[pos + 1] in '"\\]':
                pos += 1
            value.append(text[pos])
            pos += 1
        if pos >= end:
            raise ParseError(f"RFC 5424 structured data value not closed in [{sd_id}]")
        params[name] = escape_control("".join(value))
        pos += 1
    if pos >= end or text[pos] != "]":
        raise ParseError(f"RFC 5424 structured data element [{sd_id}] not closed")
    return {sd_id: params}, pos + 1


__all__ = ["DATASET", "SyslogMessage", "escape_control", "parse", "parse_message"]
