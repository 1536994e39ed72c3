"""Parsers: real-looking auth.log / syslog lines, the registry, and a fuzz test."""

from __future__ import annotations

import importlib
import pkgutil
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sensors.parsers
from sensors.parsers import PARSERS, ParseContext, get_parser
from sensors.parsers.context import ParserSpec
from soc_core.errors import ConfigError, ParseError

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
CTX = ParseContext(now=NOW)


def auth(line: str, ctx: ParseContext = CTX) -> dict[str, object]:
    return PARSERS["auth"].parse(line, ctx)


def auth_stamp(line: str, ctx: ParseContext = CTX) -> datetime:
    stamp = auth(line, ctx)["@timestamp"]
    assert isinstance(stamp, datetime), stamp
    return stamp


def test_every_parser_module_is_registered() -> None:
    modules = {
        info.name
        for info in pkgutil.iter_modules(sensors.parsers.__path__)
        if hasattr(importlib.import_module(f"sensors.parsers.{info.name}"), "parse")
    }
    assert modules == set(PARSERS)
    for name, spec in PARSERS.items():
        module = importlib.import_module(f"sensors.parsers.{name}")
        assert spec.parse is module.parse
        assert spec.dataset == module.DATASET


def test_unknown_parser_is_a_config_error_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown parser 'iis'.*sshd"):
        get_parser("iis")


def test_ssh_accepted_publickey() -> None:
    fields = auth(
        "Feb  5 10:00:00 web01 sshd[1234]: Accepted publickey for alice from 10.0.0.5 port 52344 ssh2: RSA SHA256:Ab+c"
    )
    assert fields["@timestamp"] == datetime(2024, 2, 5, 10, 0, tzinfo=UTC)
    assert fields["event.dataset"] == "system.auth"
    assert fields["event.module"] == "system"
    assert fields["event.action"] == "ssh_login"
    assert fields["event.outcome"] == "success"
    assert fields["event.category"] == ["authentication"]
    assert fields["event.type"] == ["start"]
    assert fields["user.name"] == "alice"
    assert fields["source.ip"] == "10.0.0.5"
    assert fields["source.port"] == 52344
    assert fields["host.name"] == "web01"
    assert fields["process.name"] == "sshd"
    assert fields["process.pid"] == 1234
    assert fields["system.auth.ssh.method"] == "publickey"
    assert str(fields["message"]).startswith("Accepted publickey for alice")


@pytest.mark.parametrize(
    ("message", "action", "outcome", "user", "ip"),
    [
        ("Failed password for root from 203.0.113.9 port 4022 ssh2", "ssh_login", "failure", "root", "203.0.113.9"),
        ("Accepted password for bob from 10.1.1.1 port 1 ssh2", "ssh_login", "success", "bob", "10.1.1.1"),
        (
            "Failed password for invalid user admin from 2001:db8::7 port 22 ssh2",
            "ssh_invalid_user",
            "failure",
            "admin",
            "2001:db8::7",
        ),
        ("Invalid user oracle from 198.51.100.4 port 50022", "ssh_invalid_user", "failure", "oracle", "198.51.100.4"),
        (
            "Failed none for invalid user test from 198.51.100.4 port 1 ssh2",
            "ssh_invalid_user",
            "failure",
            "test",
            "198.51.100.4",
        ),
    ],
)
def test_ssh_logins_and_invalid_users(message: str, action: str, outcome: str, user: str, ip: str) -> None:
    fields = auth(f"Feb  5 10:00:00 web01 sshd[99]: {message}")
    assert (fields["event.action"], fields["event.outcome"]) == (action, outcome)
    assert (fields["user.name"], fields["source.ip"]) == (user, ip)


@pytest.mark.parametrize(
    "message",
    [
        "Disconnected from user alice 10.0.0.5 port 52344",
        "Disconnected from invalid user admin 10.0.0.5 port 52344 [preauth]",
        "Connection closed by authenticating user root 10.0.0.5 port 52344 [preauth]",
        "Received disconnect from 10.0.0.5 port 52344:11: disconnected by user",
    ],
)
def test_ssh_disconnects(message: str) -> None:
    fields = auth(f"Feb  5 10:00:00 web01 sshd-session[7]: {message}")
    assert fields["event.action"] == "ssh_disconnect"
    assert fields["source.ip"] == "10.0.0.5"
    assert fields["source.port"] == 52344
    assert fields["process.name"] == "sshd"


