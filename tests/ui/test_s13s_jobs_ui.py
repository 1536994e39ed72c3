"""Item 4 of the scheduler brief in the UI: the "Jobs" page under the admin menu (province-wide
admins only), with each job's schedule and last run, its runs, and "run now" — in headless
Chromium, in Vietnamese and English."""

from __future__ import annotations

from typing import Any

from soc_api.demo import DEMO_PASSWORD
from soc_api.services import accounts
from soc_core.auth import PROVINCE, Membership
from tests.support.browser import World, shot, sign_in


def test_s13s_jobs_page_runs_a_job_and_shows_its_runs(page: Any, world: World) -> None:
    accounts.add_user(
        world.store, username="jobs_boss", password=DEMO_PASSWORD, memberships=[Membership(PROVINCE, "admin")]
    )
    sign_in(page, "jobs_boss")
    page.click("[data-testid=nav-jobs]")
    page.wait_for_url("**/ui/jobs")
    assert page.text_content("h1") == "Tác vụ định kỳ"
    row = page.locator("tr[data-job=throttle-purge]")
    assert "every 60 min" in row.text_content()
    before = world.store.list_docs("job_runs", filters={"job": "throttle-purge"}).items
    row.locator("[data-testid=job-run]").click()
    page.wait_for_selector("[data-testid=job-done]")
    assert "throttle-purge: thành công" in page.text_content("[data-testid=job-done]")
    assert page.locator("tr[data-job=throttle-purge] [data-testid=job-status]").text_content().strip() == "thành công"
    after = world.store.list_docs("job_runs", filters={"job": "throttle-purge"}).items
    assert len(after) == len(before) + 1 and after[0].body["actor"] == "jobs_boss"
    page.click("tr[data-job=throttle-purge] >> text=throttle-purge")
    page.wait_for_selector("[data-testid=job-runs]")
    runs = page.text_content("[data-testid=job-runs]")
    assert "chạy tay (jobs_boss)" in runs and '"removed": 0' in runs
    shot(page, "jobs-vi")
    page.click(".lang >> text=EN")
    page.wait_for_selector("h1:text('Scheduled jobs')")
    assert "by hand (jobs_boss)" in page.text_content("[data-testid=job-runs]")
    assert page.locator("tr[data-job=throttle-purge] [data-testid=job-status]").text_content().strip() == "succeeded"
    shot(page, "jobs-en")
    assert page.dialogs == []


def test_s13s_agency_admins_and_analysts_have_no_jobs_page(page: Any, world: World) -> None:
    accounts.add_user(
        world.store, username="jobs_chief", password=DEMO_PASSWORD, memberships=[Membership("police", "admin")]
    )
    for username in ("jobs_chief", "analyst_police"):
        page.context.clear_cookies()
        sign_in(page, username)
        assert page.locator("[data-testid=nav-jobs]").count() == 0
        response = page.goto("/ui/jobs")
        assert response is not None and response.status == 403
