"""Item 4 of the r13 brief: weeks at the ends of the calendar (``0001-W01``, ``9999-W52``) are a
clear error — the CLI's exit 2, the API's 4xx naming ``week`` — never an OverflowError; the first
week a report counts (1970-W01, whose baseline week is of 1969) is a correct empty report. On
SQLite and on the real Elasticsearch node."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from reports.metrics import YEARS, week_bounds, weekly
from soc_core.config import Settings
from soc_core.errors import InvalidInput
from soc_core.store import Store
from tests.reports.test_s13a_reports_api import auth, settings, world  # noqa: F401  (fixtures)
from tests.support.cli import soc

EDGES = ("0001-W01", "0001-W02", "9999-W52", "9999-W51", "1969-W01")


@pytest.mark.parametrize("week", EDGES)
def test_r13_4_calendar_edges_are_refused_by_name(week: str) -> None:
    for zone in ("Asia/Ho_Chi_Minh", "Pacific/Kiritimati", "Etc/GMT+12"):
        with pytest.raises(InvalidInput, match=f"week '{week}' is outside the years a report counts"):
            week_bounds(week, ZoneInfo(zone))


def test_r13_4_first_week_is_an_empty_report_and_edges_are_4xx(
    world: TestClient,  # noqa: F811
    store: Store,
    settings: Settings,  # noqa: F811
) -> None:
    first = f"{YEARS.start}-W01"  # its baseline (the week before) is of 1969
    report = weekly(store, settings, week=first, tenant="*")
    assert report.alerts.total == 0 and report.headline.alerts.previous == 0
    assert [agency.alerts for agency in report.agencies] == [0, 0]
    headers = auth(world, "hq_manager")
    for week in EDGES:
        answer = world.post("/api/reports/weekly", json={"week": week, "tenant": "police"}, headers=headers)
        assert 400 <= answer.status_code < 500, f"{week}: {answer.status_code} {answer.text}"
        assert "outside the years" in answer.text and "week" in answer.text, answer.text
        listed = world.get("/api/reports", params={"week": week}, headers=headers)
        assert listed.status_code == 200 and listed.json()["items"] == [], listed.text
    made = world.post("/api/reports/weekly", json={"week": first, "tenant": "*"}, headers=headers)
    assert made.status_code == 201, made.text
    got = world.get(f"/api/reports/{made.json()['id']}", headers=headers)
    assert got.status_code == 200 and got.json()["report"]["alerts"]["total"] == 0, got.text


def test_r13_4_cli_week_edges_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "soc.yml"
    config.write_text(f"data_dir: {tmp_path / 'var'}\n")
    for week in ("0001-W01", "9999-W52"):
        done = soc("--config", str(config), "report", "weekly", "--week", week, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert f"week '{week}' is outside the years a report counts (1970-9998)" in done.stderr
        assert "Traceback" not in done.stderr and "OverflowError" not in done.stderr
