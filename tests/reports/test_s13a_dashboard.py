"""The dashboard's numbers (reports-API brief item 4), counted by the store on SQLite and on the
real Elasticsearch node over the seeded alerts of weeks 47-48, for one agency and the province."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from reports.dashboard import dashboard
from soc_api.services import accounts
from soc_core.config import Settings
from soc_core.store import Store
from tests.reports.seeded_week import ALERTS, _alert

NOW = datetime(2026, 12, 1, tzinfo=UTC)  # Tuesday 07:00 local, in W49
BORN = "2026-11-01T00:00:00.000Z"  # the sensors' records (the sensors service always sets it)


def test_s13a_4_dashboard_numbers_from_the_store(store: Store, tmp_path: Path) -> None:
    accounts.add_tenant(store, tenant_id="police", name="Công an tỉnh")
    accounts.add_tenant(store, tenant_id="health", name="Sở Y tế")
    for seed in ALERTS:
        _alert(store, seed)
    store.create_doc(
        "sensors", {"tenant": "police", "name": "net-1", "kind": "network", "last_seen": None, "created_at": BORN}
    )
    store.create_doc(
        "sensors",
        {
            "tenant": "police",
            "name": "log-1",
            "kind": "log",
            "last_seen": "2026-11-30T23:59:00.000Z",
            "created_at": BORN,
        },
    )
    store.create_doc(
        "sensors",
        {
            "tenant": "health",
            "name": "hlog-1",
            "kind": "log",
            "last_seen": "2026-11-30T20:00:00.000Z",
            "created_at": BORN,
        },
    )
    settings = Settings(data_dir=tmp_path)

    police = dashboard(store, settings, ("police",), now=NOW)
    # open now: P4 (high), P5 (medium), P7 (informational); P1-P3, P6, P8 are closed
    assert police.open_by_level == {"critical": 0, "high": 1, "medium": 1, "low": 0, "informational": 1}
    assert police.open_total == 3
    days = dict(police.days)
    assert len(police.days) == 30 and police.days[0][0] == "2026-11-02" and police.days[-1][0] == "2026-12-01"
    # local days (UTC+7): P7 on Sunday 22/11 at 23:59:59.999, P1 on Monday 23/11 at 00:00
    assert days["2026-11-22"] == 1 and days["2026-11-23"] == 1 and days["2026-11-18"] == 1
    assert days["2026-11-29"] == 1 and sum(days.values()) == 8
    weeks = {row.week: row for row in police.weeks}
    assert [row.week for row in police.weeks] == [f"2026-W{n}" for n in range(42, 50)]
    assert weeks["2026-W48"].alerts == 6 and weeks["2026-W47"].alerts == 2 and weeks["2026-W49"].alerts == 0
    # acknowledged after 600, 1200, 1800, 3600 s; resolved after 10800, 18000, 7200, 259200 s
    assert weeks["2026-W48"].mtta_seconds == 1800 and weeks["2026-W48"].mttr_seconds == 73_800
    assert weeks["2026-W47"].mtta_seconds == 7200 and weeks["2026-W46"].mtta_seconds is None
    assert police.top_rules == [("SQL Injection", 3), ("Port Scan", 2), ("SSH Brute Force", 2), ("Odd DNS", 1)]
    assert (police.sensors.total, police.sensors.silent, police.sensors.silent_names) == (2, 1, ["net-1"])

    province = dashboard(store, settings, None, now=NOW)
    assert province.open_total == 4 and province.open_by_level["high"] == 2
    assert sum(count for _, count in province.days) == 10
    assert ("Ransomware Note", 1) in province.top_rules
    assert (province.sensors.total, province.sensors.silent) == (3, 2)
    health = dashboard(store, settings, ("health",), now=NOW)
    assert health.top_rules == [("Ransomware Note", 1), ("SQL Injection", 1)] and health.open_total == 1
