"""The threat-intel lists page (the issue's UI page "threat-intel lists"): scoped listing for
analysts, import and delete for admins with CSRF; and in headless Chromium, in Vietnamese."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from intel import lists
from soc_api.demo import DEMO_PASSWORD
from soc_api.main import create_app
from soc_api.services import accounts
from soc_api.ui.session import CSRF_HEADER
from soc_core.auth import PROVINCE, Membership
from soc_core.config import Settings
from soc_core.store import Store
from tests.intel.support import DATA, load
from tests.support.browser import World, shot, sign_in
from tests.ui.test_pages import PASSWORD
from tests.ui.test_pages import sign_in as form_sign_in


def test_i6_ui_intel_page_scoped_import_and_delete(sqlite_store: Store) -> None:
    for tenant in ("police", "health"):
        accounts.add_tenant(sqlite_store, tenant_id=tenant, name=tenant.title())
    accounts.add_user(sqlite_store, username="ra", password=PASSWORD, memberships=[Membership("police", "admin")])
    accounts.add_user(sqlite_store, username="ana", password=PASSWORD, memberships=[Membership("police", "analyst")])
    accounts.add_user(sqlite_store, username="boss", password=PASSWORD, memberships=[Membership(PROVINCE, "admin")])
    load(sqlite_store, "misp_event.json", tenant="health", list_name="health-only")
    load(sqlite_store, "bundle.json", tenant="*", list_name="national")

    analyst = TestClient(create_app(Settings(), sqlite_store), base_url="http://127.0.0.1")
    csrf_ana = form_sign_in(analyst, "ana")
    page = analyst.get("/ui/intel")
    assert page.status_code == 200 and "national" in page.text and "health-only" not in page.text
    assert 'data-testid="intel-import"' not in page.text and 'data-testid="intel-delete"' not in page.text
    form = {"tenant": "police", "name": "mine", "format": "csv", "content": "ip,192.0.2.9\n"}
    assert analyst.post("/ui/intel", data=form, headers={CSRF_HEADER: csrf_ana}).status_code == 403

    client = TestClient(create_app(Settings(), sqlite_store), base_url="http://127.0.0.1")
    csrf = form_sign_in(client, "ra")
    assert client.post("/ui/intel", data=form).status_code == 403  # no CSRF token
    content = (DATA / "list.csv").read_text(encoding="utf-8")
    done = client.post("/ui/intel", data={**form, "content": content}, headers={CSRF_HEADER: csrf})
    assert done.status_code == 200 and 'data-testid="intel-report"' in done.text
    assert "4 mới" in done.text and "upload:7" in done.text  # Vietnamese by default; the skipped lines shown
    assert [item["name"] for item in lists.lists(sqlite_store, ("police",))] == ["national", "mine"]
    bad = client.post("/ui/intel", data={**form, "format": "stix", "content": "{"}, headers={CSRF_HEADER: csrf})
    assert bad.status_code == 422 and 'data-testid="intel-error"' in bad.text and "upload" in bad.text
    assert client.post("/ui/intel", data={**form, "tenant": "*"}, headers={CSRF_HEADER: csrf}).status_code == 403
    other = client.post("/ui/intel/health/health-only/delete", headers={CSRF_HEADER: csrf, "hx-request": "true"})
    assert other.status_code == 404
    national = client.post("/ui/intel/%2A/national/delete", headers={CSRF_HEADER: csrf, "hx-request": "true"})
    assert national.status_code == 403
    deleted = client.post("/ui/intel/police/mine/delete", headers={CSRF_HEADER: csrf})
    assert deleted.status_code == 200 and 'data-testid="intel-notice"' in deleted.text
    assert [item["name"] for item in lists.lists(sqlite_store, None)] == ["national", "health-only"]


def test_i6_intel_page_in_the_browser(page: Any, world: World) -> None:
    accounts.add_user(
        world.store, username="intel_ra", password=DEMO_PASSWORD, memberships=[Membership("police", "admin")]
    )
    load(world.store, "misp_event.json", tenant="health", list_name="health-secret")
    sign_in(page, "intel_ra")
    page.click("[data-testid=nav-intel]")
    page.wait_for_url("**/ui/intel")
    assert page.text_content("h1") == "Danh sách tình báo mối đe dọa"
    assert "health-secret" not in page.text_content("[data-testid=intel-lists]")
    page.fill("[data-testid=intel-name]", "browser-list")
    page.select_option("[data-testid=intel-format]", "csv")
    page.select_option("[data-testid=intel-type]", "domain")
    page.fill("[data-testid=intel-content]", "bad.example\nno_dot\n")
    page.click("[data-testid=intel-import]")
    page.wait_for_selector("[data-testid=intel-report]")
    assert "1 mới" in page.text_content("[data-testid=intel-report]")
    assert "upload:2" in page.text_content("[data-testid=intel-problems]")
    row = page.locator("tr[data-list='police:browser-list']")
    assert row.count() == 1 and "domain 1" in row.text_content()
    shot(page, "intel-imported-vi")
    row.locator("[data-testid=intel-delete]").click()
    page.wait_for_selector("[data-testid=intel-notice]")
    assert page.locator("tr[data-list='police:browser-list']").count() == 0
