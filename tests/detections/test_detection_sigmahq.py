"""SigmaHQ's public rules must import as they are (DESIGN.md §5)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from detections.evaluation import CompiledRuleSet, Evaluator, compile_ruleset
from detections.loader import RuleSet, load_rules, shipped_rules_dir
from detections.samples import read_samples
from tests.shared_data import shared_data

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def sigmahq() -> tuple[RuleSet, CompiledRuleSet]:
    ruleset = load_rules([shared_data("sigmahq/rules")])
    return ruleset, compile_ruleset(ruleset)


def test_sigmahq_rules_compile_to_matchers(sigmahq: tuple[RuleSet, CompiledRuleSet]) -> None:
    ruleset, compiled = sigmahq
    attempted = len(ruleset.detection_rules()) + len(ruleset.errors)
    failures = list(ruleset.errors) + list(compiled.errors)
    reasons = Counter(error.message.split(":")[0] for error in failures)
    listing = "\n".join(f"{n:5d}  {reason}" for reason, n in reasons.most_common())
    details = "\n".join(error.render() for error in failures[:50])
    rate = len(compiled.rules) / attempted
    assert rate >= 0.95, f"{rate:.1%} compiled; failures by reason:\n{listing}\n{details}"
    assert attempted > 2500


def corpus() -> list[dict[str, Any]]:
    events = [
        event
        for path in sorted((shipped_rules_dir() / "linux" / "samples").glob("*/*.jsonl"))
        for event in read_samples(path)
    ]
    extra: list[dict[str, Any]] = [
        {
            "event.dataset": "windows.sysmon",
            "winlog.channel": "Microsoft-Windows-Sysmon/Operational",
            "event.code": "1",
            "process.executable": "C:\\Windows\\System32\\whoami.exe",
            "process.command_line": "whoami /priv",
            "process.parent.executable": "C:\\Windows\\System32\\cmd.exe",
            "winlog.event_data.OriginalFileName": "whoami.exe",
        },
        {
            "event.dataset": "windows.sysmon",
            "winlog.channel": "Microsoft-Windows-Sysmon/Operational",
            "event.code": "1",
            "process.executable": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
            "process.command_line": "powershell.exe -nop -w hidden -enc SQBFAFgA",
            "process.pe.original_file_name": "PowerShell.EXE",
        },
        {
            "event.dataset": "nginx.access",
            "url.original": "/cgi-bin/../../../../etc/passwd",
            "http.request.method": "GET",
            "http.response.status_code": 200,
            "user_agent.original": "sqlmap/1.7",
        },
        {
            "event.dataset": "windows.security",
            "winlog.channel": "Security",
            "event.code": "4732",
            "winlog.event_data.TargetUserName": "Administrators",
            "winlog.event_data.TargetSid": "S-1-5-32-544",
            "user.name": "mallory",
        },
        {"event.dataset": "system.syslog", "process.name": "sshd", "message": "error in libcrypto"},
        {"event.dataset": "network.dns", "dns.question.name": "xmr.pool.minergate.com"},
    ]
    for number, event in enumerate(extra):
        event.update({"@timestamp": "2026-11-25T10:00:00.000Z", "event.id": f"x{number}"})
        event.setdefault("organization.id", "police")
    return events + extra


def test_prefilter_never_changes_results(sigmahq: tuple[RuleSet, CompiledRuleSet]) -> None:
    _, compiled = sigmahq
    fast = Evaluator(compiled)
    slow = Evaluator(compiled, use_prefilter=False)
    total = 0
    for event in corpus():
        with_prefilter = sorted(rule.meta.id for rule in fast.matching_rules(event))
        without = sorted(rule.meta.id for rule in slow.matching_rules(event))
        assert with_prefilter == without, event
        total += len(without)
    assert total >= 6  # the synthetic events do hit SigmaHQ rules
