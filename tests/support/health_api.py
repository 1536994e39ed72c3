"""The SOC API as sensors see it: a live server with one registered sensor and its key file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from soc_api.main import create_app
from soc_api.services import accounts
from soc_api.services.sensors import register_sensor
from soc_core.auth import PROVINCE, Membership
from soc_core.config import Settings
from soc_core.store.sqlite import SqliteStore
from tests.support.servers import serve
from workflow.principals import Actor, Principal

TENANT = "police"
PASSWORD = "a-very-long-password"


@dataclass(frozen=True)
class Api:
    url: str
    sensor_id: str
    key_file: Path

    def sensor(self) -> dict[str, object]:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            login = client.post("/api/auth/login", json={"username": "boss", "password": PASSWORD})
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            response = client.get(f"/api/sensors/{self.sensor_id}", headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    def counters(self) -> dict[str, int]:
        health = self.sensor()["health"]
        assert isinstance(health, dict)
        return dict(health.get("counters") or {})


@contextmanager
def sensor_api(directory: Path, *, name: str = "web01-logs") -> Iterator[Api]:
    """A live API on SQLite in ``directory`` with admin ``boss`` and one logs sensor ``name``."""
    store = SqliteStore(directory / "soc.sqlite")
    store.setup()
    accounts.add_tenant(store, tenant_id=TENANT, name="Police")
    accounts.add_user(store, username="boss", password=PASSWORD, memberships=[Membership(PROVINCE, "admin")])
    actor = Actor(Principal(id="boss", name="boss", kind="user"))
    doc, key = register_sensor(store, name=name, tenant=TENANT, kind="logs", actor=actor)
    key_file = directory / "sensor-api.key"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    try:
        with serve(create_app(Settings(), store)) as url:
            yield Api(url, doc.id, key_file)
    finally:
        store.close()
