"""Web server logs: nginx and Apache access (combined and common) and error logs.

The access formats of both servers are the same (NCSA common, plus referrer and user agent in
"combined"), so the server is chosen by the registered parser (:mod:`.nginx`, :mod:`.apache`),
which calls :func:`parse_line` with its name. Error logs differ and are recognised by shape::

    nginx   2024/02/05 10:00:00 [error] 1234#5678: *9 open() "/x" failed (2: …), client: 1.2.3.4, …
    apache  [Mon Feb 05 10:00:00.123456 2024] [core:error] [pid 12:tid 34] [client 1.2.3.4:5] AH00126: …
            [Mon Feb 05 10:00:00 2024] [error] [client 1.2.3.4] File does not exist: …   (2.2)

Access lines give ``<server>.access`` events with ``source.ip``, ``user.name``,
``http.request.method``, ``url.original``/``path``/``query``, ``http.version``,
``http.response.status_code``, ``http.response.body.bytes``, ``http.request.referrer`` and
``user_agent.original``; error lines give ``<server>.error`` events with ``log.level`` and
``message``. Control characters are escaped as in syslog lines.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from datetime import UTC, datetime, timedelta, timezone

from sensors.parsers.context import Fields, ParseContext
from sensors.parsers.syslog import MONTHS, escape_control
from soc_core.errors import ParseError

# Quoted fields are "unrolled" (runs of plain characters between escapes, not one alternation
# per character): the same language, matched about 5x faster.
_QUOTED = r'[^"\\]*(?:\\.[^"\\]*)*'
_ACCESS = re.compile(
    r"(?P<ip>\S+) (?P<ident>\S+) (?P<user>\S+) \[(?P<time>[^\]]{1,64})\] "
    rf'"(?P<request>{_QUOTED})" (?P<status>\d{{3}}|-) (?P<bytes>\d+|-)'
    rf'(?: "(?P<referrer>{_QUOTED})" "(?P<agent>{_QUOTED})")?(?P<rest>.*)$',
    re.DOTALL,
)
_CLF_TIME = re.compile(r"(\d{2})/([A-Za-z]{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-]\d{4})$")
_REQUEST = re.compile(r"(?P<method>[A-Za-z_-]{1,32}) (?P<target>\S+)(?: HTTP/(?P<version>[\d.]{1,5}))?$")
_NGINX_ERROR = re.compile(
    r"(?P<time>\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) \[(?P<level>\w+)\] (?P<pid>\d+)#(?P<tid>\d+): "
    r"(?:\*(?P<cid>\d+) )?(?P<message>.*)$",
    re.DOTALL,
)
_APACHE_ERROR = re.compile(
    r"\[(?P<time>[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d{2}:\d{2}:\d{2}(?:\.\d{1,6})? \d{4})\] "
    r"\[(?:(?P<module>[\w.-]+):)?(?P<level>\w+)\](?: \[pid (?P<pid>\d+)(?::tid (?P<tid>\d+))?\])?"
    r"(?: \[client (?P<client>[^\]]+)\])?\s?(?P<message>.*)$",
    re.DOTALL,
)
_NGINX_CLIENT = re.compile(r", client: (?P<ip>[0-9A-Fa-f:.]+)")


_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def decoded_url(target: str) -> str | None:
    """``target`` percent-decoded twice (``+`` as a blank), or None when that changes nothing.

    Stored as ``url.decoded`` beside ``url.original``, so rules test attack syntax once in plain
    form instead of spelling every encoding (``%27``, ``%2527``, ``+``). Control characters
    become blanks: SQL and shells read them as blanks, and they would break the log line.
    """
    if "%" not in target and "+" not in target:
        return None
    once = urllib.parse.unquote_plus(target, errors="replace")
    text = _CONTROL_CHARS.sub(" ", urllib.parse.unquote_plus(once, errors="replace") if "%" in once else once)
    return text if text != target else None


def parse_line(line: str, ctx: ParseContext, server: str) -> Fields:
    """An access or error line of ``server`` (``nginx`` or ``apache``)."""
    line = line.rstrip("\r\n")
    if match := _ACCESS.match(line):
        return _access(match, server)
    if (match := _NGINX_ERROR.match(line)) or (match := _APACHE_ERROR.match(line)):
        return _error(match, ctx, server)
    raise ParseError(f"not a {server} access or error log line")


def _access(match: re.Match[str], server: str) -> Fields:
    ip, user, time, request, status, size, referrer, agent = match.group(
        "ip", "user", "time", "request", "status", "bytes", "referrer", "agent"
    )
    fields: Fields = {
        "@timestamp": _clf_time(time),
        "event.dataset": f"{server}.access",
        "event.module": server,
        "event.category": ["web"],
        "event.type": ["access"],
        "source.ip": ip,
    }
    if user != "-":
        fields["user.name"] = escape_control(user)
    request = escape_control(request)
    fields["http.request.original"] = request
    if parsed := _REQUEST.match(request):
        method, target, version = parsed.group("method", "target", "version")
        fields["http.request.method"] = method.upper()
        fields["url.original"] = target
        if (decoded := decoded_url(target)) is not None:
            fields["url.decoded"] = decoded
        path, sep, query = target.partition("?")
        fields["url.path"] = path
        if sep:
            fields["url.query"] = query
        if version:
            fields["http.version"] = version
    if status != "-":
        code = int(status)
        fields["http.response.status_code"] = code
        fields["event.outcome"] = "failure" if code >= 400 else "success"
    if size != "-":
        fields["http.response.body.bytes"] = int(size)
    if referrer and referrer != "-":
        fields["http.request.referrer"] = escape_control(referrer)
    if agent and agent != "-":
        fields["user_agent.original"] = escape_control(agent)
    return fields


@functools.lru_cache(maxsize=1024)
def _clf_time(text: str) -> datetime:
    """``05/Feb/2024:10:00:00 +0700`` → that instant in UTC.

    One object per distinct time text (cached: the lines of one second share it, and so its
    formatting); the rest of a minute is worked out once per minute and zone.
    """
    if len(text) == 26 and text[17] == ":" and text[20] == " " and text[18:20].isdigit():
        minute = _clf_minute(text[:17], text[21:])
        second = int(text[18:20])
        if minute is not None and second < 60:
            return minute.replace(second=second)
    return _clf_parse(text)


@functools.lru_cache(maxsize=256)
def _clf_minute(head: str, zone: str) -> datetime | None:
    """``05/Feb/2024:10:00`` and ``+0700`` → that minute in UTC; ``None`` if either is bad."""
    try:
        return _clf_parse(f"{head}:00 {zone}")
    except ParseError:
        return None


def _clf_parse(text: str) -> datetime:
    found = _CLF_TIME.match(text)
    month = MONTHS.get(found.group(2).lower()) if found else None
    if not found or month is None:
        raise ParseError(f"bad access log time [{text}] (expected dd/Mmm/yyyy:hh:mm:ss +zzzz)")
    day, _, year, hour, minute, second, zone = found.groups()
    try:
        local = datetime(int(year), month, int(day), int(hour), int(minute), int(second), tzinfo=_zone(zone))
    except ValueError as exc:
        raise ParseError(f"bad access log time [{text}]: {exc}") from exc
    return local.astimezone(UTC)


@functools.lru_cache(maxsize=64)
def _zone(text: str) -> timezone:
    """``+0700`` → a fixed offset (a handful of zones per log, so cached)."""
    hours, minutes = int(text[1:3]), int(text[3:5])
    if minutes > 59:
        raise ValueError(f"bad UTC offset {text}")
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if text[0] == "-" else offset)


def _error(match: re.Match[str], ctx: ParseContext, server: str) -> Fields:
    text = match.group("time")
    try:
        if "/" in text:
            moment = datetime.strptime(text, "%Y/%m/%d %H:%M:%S")
        else:
            moment = datetime.strptime(text, "%a %b %d %H:%M:%S.%f %Y" if "." in text else "%a %b %d %H:%M:%S %Y")
    except ValueError as exc:
        raise ParseError(f"bad error log time {text!r}: {exc}") from exc
    message = escape_control(match.group("message"))
    fields: Fields = {
        "@timestamp": moment.replace(tzinfo=ctx.tz),
        "event.dataset": f"{server}.error",
        "event.module": server,
        "event.category": ["web"],
        "event.type": ["error"],
        "log.level": match.group("level").lower(),
        "message": message,
    }
    if match.group("pid"):
        fields["process.pid"] = int(match.group("pid"))
    if match.group("tid"):
        fields["process.thread.id"] = int(match.group("tid"))
    groups = match.groupdict()
    if groups.get("module"):
        fields["log.logger"] = groups["module"]
    client = groups.get("client")
    if client:
        ip, _, port = client.rpartition(":") if client.count(":") == 1 else (client, "", "")
        fields["source.ip"] = ip
        if port.isdigit():
            fields["source.port"] = int(port)
    elif nginx_client := _NGINX_CLIENT.search(message):
        fields["source.ip"] = nginx_client.group("ip")
    return fields


__all__ = ["parse_line"]
