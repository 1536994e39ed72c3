"""nginx/Apache access and error logs, FortiGate key=value logs, Windows JSON lines."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensors.parsers import PARSERS, ParseContext
from soc_core.errors import ParseError

CTX = ParseContext(now=datetime(2024, 3, 1, tzinfo=UTC))
COMBINED = (
    '203.0.113.9 - alice [05/Feb/2024:10:00:00 +0700] "GET /cgi-bin/x.php?id=1%27--&a=b HTTP/1.1" 404 153 '
    '"https://example.gov.vn/" "sqlmap/1.7#stable (https://sqlmap.org)"'
)


@pytest.mark.parametrize("server", ["nginx", "apache"])
def test_combined_access_line(server: str) -> None:
    fields = PARSERS[server].parse(COMBINED, CTX)
    assert fields["event.dataset"] == f"{server}.access"
    assert fields["@timestamp"] == datetime(2024, 2, 5, 3, 0, tzinfo=UTC)
    assert fields["source.ip"] == "203.0.113.9"
    assert fields["user.name"] == "alice"
    assert fields["http.request.method"] == "GET"
    assert fields["url.original"] == "/cgi-bin/x.php?id=1%27--&a=b"
    assert fields["url.path"] == "/cgi-bin/x.php"
    assert fields["url.query"] == "id=1%27--&a=b"
    assert fields["http.version"] == "1.1"
    assert fields["http.response.status_code"] == 404
    assert fields["http.response.body.bytes"] == 153
    assert fields["http.request.referrer"] == "https://example.gov.vn/"
    assert fields["user_agent.original"].startswith("sqlmap/1.7")
    assert fields["event.outcome"] == "failure"


def test_common_access_line_and_garbage_request() -> None:
    fields = PARSERS["apache"].parse('10.0.0.1 - - [05/Feb/2024:10:00:00 +0000] "GET / HTTP/1.0" 200 -', CTX)
    assert fields["http.response.status_code"] == 200
    assert "http.response.body.bytes" not in fields and "user.name" not in fields
    fields = PARSERS["nginx"].parse('10.0.0.1 - - [05/Feb/2024:10:00:00 +0000] "\\x16\\x03\\x01" 400 157 "-" "-"', CTX)
    assert fields["http.request.original"] == "\\x16\\x03\\x01"
    assert "http.request.method" not in fields and "user_agent.original" not in fields


def test_error_lines() -> None:
    nginx = PARSERS["nginx"].parse(
        '2024/02/05 10:00:00 [error] 1234#0: *99 open() "/var/www/x" failed (2: No such file), '
        'client: 198.51.100.7, server: a.gov.vn, request: "GET /x HTTP/1.1"',
        ParseContext(now=CTX.now, tz=timezone(timedelta(hours=7))),
    )
    assert nginx["event.dataset"] == "nginx.error"
    assert nginx["log.level"] == "error"
    assert nginx["source.ip"] == "198.51.100.7"
    assert nginx["@timestamp"] == datetime(2024, 2, 5, 3, 0, tzinfo=UTC)
    apache = PARSERS["apache"].parse(
        "[Mon Feb 05 10:00:00.123456 2024] [core:error] [pid 123:tid 456] [client 192.0.2.5:5678] AH00126: Invalid URI",
        CTX,
    )
    assert apache["event.dataset"] == "apache.error"
    assert (apache["log.level"], apache["log.logger"], apache["process.pid"]) == ("error", "core", 123)
    assert (apache["source.ip"], apache["source.port"]) == ("192.0.2.5", 5678)
    assert apache["message"] == "AH00126: Invalid URI"
    old = PARSERS["apache"].parse("[Mon Feb 05 10:00:00 2024] [error] [client 192.0.2.5] File does not exist", CTX)
    assert old["source.ip"] == "192.0.2.5" and old["log.level"] == "error"
    with pytest.raises(ParseError):
        PARSERS["nginx"].parse("hello world", CTX)


FORTI = (
    '<189>date=2024-02-05 time=10:00:00 devname="FGT60E" devid="FGT60E0000000001" logid="0000000013" '
    'type="traffic" subtype="forward" level="notice" vd="root" tz="+0700" srcip=10.0.0.5 srcport=52344 '
    'srcintf="port1" dstip=8.8.8.8 dstport=53 dstintf="wan1" policyid=1 policyname="LAN \\"to\\" WAN" '
    'action="deny" proto=17 service="DNS" sentbyte=60 rcvdbyte=0 duration=2'
)


def test_fortigate_traffic_line() -> None:
    fields = PARSERS["firewall"].parse(FORTI, CTX)
    assert fields["event.dataset"] == "fortinet.firewall"
    assert fields["@timestamp"] == datetime(2024, 2, 5, 3, 0, tzinfo=UTC)
    assert (fields["source.ip"], fields["source.port"]) == ("10.0.0.5", 52344)
    assert (fields["destination.ip"], fields["destination.port"]) == ("8.8.8.8", 53)
    assert fields["network.transport"] == "udp"
    assert fields["event.action"] == "deny"
    assert fields["event.outcome"] == "failure"
    assert fields["event.type"] == ["connection", "denied"]
    assert fields["rule.name"] == 'LAN "to" WAN'
    assert fields["rule.id"] == "1"
    assert fields["observer.hostname"] == "FGT60E"
    assert fields["observer.ingress.interface.name"] == "port1"
    assert fields["event.duration"] == 2_000_000_000
    assert fields["fortinet.firewall.subtype"] == "forward"
    with pytest.raises(ParseError):
        PARSERS["firewall"].parse("a=b c=d", CTX)


def test_windows_json_lines_from_winlogbeat_and_nxlog() -> None:
    beat = {
        "@timestamp": "2024-02-05T03:00:00.000Z",
        "organization": {"id": "other_tenant"},
        "host": {"name": "ws01"},
        "winlog": {
            "channel": "Security",
            "event_id": 4688,
            "computer_name": "ws01.corp",
            "record_id": 77,
            "provider_name": "Microsoft-Windows-Security-Auditing",
            "event_data": {
                "SubjectUserName": "bob",
                "SubjectDomainName": "CORP",
                "NewProcessName": "C:\\Windows\\System32\\whoami.exe",
                "NewProcessId": "0x1a4",
                "ParentProcessName": "C:\\Windows\\System32\\cmd.exe",
                "CommandLine": "whoami /all",
            },
        },
    }
    fields = PARSERS["windows"].parse(json.dumps(beat), CTX)
    assert fields["event.dataset"] == "windows.security"
    assert fields["event.code"] == "4688"
    assert fields["user.name"] == "bob" and fields["user.domain"] == "CORP"
    assert fields["process.executable"].endswith("whoami.exe")
    assert fields["process.name"] == "whoami.exe"
    assert fields["process.pid"] == 0x1A4
    assert fields["process.parent.executable"].endswith("cmd.exe")
    assert fields["process.command_line"] == "whoami /all"
    assert fields["winlog.event_data.CommandLine"] == "whoami /all"
    assert "organization.id" not in fields
    nxlog = {
        "EventTime": "2024-02-05 10:00:00",
        "Hostname": "ws02",
        "EventID": 3,
        "SourceName": "Microsoft-Windows-Sysmon",
        "Channel": "Microsoft-Windows-Sysmon/Operational",
        "RecordNumber": 5,
        "Image": "C:\\x\\evil.exe",
        "User": "CORP\\eve",
        "Protocol": "tcp",
        "Initiated": "true",
        "SourceIp": "10.0.0.8",
        "SourcePort": "50000",
        "DestinationIp": "203.0.113.1",
        "DestinationPort": "443",
    }
    fields = PARSERS["windows"].parse(json.dumps(nxlog), CTX)
    assert fields["event.dataset"] == "windows.sysmon"
    assert (fields["user.name"], fields["user.domain"]) == ("eve", "CORP")
    assert (fields["destination.ip"], fields["destination.port"]) == ("203.0.113.1", 443)
    assert fields["network.direction"] == "egress"
    assert fields["winlog.record_id"] == 5
    assert fields["@timestamp"] == datetime(2024, 2, 5, 10, 0, tzinfo=UTC)


NEW_PARSERS = ["nginx", "apache", "firewall", "windows", "jsonl"]
lines = st.one_of(
    st.text(max_size=300),
    st.builds(lambda a, b: f'{a} - - [05/Feb/2024:10:00:00 +0000] "{b}" 200 1 "-" "-"', st.text(), st.text()),
    st.builds(lambda a, b: f"date=2024-02-05 time={a} srcip={b} logid=1", st.text(), st.text()),
    st.builds(lambda a: json.dumps({"winlog": {"channel": a, "event_id": 1}}), st.text()),
    st.builds(lambda a: json.dumps({"a": {"b": a}, "@timestamp": a}), st.text()),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(NEW_PARSERS), line=lines)
def test_fuzz_new_parsers_only_raise_parse_error(name: str, line: str) -> None:
    try:
        fields = PARSERS[name].parse(line, CTX)
    except ParseError:
        return
    assert isinstance(fields, dict)
    stamp = fields.get("@timestamp")
    assert stamp is None or isinstance(stamp, datetime)
