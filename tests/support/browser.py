"""What the browser tests share besides fixtures (those live in tests/ui/conftest.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soc_api.demo import DEMO_PASSWORD
from soc_core.config import Settings
from soc_core.store import SqliteStore

SHOTS = Path(os.environ.get("SOC_UI_SHOTS", "/tmp/ui-shots"))


@dataclass
class World:
    url: str
    store: SqliteStore
    settings: Settings
    police_alert: str
    health_alert: str
    hostile_alert: str


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
