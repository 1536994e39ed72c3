"""OpenSSH server lines from the auth log (``sshd`` and, since OpenSSH 9.8, ``sshd-session``).

Logins, invalid users and disconnects become ``system.auth`` events with an ``event.action``;
other sshd lines keep their syslog fields under ``system.auth`` without an action. A line from
another program raises :class:`ParseError` so the ``auth`` parser can try the next one.
"""

from __future__ import annotations

import re

from sensors.parsers import syslog
from sensors.parsers.context import Fields, ParseContext
from soc_core.errors import ParseError

DATASET = "system.auth"
PROGRAMS = frozenset({"sshd", "sshd-session"})

_ADDRESS = r"(?P<ip>[0-9A-Fa-f:.]+) port (?P<port>\d{1,5})"
_LOGIN = re.compile(
    r"(?P<result>Accepted|Failed) (?P<method>[\w/@.-]+) for (?P<invalid>invalid user )?"
    rf"(?P<user>.*?) from {_ADDRESS}(?: ssh\d?)?(?:: (?P<detail>.*))?$"
)
_INVALID = re.compile(rf"Invalid user (?P<user>.*?) from {_ADDRESS}(?:\s.*)?$")
_DISCONNECT = re.compile(
    r"(?:Disconnected from|Connection closed by|Received disconnect from)"
    r"(?: (?:invalid|authenticating) user (?P<invalid_user>\S*)| user (?P<user>\S*))?"
    rf" {_ADDRESS}(?P<rest>.*)$"
)


def parse(line: str, ctx: ParseContext) -> Fields:
    header = syslog.parse_message(line, ctx)
    if header.appname not in PROGRAMS:
        raise ParseError(f"not an sshd line (program {header.appname!r})")
    return from_header(header)


def from_header(header: syslog.SyslogMessage) -> Fields:
    """The fields of an sshd line whose syslog header is already parsed."""
    fields = header.fields(DATASET)
    fields["event.module"] = "system"
    fields["process.name"] = "sshd"
    message = header.message
    if login := _LOGIN.match(message):
        invalid = bool(login.group("invalid"))
        method = login.group("method")
        fields.update(_auth(login, "ssh_invalid_user" if invalid else "ssh_login"))
        fields["event.outcome"] = "success" if login.group("result") == "Accepted" else "failure"
        fields["system.auth.ssh.method"] = method
        fields["system.auth.ssh.event"] = login.group("result")
        if detail := login.group("detail"):
            fields["system.auth.ssh.signature"] = detail
    elif invalid_user := _INVALID.match(message):
        fields.update(_auth(invalid_user, "ssh_invalid_user"))
        fields["event.outcome"] = "failure"
        fields["system.auth.ssh.event"] = "Invalid"
    elif disconnect := _DISCONNECT.match(message):
        user = disconnect.group("user") or disconnect.group("invalid_user")
        if user:
            fields["user.name"] = user
        fields["source.ip"] = disconnect.group("ip")
        fields["source.port"] = int(disconnect.group("port"))
        fields["event.action"] = "ssh_disconnect"
        fields["event.category"] = ["authentication", "session"]
        fields["event.type"] = ["end"]
    return fields


def _auth(match: re.Match[str], action: str) -> Fields:
    return {
        "event.action": action,
        "event.category": ["authentication"],
        "event.type": ["start"],
        "user.name": match.group("user"),
        "source.ip": match.group("ip"),
        "source.port": int(match.group("port")),
    }


__all__ = ["DATASET", "PROGRAMS", "from_header", "parse"]
