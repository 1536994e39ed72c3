from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from detections.engine import CHECKPOINT_ID, DetectionEngine
from detections.evaluation import Evaluator, compile_ruleset
from detections.loader import load_rules, shipped_rules_dir
from detections.routing import event_logsources
from soc_core.store.sqlite import SqliteStore

SAMPLES = shipped_rules_dir() / "linux" / "samples"
BRUTE_FORCE = "74d45926-2b16-4397-acdf-3728c2a10647"


def samples(rule_id: str, name: str = "match.jsonl") -> list[dict[str, Any]]:
    lines = (SAMPLES / rule_id / name).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture
def rules() -> Any:
    ruleset = load_rules([shipped_rules_dir()])
    assert not ruleset.errors
    return ruleset


def alerts(store: SqliteStore) -> list[dict[str, Any]]:
    return [doc.body for doc in store.list_docs("alerts", size=1000).items]


def test_brute_force_raises_one_alert_with_tenant_and_entities(sqlite_store: SqliteStore, rules: Any) -> None:
    sqlite_store.add_events(samples(BRUTE_FORCE))
    engine = DetectionEngine(rules, sqlite_store)
    assert not engine.errors
    assert engine.run_once(limit=100) == 5
    [alert] = alerts(sqlite_store)
    assert alert["rule.id"] == BRUTE_FORCE and alert["rule.level"] == "high"
    assert alert["rule.tags"] == ["attack.credential-access", "attack.t1110.001"]
    assert alert["tenant"] == "police" and alert["count"] == 5 and alert["status"] == "new"
    assert alert["entities"]["source.ip"] == ["198.51.100.23"]
    assert alert["entities"]["host.name"] == ["web01"]
    assert alert["created_at"] and alert["updated_at"]
    assert engine.run_once(limit=100) == 0


def test_restart_mid_burst_neither_misses_nor_repeats(sqlite_store: SqliteStore, rules: Any) -> None:
    events = samples(BRUTE_FORCE)
    sqlite_store.add_events(events[:3])
    first = DetectionEngine(rules, sqlite_store)
    assert first.run_once(limit=100) == 3
    assert alerts(sqlite_store) == []
    saved = sqlite_store.get_doc("checkpoints", CHECKPOINT_ID).body
    assert saved["checkpoint"] and saved["correlation"]["keys"]

    sqlite_store.add_events(events[3:])
    restarted = DetectionEngine(rules, sqlite_store)
    assert restarted.run_once(limit=100) == 2
    [alert] = alerts(sqlite_store)
    assert alert["count"] == 5
    again = DetectionEngine(rules, sqlite_store)
    assert again.run_once(limit=100) == 0
    assert len(alerts(sqlite_store)) == 1


def test_batches_smaller_than_the_burst(sqlite_store: SqliteStore, rules: Any) -> None:
    sqlite_store.add_events(samples(BRUTE_FORCE))
    engine = DetectionEngine(rules, sqlite_store)
    result = engine.run_until_idle(limit=2)
    assert result.events == 5 and result.alerts_created == 1


def test_repeats_update_the_alert_even_after_an_analyst_changed_it(sqlite_store: SqliteStore, rules: Any) -> None:
    events = samples(BRUTE_FORCE)
    sqlite_store.add_events(events)
    engine = DetectionEngine(rules, sqlite_store)
    engine.run_once(limit=100)
    [doc] = sqlite_store.list_docs("alerts").items
    sqlite_store.update_doc(
        "alerts", doc.id, dict(doc.body, status="acknowledged", assignee="lan"), version=doc.version
    )
    more = [
        dict(e, **{"event.id": e["event.id"] + "-2", "@timestamp": e["@timestamp"].replace("10:05:30", "10:05:40")})
        for e in events[-1:]
    ]
    sqlite_store.add_events(more)
    result = engine.run_batch(limit=100)
    assert result.alerts_updated == 1 and result.alerts_created == 0
    [alert] = alerts(sqlite_store)
    assert alert["count"] == 6 and alert["assignee"] == "lan" and alert["status"] == "acknowledged"


