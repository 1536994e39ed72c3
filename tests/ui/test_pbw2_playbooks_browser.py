"""Issue 12, pbweb item 2, in headless Chromium: an analyst runs a playbook from an alert page,
a manager sees the approvals count in the top bar and approves the gated step on the approvals
page, the run page follows the run to its end by itself, and the run is on the alert's timeline;
active blocks are listed and an unblock that fails says why; forms without the CSRF token are
refused (the threat-intel page has its own test, tests/ui/test_intel_ui.py). Each page is also
shot at desktop width and at 390 px (``SOC_UI_SHOTS``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from playbooks.format import load_library
from playbooks.runner import Runner, RunnerThread
from soc_api.main import create_app
from soc_api.services import accounts
from soc_core.auth import Membership
from soc_core.config import Settings
from soc_core.store import SqliteStore
from tests.playbooks.conftest import make_alert
from tests.support.browser import shot, sign_in
from tests.support.servers import serve
from workflow import cases
from workflow.principals import Actor, Principal

PASSWORD = "a-very-long-password"
TRIAGE = """\
name: ssh-triage
description: tag the alert, then block its source once a manager approves
steps:
  - id: tag
    action: alert.tag
    with: {add: [playbook-seen]}
  - id: block
    action: block_ip
    with: {address: "{{ alert.entities['source.ip'][0] }}", reason: SSH brute force}
    approval: {roles: [manager], agency: own}
"""


@dataclass
class Site:
    url: str
    store: SqliteStore
    alert: str


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """Its own store, playbooks folder, server and runner (the engine role's loop)."""
    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / "ssh-triage.yml").write_text(TRIAGE)
    (folder / "broken.yml").write_text("name: Bad Name\nsteps: []\n")
    settings = Settings(data_dir=tmp_path, playbooks={"dirs": [folder], "library": False, "poll_seconds": 0.2})
    store = SqliteStore(tmp_path / "canhgac.db")
    store.setup()
    for tenant in ("police", "health"):
        accounts.add_tenant(store, tenant_id=tenant, name=tenant)
    for username, tenant, role in (
        ("ana", "police", "analyst"),
        ("boss", "police", "manager"),
        ("boss_health", "health", "manager"),
        ("adm", "police", "admin"),
    ):
        accounts.add_user(store, username=username, password=PASSWORD, memberships=[Membership(tenant, role)])  # type: ignore[arg-type]
    app = create_app(settings, store)
    runner = RunnerThread(Runner(store, settings, load_library(settings.playbooks.dirs)))
    runner.start()
    try:
        with serve(app) as url:
            yield Site(url, store, make_alert(store, tenant="police"))
    finally:
        runner.stop_event.set()
        runner.join(timeout=10)
        store.close()


