from __future__ import annotations

import base64

import pytest

from detections.evaluation import process_rule
from detections.loader import load_rule_text
from detections.prefilter import Prefilter, rule_literals
from detections.targets.walk import UnsupportedConstruct
from soc_core.errors import RuleError
from soc_core.regex import compile_regex

from .helpers import event, load_one, matcher, rule_yaml


def test_plain_value_is_whole_and_case_insensitive() -> None:
    m = matcher("selection:\n  user.name: Root\ncondition: selection")
    assert m(event(user__name="root"))
    assert m(event(user__name="ROOT"))
    assert not m(event(user__name="rooted"))
    assert not m(event(user__name="xroot"))
    assert not m(event())


def test_cased_modifier_respects_case() -> None:
    m = matcher("selection:\n  user.name|cased: Root\ncondition: selection")
    assert m(event(user__name="Root"))
    assert not m(event(user__name="root"))


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("adm*", "Administrator", True),
        ("*trator", "administrator", True),
        ("*min*", "ADMIN", True),
        ("a?min", "admin", True),
        ("a?min", "aadmin", False),
        ("a*n*r", "administrator", True),
        ("a*n*r", "administrators", False),
        ("*", "", True),
        ("a\\*b", "a*b", True),
        ("a\\*b", "axxb", False),
        ("line1*line2", "line1\nline2", True),
    ],
)
def test_wildcards(pattern: str, value: str, expected: bool) -> None:
    m = matcher(f"selection:\n  user.name: '{pattern}'\ncondition: selection")
    assert m(event(user__name=value)) is expected


def test_contains_startswith_endswith() -> None:
    contains = matcher("selection:\n  message|contains: 'Failed password'\ncondition: selection")
    starts = matcher("selection:\n  message|startswith: 'failed'\ncondition: selection")
    ends = matcher("selection:\n  message|endswith: 'SSH2'\ncondition: selection")
    msg = event(message="Failed password for root from 10.0.0.1 port 22 ssh2")
    assert contains(msg) and starts(msg) and ends(msg)
    other = event(message="Accepted password for root")
    assert not contains(other) and not starts(other) and not ends(other)


def test_list_values_are_or_and_all_modifier_is_and() -> None:
    any_of = matcher("selection:\n  message|contains:\n    - alpha\n    - beta\ncondition: selection")
    all_of = matcher("selection:\n  message|contains|all:\n    - alpha\n    - beta\ncondition: selection")
    assert any_of(event(message="x alpha y")) and not all_of(event(message="x alpha y"))
    assert all_of(event(message="beta and alpha"))


def test_list_in_event_matches_if_any_element_matches() -> None:
    m = matcher("selection:\n  event.category: authentication\ncondition: selection")
    assert m(event(event__category=["process", "authentication"]))
    assert not m(event(event__category=["process"]))
    assert not m(event(event__category=[]))


def test_regex_is_unanchored_and_case_sensitive_by_default() -> None:
    m = matcher("selection:\n  process.command_line|re: 'curl .*\\|\\s*sh'\ncondition: selection")
    assert m(event(process__command_line="bash -c 'curl http://x | sh'"))
    assert not m(event(process__command_line="CURL http://x | sh"))
    insensitive = matcher("selection:\n  process.command_line|re|i: '^curl'\ncondition: selection")
    assert insensitive(event(process__command_line="CURL x"))


def test_regex_flags_multiline_and_dotall() -> None:
    multiline = matcher("selection:\n  message|re|m: '^second$'\ncondition: selection")
    dotall = matcher("selection:\n  message|re|s: 'first.second'\ncondition: selection")
    text = event(message="first\nsecond")
    assert multiline(text) and dotall(text)
    plain = matcher("selection:\n  message|re: 'first.second'\ncondition: selection")
    assert not plain(text)


def test_regex_that_re2_rejects_is_a_rule_error_never_python_re() -> None:
    ruleset = load_rule_text(rule_yaml("selection:\n  user.name|re: '^(?!root$).*'\ncondition: selection"))
    assert not ruleset.rules
    assert "cannot run on RE2" in ruleset.errors[0].message
    with pytest.raises(RuleError, match=r"cannot run on RE2: invalid perl operator"):
        compile_regex("a(?=b)", where="x.yml:3")
    assert compile_regex("a")("b\ud800a")  # a lone surrogate does not stop RE2