def test_tenants_get_their_own_alerts(sqlite_store: SqliteStore, rules: Any) -> None:
    events = samples(BRUTE_FORCE)
    health = [dict(e, **{"organization.id": "health", "event.id": e["event.id"] + "h"}) for e in events]
    sqlite_store.add_events(events + health)
    DetectionEngine(rules, sqlite_store).run_until_idle()
    assert sorted(a["tenant"] for a in alerts(sqlite_store)) == ["health", "police"]


def test_base_rules_alert_and_group(sqlite_store: SqliteStore, rules: Any) -> None:
    sqlite_store.add_events(samples("b66c7128-d024-4352-a4e4-6ef7676daa16"))
    sqlite_store.add_events(samples("b66c7128-d024-4352-a4e4-6ef7676daa16", "nomatch.jsonl"))
    DetectionEngine(rules, sqlite_store).run_until_idle()
    found = alerts(sqlite_store)
    assert {a["rule.name"] for a in found} == {"Interactive Root Shell via Sudo"}
    assert sum(a["count"] for a in found) == 4


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"event.dataset": "system.auth", "process.name": "sshd"}, {("linux", None, "sshd"), ("linux", None, "auth")}),
        ({"event.dataset": "system.auth", "process.name": "sudo"}, {("linux", None, "sudo")}),
        ({"event.dataset": "nginx.access"}, {(None, "webserver", "nginx")}),
        ({"event.dataset": "network.dns"}, {(None, "dns", None)}),
        (
            {"event.dataset": "windows.security", "winlog.channel": "Security", "event.code": "4624"},
            {("windows", None, "security")},
        ),
        (
            {
                "event.dataset": "windows.sysmon",
                "winlog.channel": "Microsoft-Windows-Sysmon/Operational",
                "event.code": "1",
            },
            {("windows", "process_creation", "sysmon"), ("windows", None, "sysmon")},
        ),
        ({"event.dataset": "network.arp"}, {("canhgac", None, "network.arp")}),
    ],
)
def test_routing_table(fields: dict[str, Any], expected: set[tuple[Any, ...]]) -> None:
    assert expected <= set(event_logsources(fields))


def test_routing_keeps_rules_to_their_logsource(tmp_path: Path) -> None:
    (tmp_path / "win.yml").write_text(
        "title: W\nid: 3d1f0a7e-0000-4000-8000-000000000001\n"
        "logsource: {product: windows, category: process_creation}\n"
        "detection: {sel: {user.name: bob}, condition: sel}\nlevel: low\n"
    )
    evaluator = Evaluator(compile_ruleset(load_rules([tmp_path])))
    linux = {"event.dataset": "system.auth", "process.name": "sshd", "user.name": "bob", "organization.id": "p"}
    sysmon = {"event.dataset": "windows.sysmon", "event.code": "1", "user.name": "bob", "organization.id": "p"}
    assert evaluator.matching_rules(linux) == []
    assert len(evaluator.matching_rules(sysmon)) == 1


def test_issue10_unicode_engine_matches_what_the_matcher_folds(tmp_path: Path) -> None:
    """The prefilter keeps every event the matcher accepts, when NFC makes the text match."""
    (tmp_path / "vi.yml").write_text(
        "title: V\nid: 3d1f0a7e-0000-4000-8000-000000000002\n"
        "logsource: {product: linux, service: sshd}\n"
        "detection: {sel: {user.name|contains: 'NGUYỄN'}, condition: sel}\nlevel: low\n",
        encoding="utf-8",
    )
    (tmp_path / "semicolon.yml").write_text(
        "title: S\nid: 3d1f0a7e-0000-4000-8000-000000000003\n"
        "logsource: {product: linux, service: sshd}\n"
        "detection: {sel: {message|contains: 'user;admin'}, condition: sel}\nlevel: low\n",
        encoding="utf-8",
    )
    evaluator = Evaluator(compile_ruleset(load_rules([tmp_path])))
    base = {"event.dataset": "system.auth", "process.name": "sshd", "organization.id": "p"}
    decomposed = {**base, "user.name": unicodedata.normalize("NFD", "nguyễn văn an")}
    # U+037E GREEK QUESTION MARK is canonically a semicolon: NFC turns it into ";"
    greek_semicolon = {**base, "message": "USER\u037eADMIN login"}
    assert [rule.meta.id[-1] for rule in evaluator.matching_rules(decomposed)] == ["2"]
    assert [rule.meta.id[-1] for rule in evaluator.matching_rules(greek_semicolon)] == ["3"]