@pytest.fixture
def tabs(browser: Any, site: Site) -> Iterator[Any]:
    """New pages (each its own context: its own session), recording script errors."""
    contexts: list[Any] = []

    def open_tab(width: int = 1400) -> Any:
        context = browser.new_context(base_url=site.url, viewport={"width": width, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        return page

    yield open_tab
    for context in contexts:
        context.close()


def test_pbw2_run_from_alert_approve_and_timeline(tabs: Any, site: Site) -> None:
    ana = tabs()
    sign_in(ana, "ana", PASSWORD)
    ana.goto(f"/ui/alerts/{site.alert}")
    ana.wait_for_selector("[data-testid=run-panel]")
    assert ana.is_checked("[data-testid=run-dry]")  # dry run unless the analyst unticks it
    ana.select_option("[data-testid=run-playbook]", "ssh-triage")
    ana.click("[data-testid=run-start]")
    ana.wait_for_url("**/ui/playbook-runs/*")
    # the run page follows the runner by itself (htmx polling) up to the gate
    ana.wait_for_selector("#run[data-status=waiting_approval]")
    assert ana.inner_text("tr[data-step=tag] [data-testid=step-status]") in ("succeeded", "thành công")
    assert ana.locator("[data-testid=approve]").count() == 0  # an analyst may not decide a manager's gate
    run_url = ana.url
    shot(ana, "pbw-run-waiting")

    # another agency's manager: nothing to approve, no count
    other = tabs()
    sign_in(other, "boss_health", PASSWORD)
    other.goto("/ui/approvals")
    other.wait_for_selector("[data-testid=approvals] .empty")
    assert other.locator("[data-testid=approvals-count]").count() == 0

    boss = tabs()
    sign_in(boss, "boss", PASSWORD)
    boss.wait_for_selector("[data-testid=approvals-count]")
    assert boss.inner_text("[data-testid=approvals-count]") == "1"
    boss.click("[data-testid=nav-approvals]")
    boss.wait_for_selector("[data-testid=approvals] tr[data-step=block]")
    shot(boss, "pbw-approvals")
    boss.fill("tr[data-step=block] input[name=comment]", "confirmed brute force")
    boss.click("tr[data-step=block] [data-testid=approve]")
    boss.wait_for_selector("[data-testid=approvals-notice]")
    assert boss.locator("[data-testid=approvals] tr[data-step=block]").count() == 0
    boss.reload()
    boss.wait_for_selector("[data-testid=approvals] .empty")
    assert boss.locator("[data-testid=approvals-count]").count() == 0

    # the analyst's page, untouched, reaches the end: the approver is shown, the block only planned
    ana.wait_for_selector("#run[data-status=succeeded]")
    approval = ana.inner_text("tr[data-step=block] [data-testid=step-approval]")
    assert "boss" in approval and "confirmed brute force" in approval
    assert '"dry_run": true' in ana.inner_html("tr[data-step=block] pre.raw")
    shot(ana, "pbw-run-done")
    ana.click("[data-testid=run-alert]")
    ana.wait_for_selector("[data-testid=alert-timeline]")
    timeline = ana.inner_text("[data-testid=alert-timeline]")
    assert "ssh-triage: started" in timeline and "step block approved" in timeline
    ana.click("[data-testid=alert-timeline] a >> nth=0")
    ana.wait_for_url(run_url)
    for page in (ana, boss, other):
        assert page.errors == []


def test_pbw2_playbooks_and_blocks_pages_and_csrf(tabs: Any, site: Site) -> None:
    adm = tabs()
    sign_in(adm, "adm", PASSWORD)
    adm.click("[data-testid=nav-playbooks]")
    adm.wait_for_selector("[data-testid=playbooks] tr[data-playbook=ssh-triage]")
    problems = adm.inner_text("[data-testid=playbook-problems]")
    assert "broken.yml:1" in problems and "broken.yml:2" in problems
    shot(adm, "pbw-playbooks")
    site.store.create_doc(
        "containment",
        {
            "tenant": "police",
            "address": "203.0.113.7",
            "target": "gw-gone",  # a gateway no longer configured: lifting it fails, and says so
            "status": "active",
            "reason": "SSH brute force",
            "created_at": "2026-12-06T10:00:00.000Z",
            "expires_at": "2999-01-01T00:00:00.000Z",
        },
        doc_id="block-1",
    )
    adm.click("[data-testid=nav-blocks]")
    adm.wait_for_selector("[data-testid=blocks] tr[data-block=block-1]")
    adm.click("tr[data-block=block-1] [data-testid=unblock]")
    adm.wait_for_selector("[data-testid=blocks-error]")
    assert "gw-gone" in adm.inner_text("[data-testid=blocks-error]")
    assert site.store.get_doc("containment", "block-1").body["status"] == "active"
    shot(adm, "pbw-blocks")
    # forms without the CSRF token are refused
    ana = tabs(width=390)
    sign_in(ana, "ana", PASSWORD)
    forged = ana.request.post("/ui/playbooks/run", form={"playbook": "ssh-triage", "alert_id": site.alert})
    assert forged.status == 403 and "CSRF" in forged.text()
    assert site.store.list_docs("playbook_runs").items == []
    case = cases.create_case(
        site.store,
        title="SSH brute force on the portal",
        description="",
        severity="high",
        alert_ids=[site.alert],
        scope=("police",),
        actor=Actor(principal=Principal(id="ana", name="ana", kind="user")),
    )
    ana.goto(f"/ui/cases/{case.id}")
    ana.wait_for_selector("[data-testid=run-panel] [data-testid=run-start]")  # the case page runs playbooks too
    shot(ana, "pbw-case-390")
    for path, name in (("/ui/playbooks", "pbw-playbooks-390"), (f"/ui/alerts/{site.alert}", "pbw-alert-390")):
        ana.goto(path)
        ana.wait_for_load_state("networkidle")
        shot(ana, name)
    assert adm.errors == [] and ana.errors == []
