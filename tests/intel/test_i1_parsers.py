"""Item 1 of the intel brief: MISP feed/event, STIX 2.1 and CSV files → normalised indicators;
every bad line or object reported with file:line or its id, the rest still loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from intel.indicators import normalise
from intel.parsers import detect_format, parse_csv, parse_file, parse_stix_pattern
from soc_core.errors import ParseError
from tests.intel.support import DATA


def skipped(parsed: object) -> dict[str, str]:
    return {problem.where: problem.reason for problem in parsed.skipped}  # type: ignore[attr-defined]


def test_i1_misp_feed_manifest_and_events() -> None:
    parsed = parse_file(DATA / "misp_feed")
    event_file = DATA / "misp_feed" / "5f5e3c1a-7b1c-4d2e-9a41-0c6f2f1b7a01.json"
    assert set(parsed.indicators) == {
        ("ip", "203.0.113.7"),
        ("ip", "198.51.100.0/24"),  # ip-dst|port: the address part
        ("domain", "evil-login.example"),  # lower case, trailing dot gone
        ("sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),  # filename|sha256 in an Object
    }
    assert parsed.duplicates == 1  # 203.0.113.7 twice
    ip = parsed.indicators[("ip", "203.0.113.7")]
    assert ip.confidence == 90 and ip.source == "VNCERT / SSH brute force sources"  # threat_level_id 1
    assert ip.first_seen == "2026-11-30T00:00:00.000Z" and ip.last_seen == "2026-11-30T00:01:40.000Z"
    assert parsed.indicators[("domain", "evil-login.example")].first_seen == "2026-11-01T08:00:00.000Z"
    reasons = skipped(parsed)
    assert "not one we match" in reasons[f"{event_file}: attribute a0000000-0000-4000-8000-000000000004"]
    assert "192.0.2.300" in reasons[f"{event_file}: attribute a0000000-0000-4000-8000-000000000005"]
    assert "to_ids is false" in reasons[f"{event_file}: attribute a0000000-0000-4000-8000-000000000006"]
    assert "MD5" in reasons[f"{event_file}: attribute a0000000-0000-4000-8000-000000000011"]  # 31 hex digits
    manifest = DATA / "misp_feed" / "manifest.json"
    assert "is missing" in reasons[f"{manifest}: 5f5e3c1a-7b1c-4d2e-9a41-0c6f2f1b7a02"]
    assert len(parsed.skipped) == 5
    assert parse_file(manifest).indicators.keys() == parsed.indicators.keys()  # the manifest path works too


def test_i1_misp_single_event() -> None:
    parsed = parse_file(DATA / "misp_event.json")
    assert set(parsed.indicators) == {
        ("url", "https://phish.example/login?x=1"),
        ("domain", "phish.example"),
        ("ip", "2001:db8::5"),  # domain|ip gives both
    }
    assert all(indicator.confidence == 40 for indicator in parsed.indicators.values())  # threat level 3
    assert list(skipped(parsed).values()) == [
        "value 'broken-pair' should be two parts joined by '|' for type domain|ip"
    ]


def test_i1_stix_bundle() -> None:
    parsed = parse_file(DATA / "bundle.json")
    assert set(parsed.indicators) == {
        ("ip", "198.51.100.23"),
        ("sha256", "aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f"),
        ("md5", "79054025255fb1a26e4bc422aef54eb4"),
        ("domain", "c2.bad.example"),
        ("ip", "2001:db8:bad::/48"),
    }
    c2 = parsed.indicators[("ip", "198.51.100.23")]
    assert (c2.confidence, c2.source, c2.first_seen) == (95, "National CERT", "2026-11-02T10:00:00.000Z")
    assert parsed.indicators[("domain", "c2.bad.example")].confidence == 50  # no confidence: the default
    reasons = {where.rsplit(": ", 1)[1]: why for where, why in skipped(parsed).items()}
    assert "AND" in reasons["indicator--2f2b0f4e-0000-4000-8000-000000000001"]
    assert "snort" in reasons["indicator--2f2b0f4e-0000-4000-8000-000000000002"]
    assert "outside 0-100" in reasons["indicator--2f2b0f4e-0000-4000-8000-000000000003"]
    assert "malware" in reasons["malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b"]
    assert len(reasons) == 4  # identity and relationship objects are context, not skipped data


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("[ipv4-addr:value != '1.2.3.4']", "not an '=' comparison"),
        ("[process:name = 'x']", "object path"),
        ("[ipv4-addr:value = '1.2.3.4'] FOLLOWEDBY [ipv4-addr:value = '1.2.3.5']", "not an '='"),
        ("[[ipv4-addr:value = '1.2.3.4']]", "nested"),
        ("[ipv4-addr:value = '1.2.3.4'", "no complete"),
    ],
)
def test_i1_stix_patterns_not_simple_are_refused(pattern: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_stix_pattern(pattern)


def test_i1_stix_pattern_escapes() -> None:
    assert parse_stix_pattern(r"[url:value = 'http://x.example/it\'s']") == [("url", "http://x.example/it's")]


def test_i1_csv_with_header_reports_every_bad_line() -> None:
    parsed = parse_file(DATA / "list.csv")
    csv_path = DATA / "list.csv"
    assert set(parsed.indicators) == {
        ("ip", "203.0.113.9"),
        ("ip", "10.20.0.0/16"),
        ("domain", "mal.example"),
        ("md5", "44d88612fea8a8f36de82e1278abb02f"),  # type "hash": md5 by its length, lower case
    }
    repeated = parsed.indicators[("ip", "203.0.113.9")]
    assert (repeated.confidence, repeated.first_seen, repeated.source) == (95, "2026-11-19T00:00:00.000Z", "honeypot")
    assert parsed.duplicates == 1
    reasons = skipped(parsed)
    assert "host bits set" in reasons[f"{csv_path}:7"]
    assert "not an IP address" in reasons[f"{csv_path}:8"]
    assert "unknown indicator type 'ftp'" in reasons[f"{csv_path}:9"]
    assert "outside 0-100" in reasons[f"{csv_path}:11"]
    assert len(reasons) == 4


def test_i1_csv_one_column_with_type() -> None:
    parsed = parse_file(DATA / "domains.txt", "csv", value_type="domain")
    assert set(parsed.indicators) == {("domain", "bad.example")} and parsed.duplicates == 1
    assert skipped(parsed) == {f"{DATA / 'domains.txt'}:5": "'no_dot' is not a domain name (it needs a dot)"}


def test_i1_csv_positional_and_bad_bytes(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"ip,192.0.2.1\nurl,https://A.Example/x\n\xff\xfe,1\nip,1.2.3.4,50,2026-01-01,src,extra\n")
    parsed = parse_csv(path)
    assert set(parsed.indicators) == {("ip", "192.0.2.1"), ("url", "https://a.example/x")}
    reasons = skipped(parsed)
    assert "not UTF-8" in reasons[f"{path}:3"] and "6 columns" in reasons[f"{path}:4"]


def test_i1_whole_file_errors_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"type": "bundle", "objects": [', encoding="utf-8")
    with pytest.raises(ParseError, match="not JSON") as caught:
        parse_file(broken, "stix")
    assert caught.value.where == str(broken)
    (tmp_path / "x.bin").write_bytes(b"\x00\x01")
    with pytest.raises(ParseError, match="cannot tell the format"):
        detect_format(tmp_path / "x.bin")
    with pytest.raises(ParseError, match="no such file"):
        detect_format(tmp_path / "missing.json")
    header = tmp_path / "h.csv"
    header.write_text("kind,value\nip,1.2.3.4\n", encoding="utf-8")
    with pytest.raises(ParseError, match="unknown columns") as bad_header:
        parse_csv(header)
    assert bad_header.value.where == f"{header}:1"
    assert detect_format(DATA / "bundle.json") == "stix" and detect_format(DATA / "misp_event.json") == "misp"


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("ip", "2001:DB8:0:0::1", ("ip", "2001:db8::1")),
        ("ip", "192.0.2.7/32", ("ip", "192.0.2.7")),
        ("domain", "Bücher.Example", ("domain", "xn--bcher-kva.example")),
        ("hash", "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709", ("sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709")),
        ("url", "http://[2001:DB8::1]:8080/a", ("url", "http://[2001:db8::1]:8080/a")),
    ],
)
def test_i1_normalise(kind: str, value: str, expected: tuple[str, str]) -> None:
    assert normalise(kind, value) == expected


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("ip", "010.1.1.1"),
        ("ip", "1.2.3.4; rm -rf /"),
        ("domain", "1.2.3.4"),
        ("md5", "a" * 40),
        ("url", "javascript:x"),
    ],
)
def test_i1_normalise_refuses(kind: str, value: str) -> None:
    with pytest.raises(ValueError):
        normalise(kind, value)
