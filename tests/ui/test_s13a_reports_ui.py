"""Reports-API brief item 4 in headless Chromium: the dashboard (numbers counted by the store,
an agency manager's limited to that agency), the "Reports" page in Vietnamese and English (the
stored report generated from the page, shown in its sandboxed frame), the PDF download, and an
agency manager reaching no other agency's report or numbers."""

from __future__ import annotations

import re
import shutil
import subprocess
from contextlib import suppress
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from reports import stored
from soc_api.demo import DEMO_PASSWORD
from soc_api.services import accounts
from soc_core.alert_status import OPEN_STATUSES
from soc_core.auth import PROVINCE, Membership
from soc_core.errors import Conflict
from soc_core.events import utcnow
from soc_core.store.base import MAX_LIST_SIZE
from tests.support.browser import World, shot, sign_in

MANAGERS = {"manager_police": Membership("police", "manager"), "manager_hq": Membership(PROVINCE, "manager")}


def managers(world: World) -> None:
    for username, membership in MANAGERS.items():
        with suppress(Conflict):  # the world is shared by the session's tests
            accounts.add_user(world.store, username=username, password=DEMO_PASSWORD, memberships=[membership])


def sign_in_as(page: Any, world: World, username: str) -> None:
    managers(world)
    sign_in(page, username)


def open_alerts(world: World, tenants: tuple[str, ...] | None) -> int:
    """The expected number, read another way: every open alert listed (the dashboard counts)."""
    docs = world.store.list_docs("alerts", tenants=tenants, filters={"status": list(OPEN_STATUSES)}, size=MAX_LIST_SIZE)
    assert docs.next_cursor is None
    return len(docs.items)


def this_week() -> str:
    year, number, _ = utcnow().astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).isocalendar()
    return f"{year}-W{number:02d}"


def test_s13a_4_dashboard_counts_only_the_managers_agency(page: Any, world: World) -> None:
    sign_in_as(page, world, "manager_police")
    page.click("[data-testid=nav-dashboard]")
    page.wait_for_url("**/ui/dashboard")
    assert page.text_content("h1") == "Tổng quan an ninh"
    options = page.locator("[data-testid=dashboard-tenant] option").evaluate_all("os => os.map(o => o.value)")
    assert options == ["police"], f"an agency manager may pick only their agency, offered {options}"
    police = open_alerts(world, ("police",))
    assert police > 0, "the demo world has police alerts"
    assert page.text_content("[data-testid=dash-open-total]") == str(police)
    days = page.locator("[data-testid=dash-days] tr[data-day]")
    assert days.count() == 30
    assert page.locator("[data-testid=dash-weeks] tr[data-week]").count() == 8
    assert "SSH" in page.text_content("[data-testid=dash-rules]")
    assert page.evaluate("window.__pwned") is None
    shot(page, "dashboard-police-vi")
    # another agency's dashboard: not found, and nothing of it shown
    other = page.goto("/ui/dashboard?tenant=health")
    assert other is not None and other.status == 404
    assert "dash-open-total" not in page.content()

    page.context.clear_cookies()
    sign_in_as(page, world, "manager_hq")
    page.goto("/ui/dashboard")
    assert page.text_content("[data-testid=dash-open-total]") == str(open_alerts(world, None))
    page.select_option("[data-testid=dashboard-tenant]", "health")
    page.click("[data-testid=dashboard-pick] button[type=submit]")
    page.wait_for_url("**/ui/dashboard?tenant=health")
    assert page.text_content("[data-testid=dash-open-total]") == str(open_alerts(world, ("health",)))
    page.click(".lang >> text=EN")
    page.wait_for_selector("h1:text('Security dashboard')")
    assert "sensors" in page.text_content("[data-testid=dash-sensors]")


def pdf_text(path: Path) -> str:
    tool = shutil.which("pdftotext")
    assert tool, "pdftotext is missing: run scripts/install-system-deps (Debian poppler-utils)"
    out = subprocess.run([tool, str(path), "-"], capture_output=True, text=True, check=True)
    return re.sub(r"\s+", " ", out.stdout)


def test_s13a_4_report_page_in_both_languages_and_the_pdf(page: Any, world: World, tmp_path: Path) -> None:
    week = this_week()
    report_id = stored.report_id("police", week)
    world.store.delete_doc(stored.KIND, report_id)  # generated here, from the page
    sign_in_as(page, world, "manager_police")
    page.click("[data-testid=nav-reports]")
    page.wait_for_url("**/ui/reports")
    assert page.text_content("h1") == "Báo cáo hằng tuần"
    options = page.locator("[data-testid=report-tenant] option").evaluate_all("os => os.map(o => o.value)")
    assert options == ["police"]
    page.fill("[data-testid=report-week]", week)
    page.click("[data-testid=report-show]")
    page.wait_for_selector("[data-testid=report-missing]")
    page.click("[data-testid=report-generate]")
    page.wait_for_selector("[data-testid=report-frame]")
    assert world.store.get_doc(stored.KIND, report_id).body["generated_by"] == "manager_police"
    assert page.text_content("[data-testid=report-name]") == "Công an tỉnh"
    frame = page.frame_locator("[data-testid=report-frame]")
    assert frame.locator("h1").inner_text() == "Báo cáo an ninh mạng hằng tuần"
    assert "Sở Y tế" not in frame.locator("body").inner_text()
    shot(page, "reports-vi")

    # the PDF is drawn on request (charts, WeasyPrint): 30-40 s on a loaded 2-core machine
    with page.expect_download(timeout=180_000) as download:
        page.click("[data-testid=report-pdf]", no_wait_after=True)
    saved = tmp_path / "report.pdf"
    download.value.save_as(saved)
    assert download.value.suggested_filename == f"canhgac-{report_id}-vi.pdf"
    text = pdf_text(saved)
    for words in ("Báo cáo an ninh mạng hằng tuần", "Công an tỉnh", "Cảnh báo"):
        assert words in text, f"{words!r} not in the downloaded PDF:\n{text[:1500]}"
    assert "Sở Y tế" not in text

    page.click(".lang >> text=EN")
    page.wait_for_selector("h1:text('Weekly reports')")
    assert page.frame_locator("[data-testid=report-frame]").locator("h1").inner_text() == "Weekly security report"
    shot(page, "reports-en")


def test_s13a_4_an_agency_manager_reaches_no_other_agencys_report(page: Any, world: World) -> None:
    week = this_week()
    managers(world)
    stored.generate(world.store, world.settings, week=week, tenant="health", generated_by="test")
    stored.generate(world.store, world.settings, week=week, tenant=PROVINCE, generated_by="test")
    sign_in(page, "manager_police")
    for path in (
        f"/ui/reports?week={week}&tenant=health",
        f"/ui/reports?week={week}&tenant=*",
        f"/ui/reports/{stored.report_id('health', week)}/document?format=html",
        f"/ui/reports/{stored.report_id(PROVINCE, week)}/document?format=pdf",
    ):
        response = page.goto(path)
        assert response is not None and response.status == 404, (path, response and response.status)
        assert "Sở Y tế" not in page.content()