def test_other_sshd_lines_keep_syslog_fields_without_action() -> None:
    fields = auth("Feb  5 10:00:00 web01 sshd[7]: Server listening on 0.0.0.0 port 22.")
    assert fields["event.dataset"] == "system.auth"
    assert "event.action" not in fields
    assert fields["message"] == "Server listening on 0.0.0.0 port 22."


def test_sshd_parser_refuses_other_programs() -> None:
    with pytest.raises(ParseError, match="not an sshd line"):
        PARSERS["sshd"].parse("Feb  5 10:00:00 web01 cron[1]: hello", CTX)


def test_sudo_command() -> None:
    fields = auth(
        "Feb  5 10:00:00 web01 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; "
        "COMMAND=/bin/sh -c 'id ; whoami'"
    )
    assert fields["event.action"] == "sudo"
    assert fields["event.outcome"] == "success"
    assert fields["user.name"] == "alice"
    assert fields["user.effective.name"] == "root"
    assert fields["process.command_line"] == "/bin/sh -c 'id ; whoami'"
    assert fields["process.working_directory"] == "/home/alice"
    assert fields["process.name"] == "sudo"


def test_sudo_failure_reason() -> None:
    fields = auth(
        "Feb  5 10:00:00 web01 sudo:      bob : 3 incorrect password attempts ; TTY=pts/1 ; "
        "PWD=/tmp ; USER=root ; COMMAND=/usr/bin/passwd"
    )
    assert fields["event.outcome"] == "failure"
    assert fields["event.reason"] == "3 incorrect password attempts"
    assert fields["user.name"] == "bob"


def test_account_lines() -> None:
    created = auth(
        "Feb  5 10:00:00 web01 useradd[812]: new user: name=eve, UID=1002, GID=1002, "
        "home=/home/eve, shell=/bin/bash, from=/dev/pts/0"
    )
    assert (created["event.action"], created["user.name"], created["user.id"]) == ("user_created", "eve", "1002")
    group = auth("Feb  5 10:00:00 web01 groupadd[811]: new group: name=eve, GID=1002")
    assert (group["event.action"], group["group.name"]) == ("group_created", "eve")
    deleted = auth("Feb  5 10:00:00 web01 userdel[9]: delete user 'eve'")
    assert (deleted["event.action"], deleted["user.name"]) == ("user_deleted", "eve")
    su = auth("Feb  5 10:00:00 web01 su: FAILED SU (to root) alice on pts/0")
    assert (su["event.action"], su["event.outcome"], su["user.effective.name"]) == ("su", "failure", "root")


def test_plain_syslog_line() -> None:
    fields = PARSERS["syslog"].parse("<86>Feb 15 07:03:01 db2 CRON[4242]: (root) CMD (run-parts)", CTX)
    assert fields["event.dataset"] == "system.syslog"
    assert fields["process.name"] == "CRON"
    assert fields["process.pid"] == 4242
    assert fields["log.syslog.facility.name"] == "authpriv"
    assert fields["log.syslog.severity.name"] == "info"
    assert fields["host.name"] == "db2"
    assert fields["message"] == "(root) CMD (run-parts)"


def test_local_line_without_hostname() -> None:
    fields = PARSERS["syslog"].parse("Feb  5 10:00:00 kernel: [    0.000000] Linux version", CTX)
    assert fields["process.name"] == "kernel"
    assert "host.name" not in fields


def test_rfc5424_with_structured_data() -> None:
    fields = PARSERS["syslog"].parse(
        "<165>1 2024-02-05T10:00:00.123+07:00 mymachine evntslog 12 ID47 "
        '[exampleSDID@32473 iut="3" eventSource="App\\"x\\]"][meta seq="1"] \ufeffAn application event',
        CTX,
    )
    assert fields["@timestamp"] == datetime(2024, 2, 5, 3, 0, 0, 123000, tzinfo=UTC)
    assert fields["log.syslog.structured_data"] == {
        "exampleSDID@32473": {"iut": "3", "eventSource": 'App"x]'},
        "meta": {"seq": "1"},
    }
    assert fields["log.syslog.msgid"] == "ID47"
    assert fields["process.pid"] == 12
    assert fields["message"] == "An application event"


def test_rfc5424_nil_values() -> None:
    fields = PARSERS["syslog"].parse("<13>1 - - - - - -", CTX)
    assert fields["@timestamp"] == NOW
    assert fields["message"] == ""
    assert "host.name" not in fields


