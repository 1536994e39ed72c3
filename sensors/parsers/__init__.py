"""Line parsers: pure functions ``parse(line, ctx) -> fields`` registered by stable name.

A parser raises :class:`~soc_core.errors.ParseError` for a line it cannot understand; the
pipeline then keeps the line as a ``parse_failure`` event of the parser's dataset.
"""

from __future__ import annotations

from sensors.parsers import accounts, apache, auth, firewall, jsonl, nginx, sshd, sudo, syslog, windows
from sensors.parsers.context import Fields, ParseContext, ParseFunc, ParserSpec
from soc_core.errors import ConfigError

PARSERS: dict[str, ParserSpec] = {
    "accounts": ParserSpec("accounts", accounts.parse, accounts.DATASET),
    "apache": ParserSpec("apache", apache.parse, apache.DATASET),
    "auth": ParserSpec("auth", auth.parse, auth.DATASET),
    "firewall": ParserSpec("firewall", firewall.parse, firewall.DATASET),
    "jsonl": ParserSpec("jsonl", jsonl.parse, jsonl.DATASET),
    "nginx": ParserSpec("nginx", nginx.parse, nginx.DATASET),
    "sshd": ParserSpec("sshd", sshd.parse, sshd.DATASET),
    "sudo": ParserSpec("sudo", sudo.parse, sudo.DATASET),
    "syslog": ParserSpec("syslog", syslog.parse, syslog.DATASET),
    "windows": ParserSpec("windows", windows.parse, windows.DATASET),
}


def get_parser(name: str) -> ParserSpec:
    """The parser registered as ``name``; :class:`ConfigError` naming the choices otherwise."""
    try:
        return PARSERS[name]
    except KeyError:
        raise ConfigError(f"unknown parser {name!r}", where="parser", hint=f"use one of {sorted(PARSERS)}") from None


__all__ = ["PARSERS", "Fields", "ParseContext", "ParseFunc", "ParserSpec", "get_parser"]
