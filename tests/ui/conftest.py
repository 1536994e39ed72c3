"""A live server (uvicorn in a thread, SQLite with the demo data plus hostile fixtures) and
headless Chromium driven by Playwright.

Chromium comes from the Debian package (``/usr/bin/chromium``); without it — or without the
``playwright`` package — the browser tests are skipped with the reason (failed under CI=true).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from soc_api.demo import load_demo
from soc_api.main import create_app
from soc_api.runtime import build_engine
from soc_core.config import Settings
from soc_core.events import make_event, utcnow
from soc_core.store import SqliteStore
from tests.shared_data import unavailable
from tests.support.browser import World
from tests.support.servers import serve

CHROMIUM = Path(os.environ.get("SOC_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
XSS_SCRIPT = "<script>window.__pwned=1</script>"
XSS_IMG = '<img src=x onerror="window.__pwned=2;alert(1)">'
ANSI = "\x1b[31mRED\x1b[0m\x1b]0;title\x07"
HUGE = "A" * 1_000_000


def _hostile_event(tenant: str) -> dict[str, Any]:
    return make_event(
        tenant=tenant,
        dataset="system.auth",
        sensor_id="demo-evil",
        source="/var/log/auth.log",
        position=1,
        raw=b"evil",
        fields={
            "message": f"Failed password {XSS_SCRIPT} {XSS_IMG} {ANSI}",
            "user.name": XSS_IMG,
            "source.ip": "192.0.2.66",
            "host.name": "evil-host",
            "event.original": HUGE,
            "process.name": ANSI + '\r\nfake: {"json": true}',
        },
    )


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("ui")
    settings = Settings(data_dir=data_dir)
    store = SqliteStore(data_dir / "canhgac.db")
    store.setup()
    load_demo(settings, store)
    build_engine(settings, store).run_until_idle(limit=5000)
    event = _hostile_event("police")
    store.add_events([event])
    store.refresh()
    now = utcnow().strftime("%Y-%m-%dT%H:%M:%S.000Z")
    hostile = store.create_doc(
        "alerts",
        {
            "tenant": "police",
            "status": "new",
            "rule.id": "evil-rule",
            "rule.name": f"Hostile {XSS_SCRIPT}",
            "rule.level": "critical",
            "rule.tags": ["attack.t1059", XSS_IMG],
            "entities": {"user.name": [XSS_IMG], "source.ip": ["192.0.2.66"]},
            "event_ids": [event["event.id"]],
            "count": 1,
            "first_seen": now,
            "last_seen": now,
            "comments": [{"at": now, "author": "mallory", "text": f"{XSS_SCRIPT}{XSS_IMG}{ANSI}"}],
        },
    )
    alerts = {
        doc.body["tenant"]: doc.id for doc in store.list_docs("alerts", filters={"rule.name": "SSH Brute Force"}).items
    }
    try:
        with serve(create_app(Settings(data_dir=data_dir), store)) as url:
            yield World(
                url=url,
                store=store,
                settings=settings,
                police_alert=alerts["police"],
                health_alert=alerts["health"],
                hostile_alert=hostile.id,
            )
    finally:
        store.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    reason = ""
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415
    except ImportError:
        reason = "playwright is not installed (pip install playwright==1.65.2)"
    if not reason and not (CHROMIUM.exists() or shutil.which("chromium")):
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if reason:
        unavailable(reason)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, world: World) -> Iterator[Any]:
    """A fresh browser context (no cookies) with a page that records dialogs and errors."""
    context = browser.new_context(base_url=world.url, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.set_default_timeout(10_000)
    try:
        yield page
    finally:
        context.close()
