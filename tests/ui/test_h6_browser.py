"""Issue 11 item 6 in headless Chromium: the first admin enrols TOTP and must choose a password
before anything else; an admin re-enables people and hands out a one-time reset code that the
person uses on the reset page; everyone can change their own password."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest

from soc_api.main import create_app
from soc_api.runtime import ensure_admin
from soc_api.services import accounts
from soc_core.auth import Membership
from soc_core.config import Settings
from soc_core.store import SqliteStore
from tests.support.browser import shot
from tests.support.servers import serve

PASSWORD = "a-very-long-password"
ADMIN_NEW = "lantern-harbour-quiet-41"


@dataclass
class Site:
    url: str
    store: SqliteStore
    admin_password: str


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """Its own store and server: these tests change passwords the shared UI world relies on."""
    store = SqliteStore(tmp_path / "canhgac.db")
    store.setup()
    admin_password = ensure_admin(store)
    assert admin_password
    accounts.add_tenant(store, tenant_id="police", name="Công an tỉnh")
    accounts.add_user(store, username="ana", password=PASSWORD, memberships=[Membership("police", "analyst")])
    settings = Settings(data_dir=tmp_path)
    settings.auth.totp_required_roles = ["admin"]  # the default, as `soc up` runs
    try:
        with serve(create_app(settings, store)) as url:
            yield Site(url, store, admin_password)
    finally:
        store.close()


@pytest.fixture
def tab(browser: Any, site: Site) -> Iterator[Any]:
    context = browser.new_context(base_url=site.url, viewport={"width": 1300, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))  # scripts that fail (CSP, htmx)
    page.errors = errors
    try:
        yield page
    finally:
        context.close()


def log_in(page: Any, username: str, password: str) -> None:
    page.goto("/ui/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def first_admin_sign_in(page: Any, site: Site) -> None:
    """What a person sees on the first sign-in of `make demo`: TOTP enrolment, then the forced
    password change, then the queue."""
    log_in(page, "admin", site.admin_password)
    page.wait_for_selector("[data-testid=totp-qr]")
    assert page.eval_on_selector("[data-testid=totp-qr]", "img => img.complete && img.naturalWidth > 0")
    secret = page.text_content("[data-testid=totp-secret]").strip()
    assert secret in page.text_content("[data-testid=totp-uri]")
    shot(page, "h6-totp-enrol")
    page.fill("input[name=code]", pyotp.TOTP(secret).now())
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/password")
    assert page.is_visible("[data-testid=password-forced]")
    page.goto("/ui/alerts")  # nothing else before the password changes
    page.wait_for_url("**/ui/password")
    page.fill("input[name=current_password]", site.admin_password)
    page.fill("input[name=new_password]", "password1234")
    page.fill("input[name=new_password2]", "password1234")
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=password-error]")
    assert "password1234" not in page.content()
    page.fill("input[name=current_password]", site.admin_password)
    page.fill("input[name=new_password]", ADMIN_NEW)
    page.fill("input[name=new_password2]", ADMIN_NEW)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/alerts")


def test_h6_first_admin_enrols_totp_and_changes_password(tab: Any, site: Site) -> None:
    first_admin_sign_in(tab, site)
    user = site.store.get_doc("users", "admin").body
    assert user["totp_secret"] and not user["must_change_password"]
    assert tab.errors == []


def test_h6_admin_resets_and_reenables_a_user(tab: Any, browser: Any, site: Site) -> None:
    first_admin_sign_in(tab, site)
    accounts.disable_user(site.store, "ana", actor="admin")
    tab.click("a[href='/ui/users']")
    tab.wait_for_url("**/ui/users")
    row = tab.locator("[data-testid=user-ana]")
    assert "đã khóa" in row.text_content()
    row.locator("button[value=enable]").click()
    tab.wait_for_selector("text=Đã mở khóa người dùng.")
    assert "đang hoạt động" in tab.locator("[data-testid=user-ana]").text_content()
    tab.locator("[data-testid=user-ana] button[value=reset]").click()
    code = tab.text_content("[data-testid=reset-code] code").strip()
    assert re.fullmatch(r"[A-Z2-9]{4}(-[A-Z2-9]{4}){3}", code)
    shot(tab, "h6-users")

    other = browser.new_context(base_url=site.url).new_page()
    other.goto("/ui/login")
    other.click("a[href='/ui/login/reset']")
    other.fill("input[name=username]", "ana")
    other.fill("input[name=code]", code)
    other.fill("input[name=password]", "river-kite-morning-77")
    other.fill("input[name=password2]", "river-kite-morning-77")
    other.click("button[type=submit]")
    other.wait_for_selector("[data-testid=login-notice]")
    log_in(other, "ana", "river-kite-morning-77")
    other.wait_for_url("**/ui/alerts")
    assert not other.is_visible("a[href='/ui/users']")  # analysts have no users page
    other.context.close()


def test_h6_change_own_password_in_ui(tab: Any, site: Site) -> None:
    log_in(tab, "ana", PASSWORD)
    tab.wait_for_url("**/ui/alerts")
    tab.click("[data-testid=user]")  # the user's settings (time zone), which link to the password page
    tab.wait_for_url("**/ui/settings")
    tab.click("a[href='/ui/password']")
    tab.wait_for_url("**/ui/password")
    tab.fill("input[name=current_password]", "wrong-current-password")
    tab.fill("input[name=new_password]", "river-kite-morning-77")
    tab.fill("input[name=new_password2]", "river-kite-morning-77")
    tab.click("button[type=submit]")
    tab.wait_for_selector("[data-testid=password-error]")
    assert "không đúng" in tab.text_content("[data-testid=password-error]")
    tab.fill("input[name=current_password]", PASSWORD)
    tab.fill("input[name=new_password]", "river-kite-morning-77")
    tab.fill("input[name=new_password2]", "river-kite-morning-77")
    tab.click("button[type=submit]")
    tab.wait_for_url("**/ui/alerts")
    tab.click("[data-testid=logout]")
    tab.wait_for_url("**/ui/login")
    log_in(tab, "ana", "river-kite-morning-77")
    tab.wait_for_url("**/ui/alerts")
