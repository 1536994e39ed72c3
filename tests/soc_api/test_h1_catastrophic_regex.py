"""Issue 11 item 1: no rule pattern runs on a backtracking engine, and a rule scoped to one agency
is never evaluated on another agency's events (streaming engine, correlations, backtests)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from detections import lifecycle
from detections.correlation import CorrelationEngine, CorrelationSpec
from detections.engine import DetectionEngine
from detections.loader import load_rules, shipped_rules_dir
from soc_api.main import create_app
from soc_api.services import accounts
from soc_core.auth import PROVINCE, Membership
from soc_core.config import Settings
from soc_core.events import TENANT_FIELD
from soc_core.store import Store
from tests.soc_api.test_rules_api import CUSTOM, PASSWORD, login, ssh_event
from tests.support.cli import soc

CATASTROPHIC = "^(?=a)(a+)+#"  # the pattern: exponential on Python's re, refused by RE2
CUSTOM_ID = "5b1c4f0e-3a55-4bd4-9f4e-1b5e2f0a9c11"


def regex_rule(pattern: str, *, rule_id: str = "7d0f3c1e-0b8a-4f51-9d7e-2c6b1a9e4f01") -> str:
    return (
        f"title: Regex Rule\nid: {rule_id}\nstatus: experimental\n"
        "logsource:\n  product: linux\n  service: sshd\n"
        f"detection:\n  selection:\n    message|re: '{pattern}'\n  condition: selection\nlevel: high\n"
    )


def make_client(store: Store) -> TestClient:
    for tenant in ("police", "health"):
        accounts.add_tenant(store, tenant_id=tenant, name=tenant)
    accounts.add_user(store, username="hq", password=PASSWORD, memberships=[Membership(PROVINCE, "rule_admin")])
    accounts.add_user(store, username="ra", password=PASSWORD, memberships=[Membership("police", "rule_admin")])
    return TestClient(create_app(Settings(), store))


def test_h1_validate_refuses_a_pattern_re2_cannot_run(store: Store) -> None:
    client = make_client(store)
    hq = login(client, "hq")
    report = client.post("/api/rules/validate", json={"yaml": regex_rule(CATASTROPHIC)}, headers=hq).json()
    assert report["valid"] is False
    (error,) = report["errors"]
    assert error.startswith("<submitted rule>:1: regular expression cannot run on RE2")
    assert "(?=" in error and CATASTROPHIC in error
    assert client.post("/api/rules/validate", json={"yaml": regex_rule("^a+#")}, headers=hq).json()["valid"]


def test_h1_custom_rule_with_such_a_pattern_is_refused(store: Store) -> None:
    client = make_client(store)
    created = client.post(
        "/api/rules", json={"yaml": regex_rule(CATASTROPHIC), "reason": "try it"}, headers=login(client, "ra")
    )
    assert created.status_code == 422
    assert created.headers["content-type"].startswith("application/problem+json")
    assert "cannot run on RE2" in created.json()["detail"]
    assert not lifecycle.rule_states(store)


def test_h1_backtest_of_such_a_pattern_is_refused_and_health_answers(store: Store) -> None:
    client = make_client(store)
    hq = login(client, "hq")
    assert client.post("/api/rules", json={"yaml": CUSTOM, "reason": "feed"}, headers=hq).status_code == 201
    when = datetime.now(UTC) - timedelta(minutes=5)
    event = ssh_event("police", 1, ip="203.0.113.9", outcome="success", when=when)
    event["message"] = "a" * 24  # Python's re takes 2^23 steps here; RE2 never sees the pattern
    store.add_events([event])
    store.refresh()
    changed = client.post(f"/api/rules/{CUSTOM_ID}/backtest", json={"yaml": regex_rule(CATASTROPHIC)}, headers=hq)
    assert changed.status_code == 422, changed.text
    assert "cannot run on RE2" in changed.json()["detail"]
    assert client.get("/api/health").status_code == 200


def test_h1_rules_check_and_import_report_the_refused_pattern(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "bad.yml").write_text(regex_rule(CATASTROPHIC))
    (rules / "good.yml").write_text(regex_rule("^a+#", rule_id="7d0f3c1e-0b8a-4f51-9d7e-2c6b1a9e4f02"))
    checked = soc("rules", "check", str(rules), cwd=tmp_path)
    assert checked.returncode == 1
    assert f"{rules / 'bad.yml'}:1: regular expression cannot run on RE2" in checked.stdout
    assert "1 rules ok" in checked.stdout
    imported = soc("rules", "import", str(rules), cwd=tmp_path, env={"SOC_DATA_DIR": str(tmp_path / "data")})
    assert imported.returncode == 0, imported.stderr
    assert f"{rules / 'bad.yml'}:1: regular expression cannot run on RE2" in imported.stdout
    assert "1 rules imported" in imported.stdout


def test_h1_scoped_rule_is_never_evaluated_on_another_agencys_events(store: Store) -> None:
    shipped = load_rules([shipped_rules_dir()])
    lifecycle.save_custom_rule(
        store, text=CUSTOM, author="ra", reason="police feed", scope=None, allowed=("police",), shipped=shipped
    )
    when = datetime.now(UTC) - timedelta(minutes=5)
    police = ssh_event("police", 1, ip="203.0.113.9", outcome="success", when=when)
    health = ssh_event("health", 2, ip="203.0.113.9", outcome="success", when=when)
    store.add_events([police, health])
    store.refresh()
    ruleset, policy = lifecycle.effective_rules(store, [shipped_rules_dir()])
    with DetectionEngine(ruleset, store, policy=policy) as engine:
        (scoped,) = [rule for rule in engine.compiled.rules if rule.loaded.id == CUSTOM_ID]
        assert scoped not in engine.evaluator.router.route(health).rules
        assert scoped in engine.evaluator.router.route(police).rules
        seen: list[str] = []
        matcher = scoped.matcher

        def recording(event: Mapping[str, Any]) -> bool:
            seen.append(event[TENANT_FIELD])
            return matcher(event)

        scoped.matcher = recording
        engine.run_until_idle()
    assert seen == ["police"]
    alerts = [doc.body for doc in store.list_docs("alerts", size=100).items]
    assert [a["tenant"] for a in alerts if a["rule.id"] == CUSTOM_ID] == ["police"]
    assert policy.suppressed_by_scope == 0  # nothing needed suppressing: it never matched there


def test_h1_backtest_of_a_scoped_rule_reads_only_its_agencies(store: Store) -> None:
    client = make_client(store)
    created = client.post("/api/rules", json={"yaml": CUSTOM, "reason": "feed"}, headers=login(client, "ra"))
    assert created.status_code == 201 and created.json()["scope"] == ["police"]
    when = datetime.now(UTC) - timedelta(minutes=5)
    store.add_events(
        [
            ssh_event("police", 1, ip="203.0.113.9", outcome="success", when=when),
            ssh_event("health", 2, ip="203.0.113.9", outcome="success", when=when),
        ]
    )
    store.refresh()
    result = client.post(f"/api/rules/{CUSTOM_ID}/backtest", json={}, headers=login(client, "hq"))
    assert result.status_code == 200, result.text
    assert result.json()["total"] == 1  # the province-wide admin sees only what the rule may see


def test_h1_scoped_correlation_counts_only_its_agencies() -> None:
    spec = CorrelationSpec(
        rule_id="c", type="event_count", rule_ids=("base",), timespan=60, count=2, scope=frozenset({"police"})
    )
    engine = CorrelationEngine([spec])
    stamp = "2026-11-25T10:00:0{}Z"
    for n, tenant in enumerate(["health", "health", "health", "police"]):
        hits = engine.feed("base", {"@timestamp": stamp.format(n), "event.id": str(n), TENANT_FIELD: tenant})
        assert hits == []
    assert engine.feed("base", {"@timestamp": stamp.format(5), "event.id": "5", TENANT_FIELD: "police"})