def test_year_rolls_back_for_december_lines_read_in_january() -> None:
    january = ParseContext(now=datetime(2025, 1, 1, 0, 5, tzinfo=UTC))
    assert auth_stamp("Dec 31 23:59:59 h sshd[1]: x", january).year == 2024
    assert auth_stamp("Jan  1 00:04:00 h sshd[1]: x", january).year == 2025
    # up to a day of clock skew ahead is still this year
    assert auth_stamp("Jan  1 23:00:00 h sshd[1]: x", january).year == 2025


def test_feb_29_goes_to_the_last_leap_year() -> None:
    ctx = ParseContext(now=datetime(2025, 3, 1, tzinfo=UTC))
    assert auth_stamp("Feb 29 10:00:00 h sshd[1]: x", ctx).year == 2024


def test_configured_timezone() -> None:
    ctx = ParseContext(now=NOW, tz=ZoneInfo("Asia/Ho_Chi_Minh"))
    stamp = auth_stamp("Feb  5 10:00:00 h sshd[1]: x", ctx)
    assert stamp.astimezone(UTC) == datetime(2024, 2, 5, 3, 0, tzinfo=UTC)


def test_control_characters_are_escaped() -> None:
    fields = PARSERS["syslog"].parse("Feb  5 10:00:00 h app: a\x1b[31mred\x00\r", CTX)
    assert fields["message"] == "a#033[31mred#000"


@pytest.mark.parametrize(
    "line",
    ["", "just some text", "Foo  5 10:00:00 h app: no such month", "<999>no header after a bad pri"],
)
def test_malformed_lines_raise_parse_error(line: str) -> None:
    for spec in PARSERS.values():
        with pytest.raises(ParseError):
            spec.parse(line, CTX)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("<999>Feb  5 10:00:00 h app: bad pri", "priority <999> is out of range 0-191; left out"),
        ("Feb 31 10:00:00 h app: no such day", "invalid syslog timestamp"),
        ("Feb  5 25:00:00 h app: no such hour", "invalid syslog timestamp"),
        ("<13>no timestamp after a valid pri", "no syslog timestamp; the receive time was used"),
        ("<13>1 yesterday h app - - - msg", "'yesterday' is not ISO 8601"),
        ("<13>1 - h app - - - msg", "timestamp is '-'"),
        ('<13>1 2024-02-05T10:00:00Z h app - - [broken sd="x msg', "structured data"),
    ],
)
def test_a_syslog_header_part_replaced_by_a_default_is_partial_with_the_reason(line: str, reason: str) -> None:
    fields = PARSERS["syslog"].parse(line, CTX)
    assert fields["log.parse_status"] == "partial"
    assert reason in fields["error.message"], fields["error.message"]
    assert "message" in fields
    for spec in PARSERS.values():  # parsers built on the syslog header never call it "ok"
        try:
            parsed = spec.parse(line, CTX)
        except ParseError:
            continue
        assert parsed.get("log.parse_status", "partial") == "partial", spec.name


def test_a_whole_syslog_header_is_ok() -> None:
    for line in (
        "Feb  5 10:00:00 h app[1]: fine",
        "<13>Feb  5 10:00:00 h app: fine",
        "<13>1 2024-02-05T10:00:00Z h a - - - m",
    ):
        fields = PARSERS["syslog"].parse(line, CTX)
        assert fields["log.parse_status"] == "ok" and "error.message" not in fields, fields


lines = st.one_of(
    st.text(max_size=300),
    st.builds(
        lambda pri, head, body: f"{pri}{head}{body}",
        st.sampled_from(["", "<13>", "<999>", "<0>1 ", "<34>1 - - - - - "]),
        st.sampled_from(["Feb  5 10:00:00 h ", "2024-02-05T10:00:00Z h ", "Feb 29 ", "Dec 31 23:59:59 "]),
        st.text(max_size=200),
    ),
    st.builds(
        lambda prog, body: f"Feb  5 10:00:00 web01 {prog}: {body}",
        st.sampled_from(["sshd[1]", "sudo", "su", "useradd[2]", "groupadd", "userdel"]),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=200),
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line=lines)
def test_fuzz_every_parser_returns_fields_or_parse_error(line: str) -> None:
    spec: ParserSpec
    for spec in PARSERS.values():
        try:
            fields = spec.parse(line, CTX)
        except ParseError:
            continue
        assert isinstance(fields["@timestamp"], datetime)
        assert isinstance(fields["message"], str)
