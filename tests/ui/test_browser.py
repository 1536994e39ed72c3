"""The analysts' UI in headless Chromium: sign-in, triage, cases, hunting, languages, and
hostile event content (A14)."""

from __future__ import annotations

import re
from typing import Any

from soc_api.ui.session import CSRF_HEADER
from tests.support.browser import World, fresh_alert, shot, sign_in


def test_sign_in_and_see_the_queue_in_vietnamese(page: Any, world: World) -> None:
    page.goto("/ui/alerts")
    page.wait_for_url(re.compile(r"/ui/login\?next=/ui/alerts"))
    page.fill("input[name=username]", "analyst_police")
    page.fill("input[name=password]", "wrong-password-123")
    page.click("button[type=submit]")
    assert "không đúng" in page.text_content("[data-testid=login-error]")
    sign_in(page)
    assert page.text_content("h1") == "Hàng đợi cảnh báo"
    assert page.text_content("[data-testid=agency]") == "Công an tỉnh"
    rows = page.locator("table.alerts tbody tr")
    assert rows.count() >= 2
    assert "SSH Brute Force" in page.text_content("table.alerts")
    assert "SSH Password Spraying" not in page.text_content("table.alerts")  # the health agency's
    cookie = next(c for c in page.context.cookies() if c["name"] == "cg_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    shot(page, "queue-vi")


def test_queue_filters_and_counts(page: Any, world: World) -> None:
    sign_in(page)
    page.select_option("select[name=level]", "critical")
    page.click(".filters button[type=submit]")
    page.wait_for_url(re.compile(r"level=critical"))
    assert "SSH Brute Force" not in page.text_content("table.alerts")
    assert "Hostile" in page.text_content("table.alerts")
    assert re.search(r"Mới\s*\d+", page.text_content("[data-testid=counts]"))


def test_acknowledge_comment_and_conflict(page: Any, world: World) -> None:
    alert_id = fresh_alert(world)
    sign_in(page)
    page.goto(f"/ui/alerts/{alert_id}")
    assert "T1110.001 Brute Force: Password Guessing" in page.text_content("[data-testid=attack]")
    assert "203.0.113.45" in page.text_content("[data-testid=entities]")
    assert page.locator("details.event").count() >= 1
    stale = page.context.new_page()
    stale.goto(f"/ui/alerts/{alert_id}")
    page.click("[data-testid=set-acknowledged]")
    page.wait_for_selector("[data-testid=triage-ok]")
    assert page.text_content("[data-testid=status]") == "Đã tiếp nhận"
    page.fill("#comments textarea", "Đã chặn IP 203.0.113.45 trên tường lửa")
    page.click("[data-testid=add-comment]")
    page.wait_for_selector("text=Đã chặn IP 203.0.113.45")
    assert world.store.get_doc("alerts", alert_id).body["comments"][-1]["author"] == "analyst_police"
    # the other tab still holds the old version: its change is refused with a clear message
    stale.click("[data-testid=assign]")
    stale.wait_for_selector("[data-testid=triage-error]")
    assert "người khác thay đổi" in stale.text_content("[data-testid=triage-error]")
    assert stale.text_content("[data-testid=status]") == "Đã tiếp nhận"  # fresh state shown
    stale.click("[data-testid=assign]")  # retry on the fresh version works
    stale.wait_for_selector("[data-testid=triage-ok]")
    assert world.store.get_doc("alerts", alert_id).body["assignee"] == "analyst_police"
    shot(page, "detail-vi")


def test_language_switch(page: Any, world: World) -> None:
    sign_in(page)
    page.click(".lang >> text=EN")
    page.wait_for_selector("h1:text('Alert queue')")
    assert page.get_attribute("html", "lang") == "en"
    shot(page, "queue-en")
    page.goto(f"/ui/alerts/{world.police_alert}")
    assert "Matched events" in page.content()
    shot(page, "detail-en")
    page.click(".lang >> text=VI")
    page.wait_for_selector("text=Sự kiện khớp luật")
    assert page.url.endswith(f"/ui/alerts/{world.police_alert}")


def test_create_a_case_from_selected_alerts(page: Any, world: World) -> None:
    first, second = fresh_alert(world), fresh_alert(world)
    sign_in(page)
    page.check(f"tr[data-alert-id='{first}'] input.alert-select")
    page.check(f"tr[data-alert-id='{second}'] input.alert-select")
    page.fill("#new-case input[name=title]", "Dò mật khẩu SSH vào cổng thông tin")
    page.select_option("#new-case select[name=severity]", "high")
    page.click("[data-testid=create-case]")
    page.wait_for_url(re.compile(r"/ui/cases/[0-9a-f]+$"))
    assert "Dò mật khẩu SSH" in page.text_content("[data-testid=case-title]")
    assert "203.0.113.45" in page.text_content("[data-testid=observables]")
    assert page.locator("a[href^='/ui/alerts/']").count() == 2
    page.fill("input[name=add_task]", "Chặn 203.0.113.45")
    page.click("[data-testid=add-task]")
    page.wait_for_selector("[data-testid=tasks] >> text=Chặn 203.0.113.45")
    shot(page, "case-vi")
    page.click(".lang >> text=EN")
    page.wait_for_selector("text=Observables")
    shot(page, "case-en")
    assert world.store.get_doc("alerts", first).body["case_id"]
    page.goto("/ui/cases")
    assert "Dò mật khẩu SSH" in page.text_content("table.grid")


def test_hunt_and_pivot(page: Any, world: World) -> None:
    sign_in(page)
    page.goto("/ui/hunt")
    page.fill("[data-testid=hunt-q]", "source.ip:203.0.113.45")
    page.click("[data-testid=hunt-run]")
    page.wait_for_url(re.compile(r"q=source.ip"))
    results = page.text_content("[data-testid=hunt-results]")
    assert "portal-congan" in results
    assert "198.51.100.77" not in results  # the health agency's attacker
    shot(page, "hunt-vi")
    page.locator("[data-testid=hunt-results] a.pivot", has_text="portal-congan").first.click()
    page.wait_for_url(re.compile(r"q=host.name%3A%22portal-congan%22"))
    assert page.input_value("[data-testid=hunt-q]") == 'host.name:"portal-congan"'
    assert "nguyenvana" in page.text_content("[data-testid=hunt-results]")
    page.fill("[data-testid=hunt-q]", "*oot")
    page.click("[data-testid=hunt-run]")
    page.wait_for_url(re.compile(r"q=\*oot"))  # is_visible() does not wait for the new page
    page.wait_for_selector("[data-testid=hunt-error]", state="visible", timeout=15_000)
    assert "*oot" in (page.text_content("[data-testid=hunt-error]") or "")  # says what was refused
    page.click(".lang >> text=EN")
    page.fill("[data-testid=hunt-q]", "user.name:root")
    page.click("[data-testid=hunt-run]")
    page.wait_for_selector("text=Failed password")
    shot(page, "hunt-en")


def test_hostile_content_is_shown_as_text_and_never_runs(page: Any, world: World) -> None:
    """A14 / L3: <script>, <img onerror>, ANSI escapes and a 1 MB field stay inert text."""
    console_errors: list[str] = []
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    sign_in(page)
    for path in (f"/ui/alerts/{world.hostile_alert}", "/ui/alerts?level=critical", "/ui/hunt?q=host.name:evil-host"):
        page.goto(path)
        page.wait_for_load_state("load")
        assert page.evaluate("window.__pwned") is None, path
        assert page.locator("main script, main img").count() == 0, path
    page.goto(f"/ui/alerts/{world.hostile_alert}")
    body = page.text_content("main")
    assert "<script>window.__pwned=1</script>" in body
    assert 'onerror="window.__pwned=2' in body
    assert "\\x1b[31mRED" in body and "\x1b" not in body
    assert "\\r\\nfake" in body
    assert "… [+996,000 chars]" in body  # the 1 MB event.original, cut at 4000 characters
    assert len(page.content()) < 200_000  # the 1 MB field was cut, not shipped
    page.fill("#comments textarea", "<img src=x onerror=alert(document.cookie)> \x1b[2J")
    page.click("[data-testid=add-comment]")
    page.wait_for_selector("text=<img src=x onerror=alert(document.cookie)>")
    assert page.evaluate("window.__pwned") is None
    assert page.dialogs == []
    assert page.evaluate("document.cookie") == "" or "cg_session" not in page.evaluate("document.cookie")
    shot(page, "hostile-vi")


def test_security_headers(page: Any, world: World) -> None:
    response = page.goto("/ui/login")
    headers = response.headers
    assert headers["content-security-policy"] == (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert page.locator("script:not([src])").count() == 0
    assert page.locator("[style]").count() == 0
    assert page.request.get("/ui/static/htmx.min.js").headers["content-type"].startswith("text/javascript")


def test_csrf_is_required_on_every_change(page: Any, world: World) -> None:
    alert_id = fresh_alert(world)
    sign_in(page)
    page.goto(f"/ui/alerts/{alert_id}")
    version = page.get_attribute("#triage", "data-version")
    form = {"version": version, "action": "close", "value": "true_positive", "note": "contained"}
    missing = page.request.post(f"/ui/alerts/{alert_id}", form=form)
    wrong = page.request.post(f"/ui/alerts/{alert_id}", form=form, headers={CSRF_HEADER: "0" * 64})
    assert missing.status == wrong.status == 403
    assert world.store.get_doc("alerts", alert_id).body["status"] == "new"
    token = page.get_attribute("meta[name=csrf-token]", "content")
    right = page.request.post(f"/ui/alerts/{alert_id}", form=form, headers={CSRF_HEADER: token})
    assert right.status == 200
    assert world.store.get_doc("alerts", alert_id).body["status"] == "resolved"
    # the cookie never authenticates the API
    assert page.request.get("/api/alerts").status == 401


def test_another_agencys_alert_is_not_found(page: Any, world: World) -> None:
    sign_in(page)
    response = page.goto(f"/ui/alerts/{world.health_alert}")
    assert response.status == 404
    assert "Không tìm thấy" in page.text_content("h1")
    assert "SSH" not in page.text_content("main")


def test_logout_and_expired_session_go_to_sign_in(page: Any, world: World) -> None:
    sign_in(page)
    page.click("[data-testid=logout]")
    page.wait_for_url("**/ui/login")
    page.goto("/ui/cases")
    page.wait_for_url(re.compile(r"/ui/login\?next=/ui/cases"))
    sign_in(page)
    for session in world.store.list_docs("sessions", filters={"user_id": "analyst_police"}).items:
        world.store.delete_doc("sessions", session.id)  # as an idle timeout would
    page.goto("/ui/hunt")
    page.wait_for_url(re.compile(r"/ui/login"))
