"""OpenSSH server lines from the auth log (``sshd`` and, since OpenSSH 9.8, ``sshd-session``).

Lines of an ``sshd -E`` log file (no syslog header, CRLF) are recognised by their message
(:func:`parse_bare`) and take the time they are read, flagged ``partial``.

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


# ``sshd -E FILE`` writes bare messages: no syslog header, CRLF line ends. They are known by
# how sshd's own messages start, so another program's headerless lines still fail to parse.
_BARE = re.compile(
    r"(?:Accepted |Failed |Invalid user |Disconnected from |Connection closed by |Received disconnect from "
    r"|Connection reset by |Connection from |Server listening on |Received signal |Timeout before authentication"
    r"|Disconnecting |error: |fatal: |banner exchange|Unable to negotiate |kex_exchange_identification"
    r"|Could not get shadow information|maximum authentication attempts|pam_unix\(sshd:|Postponed "
    r"|Starting session|Close session|User child is on pid|Transferred: |Bad protocol version"
    r"|Did not receive identification|Protocol major versions differ|userauth_|drop connection #)"
)
BARE_ISSUE = "no syslog header (an sshd -E log file): the time the line was read was used"


def parse(line: str, ctx: ParseContext) -> Fields:
    try:
        header = syslog.parse_message(line, ctx)
    except ParseError:
        if (bare := parse_bare(line, ctx)) is not None:
            return bare
        raise
    if header.appname not in PROGRAMS:
        raise ParseError(f"not an sshd line (program {header.appname!r})")
    return from_header(header)


def parse_bare(line: str, ctx: ParseContext) -> Fields | None:
    """The fields of a line of an ``sshd -E`` log file, or ``None`` if it is not one."""
    message = line.rstrip("\r\n")
    if not _BARE.match(message):
        return None
    header = syslog.SyslogMessage(timestamp=ctx.now, message=syslog.escape_control(message), issues=[BARE_ISSUE])
    fields = from_header(header)
    if ctx.host:  # sshd -E writes to a file on its own host: the host the sensor reads it on
        fields["host.name"] = ctx.host
    return fields


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


__all__ = ["DATASET", "PROGRAMS", "from_header", "parse", "parse_bare"]
