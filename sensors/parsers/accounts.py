"""Local account changes and ``su`` from the auth log: useradd, groupadd, userdel, groupdel, su.

Lines of these programs that match no known shape keep their syslog fields under
``system.auth``; lines of other programs raise :class:`ParseError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sensors.parsers import syslog
from sensors.parsers.context import Fields, ParseContext
from soc_core.errors import ParseError

DATASET = "system.auth"

_PAIRS = re.compile(r"(\w+)=([^,]*)")
_NEW_USER = re.compile(r"new user: (?P<pairs>.*)$")
_NEW_GROUP = re.compile(r"(?:new group|group added to \S+): (?P<pairs>.*)$")
_DELETE_USER = re.compile(r"delete user '(?P<name>[^']*)'")
_DELETE_GROUP = re.compile(r"(?:group '(?P<name>[^']*)' removed|removed group '(?P<other>[^']*)')")
_SU = re.compile(r"(?P<failed>FAILED SU )?\(to (?P<target>[^)]*)\) (?P<user>\S+) on (?P<tty>\S+)")
_PAM_SESSION = re.compile(
    r"pam_unix\(su(?:-l)?:session\): session opened for user (?P<target>[^\s(]+)"
    r"(?:\(uid=\d+\))? by (?P<user>[^\s(]*)"
)


def _useradd(message: str, fields: Fields) -> None:
    if match := _NEW_USER.match(message):
        pairs = dict(_PAIRS.findall(match.group("pairs")))
        _iam(fields, "user_created", ["user", "creation"])
        fields["user.name"] = pairs.get("name", "")
        _copy(pairs, fields, {"UID": "user.id", "GID": "group.id"})
        _copy(pairs, fields, {"home": "system.auth.useradd.home"})
        _copy(pairs, fields, {"shell": "system.auth.useradd.shell"})


def _groupadd(message: str, fields: Fields) -> None:
    if match := _NEW_GROUP.match(message):
        pairs = dict(_PAIRS.findall(match.group("pairs")))
        _iam(fields, "group_created", ["group", "creation"])
        fields["group.name"] = pairs.get("name", "")
        _copy(pairs, fields, {"GID": "group.id"})


def _userdel(message: str, fields: Fields) -> None:
    if match := _DELETE_USER.match(message):
        _iam(fields, "user_deleted", ["user", "deletion"])
        fields["user.name"] = match.group("name")
    elif match := _DELETE_GROUP.match(message):
        _iam(fields, "group_deleted", ["group", "deletion"])
        fields["group.name"] = match.group("name") or match.group("other")


def _su(message: str, fields: Fields) -> None:
    match = _SU.match(message) or _PAM_SESSION.match(message)
    if match is None:
        return
    fields["event.action"] = "su"
    fields["event.category"] = ["authentication", "process"]
    fields["event.type"] = ["start"]
    fields["user.name"] = match.group("user")
    fields["user.effective.name"] = match.group("target")
    failed = "failed" in match.groupdict() and match.group("failed")
    fields["event.outcome"] = "failure" if failed else "success"
    if "tty" in match.groupdict():
        fields["process.tty.name"] = match.group("tty")


HANDLERS: dict[str, Callable[[str, Fields], None]] = {
    "useradd": _useradd,
    "groupadd": _groupadd,
    "userdel": _userdel,
    "groupdel": _userdel,
    "su": _su,
}
PROGRAMS = frozenset(HANDLERS)


def parse(line: str, ctx: ParseContext) -> Fields:
    header = syslog.parse_message(line, ctx)
    if header.appname not in PROGRAMS:
        raise ParseError(f"not an account-management line (program {header.appname!r})")
    return from_header(header)


def from_header(header: syslog.SyslogMessage) -> Fields:
    """The fields of a useradd/groupadd/userdel/groupdel/su line with its header parsed."""
    fields = header.fields(DATASET)
    fields["event.module"] = "system"
    HANDLERS[header.appname or ""](header.message, fields)
    return fields


def _iam(fields: Fields, action: str, types: list[str]) -> None:
    fields["event.action"] = action
    fields["event.category"] = ["iam"]
    fields["event.type"] = types
    fields["event.outcome"] = "success"


def _copy(pairs: dict[str, str], fields: Fields, names: dict[str, str]) -> None:
    for key, target in names.items():
        if key in pairs:
            fields[target] = pairs[key].strip()


__all__ = ["DATASET", "PROGRAMS", "from_header", "parse"]