def test_cidr_v4_v6_and_garbage() -> None:
    m = matcher("selection:\n  source.ip|cidr:\n    - 10.0.0.0/8\n    - 2001:db8::/32\ncondition: selection")
    assert m(event(source__ip="10.1.2.3"))
    assert m(event(source__ip="2001:db8::5"))
    assert not m(event(source__ip="192.168.1.1"))
    assert not m(event(source__ip="not-an-ip"))
    assert not m(event(source__ip=167772161))


def test_null_and_exists() -> None:
    null = matcher("selection:\n  user.name: null\ncondition: selection")
    assert null(event()) and null(event(user__name=None)) and null(event(user__name=""))
    assert not null(event(user__name="root"))
    exists = matcher("selection:\n  user.name|exists: true\ncondition: selection")
    missing = matcher("selection:\n  user.name|exists: false\ncondition: selection")
    assert exists(event(user__name="root")) and not exists(event())
    assert missing(event()) and not missing(event(user__name="root"))


def test_keywords_search_message_and_original() -> None:
    m = matcher("keywords:\n  - 'error in libcrypto'\n  - 'Corrupted MAC'\ncondition: keywords")
    assert m(event(message="fatal: error in libcrypto [preauth]"))
    assert m(event(**{"event.original": "<34>sshd[1]: corrupted mac on input"}))
    assert not m(event(message="all good", user__name="error in libcrypto"))


def test_keywords_all_modifier() -> None:
    m = matcher("keywords:\n  '|all':\n    - 'sudo'\n    - 'NOPASSWD'\ncondition: keywords")
    assert m(event(message="sudo rule NOPASSWD: ALL"))
    assert not m(event(message="sudo only"))


def test_numbers_compare_numerically_and_as_text() -> None:
    m = matcher("selection:\n  http.response.status_code: 404\ncondition: selection")
    assert m(event(http__response__status_code=404))
    assert m(event(http__response__status_code="404"))
    assert not m(event(http__response__status_code=4040))
    text_rule = matcher("selection:\n  event.code: '4624'\ncondition: selection")
    assert text_rule(event(event__code=4624)) and text_rule(event(event__code="4624"))


@pytest.mark.parametrize(
    ("modifier", "value", "expected"),
    [("gt", 500, True), ("gt", 499, False), ("gte", 499, True), ("lt", 10, True), ("lte", 499, False)],
)
def test_numeric_comparisons(modifier: str, value: int, expected: bool) -> None:
    number = 499 if modifier in ("gt", "gte") else 11
    if modifier == "lte":
        number = 498
    m = matcher(f"selection:\n  http.response.bytes|{modifier}: {number}\ncondition: selection")
    assert m(event(http__response__bytes=value)) is expected
    assert not m(event(http__response__bytes="n/a"))


def test_bool_values() -> None:
    m = matcher("selection:\n  tls.established: true\ncondition: selection")
    assert m(event(tls__established=True)) and m(event(tls__established="true"))
    assert not m(event(tls__established=False))


def test_fieldref_compares_two_fields() -> None:
    same = matcher("selection:\n  user.name|fieldref: user.effective.name\ncondition: selection")
    assert same(event(user__name="root", user__effective__name="ROOT"))
    assert not same(event(user__name="bob", user__effective__name="root"))
    assert not same(event(user__name="bob"))


def test_not_and_one_of_and_all_of() -> None:
    m = matcher(
        """
        selection_a:
          event.action: ssh_login
        selection_b:
          event.outcome: failure
        filter:
          source.ip|cidr: 10.0.0.0/8
        condition: all of selection_* and not filter
        """
    )
    assert m(event(event__action="ssh_login", event__outcome="failure", source__ip="1.2.3.4"))
    assert not m(event(event__action="ssh_login", event__outcome="failure", source__ip="10.0.0.1"))
    assert not m(event(event__action="ssh_login", event__outcome="success", source__ip="1.2.3.4"))


def test_neq_modifier() -> None:
    m = matcher("selection:\n  user.name|neq: root\ncondition: selection")
    assert m(event(user__name="bob"))
    assert not m(event(user__name="root"))


def test_windash_expansion_matches_each_variant() -> None:
    m = matcher(
        "selection:\n  process.command_line|windash|contains: ' -enc '\ncondition: selection",
        logsource="product: windows\n    category: process_creation",
    )
    assert m(event(process__command_line="powershell /enc AAAA "))
    assert m(event(process__command_line="powershell -enc AAAA "))
    assert not m(event(process__command_line="powershell -command x"))


def test_base64offset_expansion() -> None:
    m = matcher(
        "selection:\n  process.command_line|base64offset|contains: 'http://'\ncondition: selection",
        logsource="product: windows\n    category: process_creation",
    )
    encoded = base64.b64encode(b"xhttp://evil").decode()
    assert m(event(process__command_line=f"powershell -e {encoded}"))


