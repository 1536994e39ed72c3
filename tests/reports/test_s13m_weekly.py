"""The weekly report's numbers (issue 13, metrics items 1-2): a seeded week with known counts,
every number of the JSON checked, on SQLite and on the real Elasticsearch node."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from reports.metrics import previous_week, week_bounds, weekly
from reports.model import WeeklyReport
from soc_core.config import Settings
from soc_core.errors import InvalidInput
from soc_core.store import ElasticsearchStore, SqliteStore, Store
from tests.conftest import unique_prefix
from tests.reports.seeded_week import NOW, seed_week
from workflow import audit

ZERO = {"informational": 0, "low": 0, "medium": 0, "high": 0, "critical": 0}


def levels(**counts: int) -> dict[str, int]:
    return {**ZERO, **counts}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("report"))


@pytest.fixture(
    scope="module",
    # the Elasticsearch seeding (heartbeats written one by one, refreshed) takes ~20 s on a loaded machine
    params=["sqlite", pytest.param("elasticsearch", marks=[pytest.mark.elasticsearch, pytest.mark.slow])],
)
def seeded(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Store]:
    """The seeded week on each store, written once: the tests only read it."""
    store: Store
    if request.param == "sqlite":
        store = SqliteStore(settings.data_dir / "canhgac.db")
    else:
        url = request.getfixturevalue("elasticsearch_url")
        store = ElasticsearchStore(url, prefix=unique_prefix(), request_timeout=60)
    store.setup()
    audit.configure(store, settings)
    with pytest.MonkeyPatch.context() as monkeypatch:
        seed_week(store, monkeypatch)
    yield store
    if isinstance(store, ElasticsearchStore):
        for name in store.client.indices.get(index=f"{store.prefix}-*", allow_no_indices=True):
            store.client.indices.delete(index=name)
        for template in store.client.indices.get_index_template(name=f"{store.prefix}-*")["index_templates"]:
            store.client.indices.delete_index_template(name=template["name"])
    store.close()


def report(store: Store, settings: Settings, tenant: str) -> dict[str, Any]:
    made = weekly(store, settings, week="2026-W48", tenant=tenant, now=NOW)
    dumped = made.model_dump(mode="json")
    assert WeeklyReport.model_validate_json(json.dumps(dumped)) == made  # the JSON is the contract
    return dumped


def test_s13m_week_bounds_local() -> None:
    start, end = week_bounds("2026-W48", ZoneInfo("Asia/Ho_Chi_Minh"))
    assert (start.isoformat(), end.isoformat()) == ("2026-11-23T00:00:00+07:00", "2026-11-30T00:00:00+07:00")
    assert previous_week("2026-W01", ZoneInfo("Asia/Ho_Chi_Minh")) == "2025-W52"
    for bad in ("2026-48", "2026-W54", "2026-W00"):
        with pytest.raises(InvalidInput, match="week"):
            week_bounds(bad, ZoneInfo("UTC"))


def test_s13m_agency_report_every_number(seeded: Store, settings: Settings) -> None:
    got = report(seeded, settings, "police")
    assert got["week"] == "2026-W48"
    assert (got["start"], got["end"]) == ("2026-11-23T00:00:00+07:00", "2026-11-30T00:00:00+07:00")
    assert got["timezone"] == "Asia/Ho_Chi_Minh"
    assert got["generated_at"] == "2026-12-01T00:00:00.000Z"
    assert got["scope"] == {"tenant": "police", "tenants": ["police"], "name": "Công an tỉnh"}
    assert got["alerts"] == {
        "total": 6,
        "by_level": levels(critical=2, high=2, medium=1, low=1),
        "by_day": [
            {"date": "2026-11-23", "by_level": levels(critical=1), "total": 1},  # P1 at the first instant
            {"date": "2026-11-24", "by_level": levels(critical=1), "total": 1},
            {"date": "2026-11-25", "by_level": levels(high=1), "total": 1},
            {"date": "2026-11-26", "by_level": levels(medium=1), "total": 1},
            {"date": "2026-11-27", "by_level": levels(low=1), "total": 1},
            {"date": "2026-11-28", "by_level": levels(), "total": 0},
            {"date": "2026-11-29", "by_level": levels(high=1), "total": 1},  # P4 at the last instant
        ],
        # P6 was closed after the week: acknowledged at its end
        "by_status": {"resolved": 2, "false_positive": 1, "new": 2, "acknowledged": 1},
    }
    assert got["top_rules"] == [
        {"rule_id": "port-scan", "title": "Port Scan", "level": "low", "count": 2},  # medium 1, low 1: by text
        {"rule_id": "ssh-bf", "title": "SSH Brute Force", "level": "critical", "count": 2},
        {"rule_id": "web-sqli", "title": "SQL Injection", "level": "high", "count": 2},
    ]
    assert got["attack"] == {
        "tactics": [
            {"id": "credential-access", "count": 2},  # written attack.credential_access
            {"id": "discovery", "count": 2},
            {"id": "initial-access", "count": 2},
        ],
        "techniques": [{"id": "T1046", "count": 2}, {"id": "T1110.001", "count": 2}, {"id": "T1190", "count": 2}],
    }
    assert got["top_sources"] == [
        {"value": "10.0.0.99", "count": 2},
        {"value": "198.51.100.7", "count": 2},
        {"value": "203.0.113.5", "count": 2},
    ]
    assert got["top_targets"] == [  # host.name, else destination.ip (P3, P4)
        {"value": "10.0.0.80", "count": 2},
        {"value": "db-01", "count": 2},
        {"value": "web-01", "count": 2},
    ]
    assert got["cases"] == {
        "opened": 2,
        "closed": 2,
        "open_at_end": 2,
        "by_classification": {"false_positive": 1, "true_positive": 1},
    }
    response = got["response"]
    assert (response["mtta_seconds"], response["mttr_seconds"], response["sla_breaches"]) == (1800.0, 73800.0, 4)
    assert response["by_level"] == [
        {"level": "informational", "alerts": 0, "acknowledged": 0, "resolved": 0, "mtta_seconds": None,
         "mttr_seconds": None, "ack_sla_seconds": 259200, "resolve_sla_seconds": 1209600, "ack_breaches": 0,
         "resolve_breaches": 0},
        {"level": "low", "alerts": 1, "acknowledged": 1, "resolved": 1, "mtta_seconds": 3600.0,
         "mttr_seconds": 259200.0, "ack_sla_seconds": 86400, "resolve_sla_seconds": 604800, "ack_breaches": 0,
         "resolve_breaches": 0},
        {"level": "medium", "alerts": 1, "acknowledged": 0, "resolved": 0, "mtta_seconds": None,
         "mttr_seconds": None, "ack_sla_seconds": 14400, "resolve_sla_seconds": 259200, "ack_breaches": 1,
         "resolve_breaches": 1},
        {"level": "high", "alerts": 2, "acknowledged": 1, "resolved": 1, "mtta_seconds": 1800.0,
         "mttr_seconds": 7200.0, "ack_sla_seconds": 3600, "resolve_sla_seconds": 86400, "ack_breaches": 0,
         "resolve_breaches": 0},
        {"level": "critical", "alerts": 2, "acknowledged": 2, "resolved": 2, "mtta_seconds": 900.0,
         "mttr_seconds": 14400.0, "ack_sla_seconds": 900, "resolve_sla_seconds": 14400, "ack_breaches": 1,
         "resolve_breaches": 1},
    ]  # fmt: skip
    assert got["false_positives"] == [  # closed in the week: P1, P2, P3 (false positive), P8
        {"rule_id": "web-sqli", "title": "SQL Injection", "closed": 2, "false_positives": 1, "rate": 0.5},
        {"rule_id": "ssh-bf", "title": "SSH Brute Force", "closed": 2, "false_positives": 0, "rate": 0.0},
    ]
    assert got["sensors"] == [
        {"sensor_id": "s-log-1", "name": "log-1", "tenant": "police", "kind": "log", "uptime": 1.0,
         "capture_loss": None, "events": 7, "last_seen": "2026-11-29T16:50:00.000Z", "silent": False},
        {"sensor_id": "s-net-1", "name": "net-1", "tenant": "police", "kind": "network", "uptime": 0.75,
         "capture_loss": 0.01, "events": 5, "last_seen": "2026-11-29T03:10:00.000Z", "silent": True},
    ]  # fmt: skip
    assert got["playbooks"] == {
        "runs": 3,
        "by_status": {"succeeded": 2, "failed": 1},
        "by_playbook": [{"value": "ssh-bruteforce", "count": 2}, {"value": "web-attack", "count": 1}],
        "containments": 1,
    }
    assert got["agencies"] == []
    assert got["headline"] == {
        "alerts": {"value": 6, "previous": 2, "change": 2.0},
        "critical_alerts": {"value": 4, "previous": 1, "change": 3.0},
        "cases_opened": {"value": 2, "previous": 1, "change": 1.0},
        "cases_closed": {"value": 2, "previous": 0, "change": None},
        "open_cases": {"value": 2, "previous": 2, "change": 0.0},
        "mtta_seconds": {"value": 1800.0, "previous": 7200.0, "change": -0.75},
        "mttr_seconds": {"value": 73800.0, "previous": 432000.0, "change": round(73800 / 432000 - 1, 6)},
        "sla_breaches": {"value": 4, "previous": 2, "change": 1.0},
        "false_positive_rate": {"value": 0.25, "previous": None, "change": None},
        "sensor_uptime": {"value": round(60 / 72, 6), "previous": None, "change": None},
        "playbook_runs": {"value": 3, "previous": 1, "change": 2.0},
        "containments": {"value": 1, "previous": 0, "change": None},
    }


def test_s13m_agency_report_has_no_other_agency_numbers(seeded: Store, settings: Settings) -> None:
    text = json.dumps(report(seeded, settings, "police"), ensure_ascii=False)
    for only_health in ("192.0.2.66", "192.0.2.77", "his-db", "Ransomware", "health-only-rule", "hlog-1", "T1486",
                        "impact", "ioc-hit", "Sở Y tế"):  # fmt: skip
        assert only_health not in text
    health = report(seeded, settings, "health")
    assert health["scope"] == {"tenant": "health", "tenants": ["health"], "name": "Sở Y tế"}
    text = json.dumps(health, ensure_ascii=False)
    for only_police in ("203.0.113.5", "web-01", "port-scan", "net-1", "ssh-bruteforce", "Công an"):
        assert only_police not in text
    assert health["top_rules"] == [
        {"rule_id": "health-only-rule", "title": "Ransomware Note", "level": "critical", "count": 1},
        {"rule_id": "web-sqli", "title": "SQL Injection", "level": "high", "count": 1},
    ]
    assert health["sensors"] == [
        {"sensor_id": "s-hlog-1", "name": "hlog-1", "tenant": "health", "kind": "log", "uptime": None,
         "capture_loss": None, "events": 3, "last_seen": None, "silent": True},
    ]  # fmt: skip


def test_s13m_province_report_and_agency_table(seeded: Store, settings: Settings) -> None:
    got = report(seeded, settings, "*")
    assert got["scope"] == {"tenant": "*", "tenants": ["health", "police"], "name": "Toàn tỉnh"}
    alerts = got["alerts"]
    assert (alerts["total"], alerts["by_level"]) == (8, levels(critical=3, high=3, medium=1, low=1))
    assert got["top_rules"][0] == {"rule_id": "web-sqli", "title": "SQL Injection", "level": "high", "count": 3}
    assert got["cases"] == {
        "opened": 3,
        "closed": 2,
        "open_at_end": 3,
        "by_classification": {"false_positive": 1, "true_positive": 1},
    }
    assert [row["sensor_id"] for row in got["sensors"]] == ["s-hlog-1", "s-log-1", "s-net-1"]
    assert got["agencies"] == [
        {"tenant": "health", "name": "Sở Y tế", "alerts": 2, "critical_alerts": 2, "open_cases": 1,
         "mtta_seconds": 300.0, "mttr_seconds": 3600.0, "sla_breaches": 1, "silent_sensors": 1},
        {"tenant": "police", "name": "Công an tỉnh", "alerts": 6, "critical_alerts": 4, "open_cases": 2,
         "mtta_seconds": 1800.0, "mttr_seconds": 73800.0, "sla_breaches": 4, "silent_sensors": 1},
    ]  # fmt: skip
    playbooks = got["playbooks"]
    assert (playbooks["runs"], playbooks["containments"]) == (4, 2)
    response = got["response"]
    assert response["sla_breaches"] == 5
    assert response["mtta_seconds"] == round((600 + 1200 + 1800 + 3600 + 300) / 5, 3)


def test_s13m_bad_scope_and_week(seeded: Store, settings: Settings) -> None:
    with pytest.raises(InvalidInput, match="no agency 'transport'"):
        weekly(seeded, settings, week="2026-W48", tenant="transport", now=NOW)
    with pytest.raises(InvalidInput, match="no agency"):
        weekly(seeded, settings, week="2026-W48", tenant="Bad-Id", now=NOW)
    with pytest.raises(InvalidInput, match="has not started"):
        weekly(seeded, settings, week="2026-W50", tenant="police", now=NOW)
