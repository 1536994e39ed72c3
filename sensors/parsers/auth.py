"""The auth log as a whole: each line goes to the parser of its program (sshd, sudo, su,
useradd, …) and lines of other programs keep their syslog fields under ``system.auth``; lines
of an ``sshd -E`` log file (no header) go to the sshd parser.
"""

from __future__ import annotations

from collections.abc import Callable

from sensors.parsers import accounts, sshd, sudo, syslog
from sensors.parsers.context import Fields, ParseContext
from soc_core.errors import ParseError

DATASET = "system.auth"

BY_PROGRAM: dict[str, Callable[[syslog.SyslogMessage], Fields]] = {
    **dict.fromkeys(sshd.PROGRAMS, sshd.from_header),
    **dict.fromkeys(sudo.PROGRAMS, sudo.from_header),
    **dict.fromkeys(accounts.PROGRAMS, accounts.from_header),
}


def parse(line: str, ctx: ParseContext) -> Fields:
    try:
        header = syslog.parse_message(line, ctx)
    except ParseError:
        if (bare := sshd.parse_bare(line, ctx)) is not None:  # an sshd -E log file
            return bare
        raise
    if header.appname is None:
        # every auth-log line names its program; without one the "host" is a word of some other
        # log (dpkg.log's "status"), so the line is counted as not understood, not stored as auth
        raise ParseError("no program tag (like 'sshd[123]:') after the syslog header: not an auth-log line")
    specific = BY_PROGRAM.get(header.appname or "")
    if specific is not None:
        return specific(header)
    fields = header.fields(DATASET)
    fields["event.module"] = "system"
    return fields


__all__ = ["DATASET", "parse"]