def test_timestamp_part_modifier() -> None:
    m = matcher("selection:\n  '@timestamp|hour': 3\ncondition: selection")
    assert m(event(**{"@timestamp": "2026-11-25T03:15:00.000Z"}))
    assert not m(event(**{"@timestamp": "2026-11-25T04:15:00.000Z"}))


def test_multiple_conditions_are_ored() -> None:
    m = matcher("a:\n  user.name: x\nb:\n  user.name: y\ncondition:\n  - a\n  - b")
    assert m(event(user__name="x")) and m(event(user__name="y"))
    assert not m(event(user__name="z"))


def test_unresolved_placeholder_is_an_error_naming_the_rule() -> None:
    with pytest.raises(UnsupportedConstruct) as info:
        matcher("selection:\n  user.name|expand: '%admins%'\ncondition: selection")
    assert "test.yml" in info.value.render()
    assert "placeholder" in info.value.render()


def test_condition_naming_a_missing_detection_is_a_rule_error() -> None:
    with pytest.raises(RuleError) as info:
        matcher("selection:\n  user.name: x\ncondition: selection and other")
    assert "test.yml" in info.value.render()


def test_web_pipeline_maps_sigmahq_names_to_ecs() -> None:
    m = matcher(
        """
        selection:
          cs-method: POST
          cs-uri-query|contains: '/mgmt/tm/util/bash'
          sc-status: 200
          c-useragent|contains: curl
        condition: selection
        """,
        logsource="category: webserver",
    )
    hit = event(
        event__dataset="nginx.access",
        http__request__method="POST",
        url__original="/mgmt/tm/util/bash?x=1",
        http__response__status_code=200,
        user_agent__original="curl/8.0",
    )
    assert m(hit)
    assert not m(dict(hit, **{"http.request.method": "GET"}))


def test_windows_pipeline_maps_to_winlog_event_data() -> None:
    m = matcher(
        """
        selection:
          EventID: 4732
          TargetUserName|startswith: Administr
        condition: selection
        """,
        logsource="product: windows\n    service: security",
    )
    hit = event(
        event__dataset="windows.security",
        event__code="4732",
        winlog__channel="Security",
        winlog__event_id=4732,
        **{"winlog.event_data.TargetUserName": "Administrators"},
    )
    assert m(hit)
    assert not m(dict(hit, **{"winlog.channel": "System"}))


def test_windows_process_creation_image_maps_to_process_executable() -> None:
    m = matcher(
        "selection:\n  Image|endswith: '\\whoami.exe'\ncondition: selection",
        logsource="product: windows\n    category: process_creation",
    )
    assert m(event(process__executable="C:\\Windows\\System32\\whoami.exe"))


def test_own_ecs_rules_pass_through_every_pipeline_unchanged() -> None:
    for logsource in (
        "product: linux\n    service: sshd",
        "product: windows\n    service: security",
        "category: webserver",
        "category: dns",
    ):
        m = matcher("selection:\n  source.ip: 1.2.3.4\n  user.name: bob\ncondition: selection", logsource)
        # the Windows pipeline adds its channel condition; field names stay as written
        hit = event(source__ip="1.2.3.4", user__name="bob", winlog__channel="Security")
        assert m(hit), logsource
        assert not m(dict(hit, **{"user.name": "eve"})), logsource


def test_linux_pipeline_maps_user() -> None:
    m = matcher("selection:\n  User: bob\ncondition: selection")
    assert m(event(user__name="bob"))


def test_prefilter_literals() -> None:
    def literals(detection: str) -> object:
        return rule_literals(process_rule(load_one(rule_yaml(detection))))

    assert literals("s:\n  message|contains: 'Failed password'\ncondition: s") == {"failed password"}
    assert literals("s:\n  a: xyz*abcdef\n  b|re: 'x'\ncondition: s") == {"abcdef"}
    assert literals("s:\n  a|re: 'x'\ncondition: s") is None
    assert literals("s:\n  a: ab\ncondition: s") is None
    assert literals("s:\n  a: abc\nt:\n  b: defg\ncondition: s or t") == {"abc", "defg"}
    assert literals("s:\n  a: abc\nt:\n  b|re: x\ncondition: s or t") is None
    assert literals("s:\n  a: abc\ncondition: not s") is None
    prefilter = Prefilter([frozenset({"abc"}), None])
    assert prefilter.literals_in({"x": ["zzABCzz"], "n": 5}) == {"abc"}
    assert prefilter.literals_in({"x": "ab", "y": "c"}) == set()
