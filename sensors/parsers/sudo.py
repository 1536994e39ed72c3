"""sudo command lines from the auth log.

``alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id -u`` becomes a
``sudo`` event for ``alice`` running as ``root``; a reason before the first ``KEY=`` (``3
incorrect password attempts``, ``user NOT in sudoers``, ``command not allowed``) makes it a
failure. Other sudo lines (its PAM session lines) keep their syslog fields under
``system.auth``; lines of other programs raise :class:`ParseError`.
"""

from __future__ import annotations

import re

from sensors.parsers import syslog
from sensors.parsers.context import Fields, ParseContext
from soc_core.errors import ParseError

DATASET = "system.auth"
PROGRAMS = frozenset({"sudo"})

_LINE = re.compile(r"\s*(?P<user>[^\s:]+) : (?P<body>.*)$")
_KEY = re.compile(r"(?P<key>[A-Z]+)=")
_TARGETS = {"TTY": "process.tty.name", "PWD": "process.working_directory"}


def parse(line: str, ctx: ParseContext) -> Fields:
    header = syslog.parse_message(line, ctx)
    if header.appname not in PROGRAMS:
        raise ParseError(f"not a sudo line (program {header.appname!r})")
    return from_header(header)


def from_header(header: syslog.SyslogMessage) -> Fields:
    """The fields of a sudo line whose syslog header is already parsed."""
    fields = header.fields(DATASET)
    fields["event.module"] = "system"
    match = _LINE.match(header.message)
    if not match:
        return fields
    values, reason = _key_values(match.group("body"))
    fields["event.action"] = "sudo"
    fields["event.category"] = ["process"]
    fields["event.type"] = ["start"]
    fields["user.name"] = match.group("user")
    fields["user.effective.name"] = values.get("USER", "root")
    fields["event.outcome"] = "failure" if reason else "success"
    if reason:
        fields["event.reason"] = reason
    if "COMMAND" in values:
        fields["process.command_line"] = values["COMMAND"]
        fields["system.auth.sudo.command"] = values["COMMAND"]
    for key, target in _TARGETS.items():
        if key in values:
            fields[target] = values[key]
    return fields


def _key_values(body: str) -> tuple[dict[str, str], str | None]:
    """``KEY=value ; KEY=value ; COMMAND=rest of line`` and the leading failure reason, if any."""
    values: dict[str, str] = {}
    reason = None
    parts = body.split(" ; ")
    for index, part in enumerate(parts):
        key = _KEY.match(part)
        if key is None:
            if index == 0:
                reason = part.strip() or None
            continue
        if key.group("key") == "COMMAND":
            # The command may itself contain " ; ": it runs to the end of the line.
            values["COMMAND"] = " ; ".join([part[key.end() :], *parts[index + 1 :]])
            break
        values[key.group("key")] = part[key.end() :]
    return values, reason


__all__ = ["DATASET", "PROGRAMS", "from_header", "parse"]
