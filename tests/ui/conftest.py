"""A live server (uvicorn in a thread, SQLite with the demo data plus hostile fixtures) and
headless Chromium driven by Playwright.

Chromium comes from the Debian package (``/usr/bin/chromium``); without it — or without the
``playwright`` package — the browser tests are skipped with the reason (failed under CI=true).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from soc_api.demo import DEMO_PASSWORD, load_demo
from soc_api.main import create_app
from soc_api.runtime import build_engine
from soc_core.config import Settings
from soc_core.events import make_event, utcnow
from soc_core.store import SqliteStore
from tests.shared_data import unavailable

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
SHOTS = Path(os.environ.get("SOC_UI_SHOTS", "/tmp/ui-shots"))
XSS_SCRIPT = "<script>window.__pwned=1</script>"
XSS_IMG = '<img src=x onerror="window.__pwned=2;alert(1)">'
ANSI = "\x1b[31mRED\x1b[0m\x1b]0;title\x07"
HUGE = "A" * 1_000_000


@dataclass
class World:
    url: str
    store: SqliteStore
    settings: Settings
    police_alert: str
    health_alert: str
    hostile_alert: str


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    port = _free_port()
    app = create_app(Settings(data_dir=data_dir), store)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="ui-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the test server did not start")
        time.sleep(0.05)
    try:
        yield World(
            url=f"http://127.0.0.1:{port}",
            store=store,
            settings=settings,
            police_alert=alerts["police"],
            health_alert=alerts["health"],
            hostile_alert=hostile.id,
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
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
    page.dialogs = []  # type: ignore[attr-defined]
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.set_default_timeout(10_000)
    try:
        yield page
    finally:
        context.close()


def sign_in(page: Any, username: str = "analyst_police", password: str = DEMO_PASSWORD) -> None:
    page.goto("/ui/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/alerts")


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def fresh_alert(world: World, source_id: str | None = None) -> str:
    """A new copy of an alert (same tenant, rule and events), so tests do not share state."""
    body = dict(world.store.get_doc("alerts", source_id or world.police_alert).body)
    for key in ("case_id", "assignee", "acknowledged_at", "resolved_at", "resolved_by", "tags", "comments"):
        body.pop(key, None)
    body["status"] = "new"
    return world.store.create_doc("alerts", body).id
