"""Issue 11 item 5 in the UI: the API keys page (admins; scoped; key shown once; revoke; last
use), without a browser and in headless Chromium."""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi.testclient import TestClient

from soc_api.demo import DEMO_PASSWORD
from soc_api.main import create_app
from soc_api.services import accounts, apikeys
from soc_api.ui.session import CSRF_HEADER
from soc_core.auth import PROVINCE, Membership
from soc_core.config import Settings
from soc_core.store import Store
from tests.support.browser import World, shot, sign_in
from tests.ui.test_pages import PASSWORD
from tests.ui.test_pages import sign_in as form_sign_in


def test_h5_ui_keys_page_is_for_admins_and_scoped(sqlite_store: Store) -> None:
    for tenant in ("police", "health"):
        accounts.add_tenant(sqlite_store, tenant_id=tenant, name=tenant.title())
    accounts.add_user(sqlite_store, username="chief", password=PASSWORD, memberships=[Membership("police", "admin")])
    accounts.add_user(sqlite_store, username="ana", password=PASSWORD, memberships=[Membership("police", "analyst")])
    accounts.add_user(sqlite_store, username="boss", password=PASSWORD, memberships=[Membership(PROVINCE, "admin")])
    health_doc, _ = apikeys.create_api_key(
        sqlite_store, name="health-siem", tenant="health", role="admin", owner="boss"
    )
    analyst = TestClient(create_app(Settings(), sqlite_store), base_url="http://127.0.0.1")
    form_sign_in(analyst, "ana")
    assert analyst.get("/ui/keys").status_code == 403
    assert "/ui/keys" not in analyst.get("/ui/alerts").text
    client = TestClient(create_app(Settings(), sqlite_store), base_url="http://127.0.0.1")
    csrf = form_sign_in(client, "chief")
    page = client.get("/ui/keys")
    assert page.status_code == 200 and "health-siem" not in page.text
    form = {"name": "police-siem", "tenant": "police", "role": "analyst", "owner": "ana", "expires_days": "30"}
    assert client.post("/ui/keys", data=form).status_code == 403  # no CSRF token
    created = client.post("/ui/keys", data=form, headers={CSRF_HEADER: csrf})
    assert created.status_code == 200
    key = re.search(r'data-testid="new-key">(cgk_[^<]+)<', created.text)
    assert key and "police-siem" in created.text
    assert key.group(1) not in client.get("/ui/keys").text  # shown once
    refused = client.post("/ui/keys", data={**form, "role": "admin"}, headers={CSRF_HEADER: csrf})
    assert refused.status_code == 422 and 'data-testid="key-error"' in refused.text
    bad_days = client.post("/ui/keys", data={**form, "expires_days": "366"}, headers={CSRF_HEADER: csrf})
    assert bad_days.status_code == 422
    other = client.post(f"/ui/keys/{health_doc.id}/revoke", headers={CSRF_HEADER: csrf, "hx-request": "true"})
    assert other.status_code == 404
    assert not sqlite_store.get_doc("apikeys", health_doc.id).body["revoked_at"]


def test_h5_keys_page_in_the_browser(page: Any, world: World) -> None:
    accounts.add_user(
        world.store, username="keys_chief", password=DEMO_PASSWORD, memberships=[Membership("police", "admin")]
    )
    apikeys.create_api_key(world.store, name="health-only", tenant="health", role="analyst", owner="analyst_health")
    sign_in(page, "keys_chief")
    page.click("[data-testid=nav-keys]")
    page.wait_for_url("**/ui/keys")
    assert page.text_content("h1") == "Khóa API"
    assert "health-only" not in page.text_content("[data-testid=keys]")
    page.fill("[data-testid=key-name]", "siem-police")
    page.select_option("[data-testid=key-role]", "analyst")
    page.fill("[data-testid=key-days]", "30")
    page.click("[data-testid=key-create]")
    page.wait_for_selector("[data-testid=new-key]")
    key = page.text_content("[data-testid=new-key]").strip()
    assert key.startswith("cgk_")
    shot(page, "keys-created-vi")
    with httpx.Client(base_url=world.url, timeout=30) as api:
        assert api.get("/api/alerts", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        page.reload()
        assert page.locator("[data-testid=new-key]").count() == 0
        assert key not in page.content()
        row = page.locator("tr", has_text="siem-police")
        assert row.locator("[data-testid=key-status]").text_content() == "Đang hoạt động"
        assert "127.0.0.1" in row.locator("[data-testid=key-last-used]").text_content()
        # the owner is the signed-in admin, shown in the row
        assert "keys_chief" in row.text_content()
        row.locator("[data-testid=key-revoke]").click()
        page.wait_for_selector("[data-testid=key-notice]")
        row = page.locator("tr", has_text="siem-police")
        assert row.locator("[data-testid=key-status]").text_content() == "Đã thu hồi"
        assert api.get("/api/alerts", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    # a key beyond its owner is refused with the reason
    page.fill("[data-testid=key-name]", "too-much")
    page.select_option("[data-testid=key-role]", "admin")
    page.fill("[data-testid=key-owner]", "analyst_police")
    page.click("[data-testid=key-create]")
    page.wait_for_selector("[data-testid=key-error]")
    assert "Không thể tạo khóa" in page.text_content("[data-testid=key-error]")
    page.click(".lang >> text=EN")
    page.wait_for_selector("h1:text('API keys')")
    assert page.locator("tr", has_text="siem-police").locator("[data-testid=key-status]").text_content() == "Revoked"
    shot(page, "keys-en")
    assert page.dialogs == []
    assert page.evaluate("window.__pwned") is None


def test_h5_analysts_have_no_keys_page(page: Any, world: World) -> None:
    sign_in(page)
    assert page.locator("[data-testid=nav-keys]").count() == 0
    response = page.goto("/ui/keys")
    assert response is not None and response.status == 403
