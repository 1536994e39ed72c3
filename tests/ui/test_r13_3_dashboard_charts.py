"""Item 3 of the r13 brief in headless Chromium, on SQLite and on the real Elasticsearch node: the
dashboard draws its charts as server-rendered SVG (open alerts by level, per agency for the
province, alerts per day, MTTA/MTTR trend, top rules, sensor uptime) under the UI's CSP (no
violation reported), each with a text alternative, in Vietnamese and English and at phone width;
an agency manager sees only that agency's numbers, sensors and names."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from reports import stored
from reports.cli import last_week
from soc_api.main import create_app
from soc_api.services import accounts
from soc_core.auth import PROVINCE, Membership
from soc_core.config import Settings
from soc_core.events import utcnow
from soc_core.store import Store
from tests.reports.test_r13_3_dashboard import seed
from tests.support.browser import shot
from tests.support.servers import serve

PASSWORD = "a-very-long-password-13"
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
CHARTS = ("chart-open", "chart-days", "chart-mtta", "chart-mttr", "chart-rules", "chart-uptime")


@pytest.fixture
def site(store: Store, tmp_path: Path) -> Iterator[str]:
    seed(store, utcnow())
    accounts.add_user(store, username="mgr_police", password=PASSWORD, memberships=[Membership("police", "manager")])
    accounts.add_user(store, username="mgr_hq", password=PASSWORD, memberships=[Membership(PROVINCE, "manager")])
    store.refresh()
    with serve(create_app(Settings(data_dir=tmp_path), store)) as url:
        yield url


def open_page(browser: Any, url: str, username: str, width: int = 1400) -> Any:
    context = browser.new_context(base_url=url, viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.problems = []  # CSP violations and script errors, as Chromium reports them
    page.on("console", lambda msg: msg.type == "error" and page.problems.append(msg.text))
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.goto("/ui/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/alerts")
    return page


def charts(page: Any) -> dict[str, str]:
    """Each chart's text alternative (its <title> and <desc>, as the accessibility tree names it)."""
    found = {}
    for chart in (*CHARTS, "chart-agencies"):
        svg = page.locator(f"svg[data-testid={chart}]")
        if svg.count():
            assert svg.get_attribute("role") == "img"
            found[chart] = svg.evaluate(
                "s => s.getAttribute('aria-labelledby').split(' ')"
                ".map(id => document.getElementById(id).textContent).join(' | ')"
            )
    return found


@pytest.mark.slow  # Chromium on both stores, two people, a report generated (~25-35 s each under load)
def test_r13_3_dashboard_charts_agency_and_province(browser: Any, site: str, store: Store, tmp_path: Path) -> None:
    page = open_page(browser, site, "mgr_police")
    page.goto("/ui/dashboard")
    assert page.text_content("h1") == "Tổng quan an ninh"
    alt = charts(page)
    assert sorted(alt) == sorted(CHARTS), f"charts drawn: {sorted(alt)}"
    assert alt["chart-open"].startswith("Cảnh báo đang mở | Cảnh báo đang mở: Nghiêm trọng 0, Cao 1, Trung bình 1")
    assert "SQL Injection 3" in alt["chart-rules"] and "Ransomware" not in alt["chart-rules"]
    assert "net-1 —" in alt["chart-uptime"] and "log-1 50.0%" in alt["chart-uptime"]
    assert "hlog-1" not in page.content() and "Sở Y tế" not in page.content()
    assert page.text_content("[data-testid=dash-silent]") == "Im lặng: net-1"
    assert page.text_content("[data-testid=dash-uptime]") == "Thời gian hoạt động 7 ngày qua: 50.0%"
    assert page.locator("svg[data-testid=chart-days] rect.bar").count() == 30
    assert page.locator("[data-testid=dash-agencies]").count() == 0
    shot(page, "r13-dashboard-police-vi")
    # English, then a phone's width: nothing wider than the screen
    page.click(".lang >> text=EN")
    page.wait_for_selector("h1:text('Security dashboard')")
    assert charts(page)["chart-mttr"].startswith("Mean time to resolve (MTTR) | Mean time to resolve (MTTR): ")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the dashboard is {overflow}px wider than a 390px screen"
    shot(page, "r13-dashboard-police-en-narrow")
    # the weekly report's page at that width too: the report scrolls inside its frame
    week = stored.generate(store, Settings(data_dir=tmp_path), week=last_week(ZONE), tenant="police", generated_by="t")
    page.goto(f"/ui/reports?week={week.body['week']}&tenant=police")
    page.frame_locator("[data-testid=report-frame]").locator("h1").wait_for()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the reports page is {overflow}px wider than a 390px screen"
    shot(page, "r13-reports-police-en-narrow")
    assert page.problems == [], f"the browser reported: {page.problems}"
    other = page.goto("/ui/dashboard?tenant=health")
    assert other is not None and other.status == 404
    assert "hlog-1" not in page.content() and "Sở Y tế" not in page.content()
    page.context.close()

    page = open_page(browser, site, "mgr_hq")
    page.goto("/ui/dashboard")
    alt = charts(page)
    assert alt["chart-agencies"].endswith("Công an tỉnh 3, Sở Y tế 1."), alt["chart-agencies"]
    assert "hlog-1" in alt["chart-uptime"] and "(Sở Y tế)" in alt["chart-uptime"]
    shot(page, "r13-dashboard-province-vi")
    assert page.problems == [], f"the browser reported: {page.problems}"
    page.context.close()
