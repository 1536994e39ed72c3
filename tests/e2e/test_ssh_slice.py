"""The vertical slice, end to end, on every store:

sshd log file → log sensor → store → streaming Sigma correlation → alert → authenticated
``GET /api/alerts`` over a real socket.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from detections.engine import DetectionEngine
from detections.loader import load_rules, shipped_rules_dir
from sensors.config import InputConfig, SensorConfig
from sensors.pipeline import LogSensor
from soc_api.main import create_app
from soc_api.services import accounts
from soc_core.auth import Membership
from soc_core.config import Settings
from soc_core.store import Store
from tests.support.servers import serve
from tests.support.waiting import wait_for

ATTACKER = "203.0.113.45"
PASSWORD = "correct-horse-battery"


def auth_log(host: str, start: datetime, *, failures: int, attacker: str) -> str:
    lines = []
    moment = start
    for i in range(3):
        moment += timedelta(seconds=40)
        lines.append(
            f"{moment:%b} {moment.day:>2} {moment:%H:%M:%S} {host} sshd[{900 + i}]: "
            f"Accepted password for staff{i} from 10.20.1.{i + 5} port {50000 + i} ssh2"
        )
    for i in range(failures):
        moment += timedelta(seconds=7)
        lines.append(
            f"{moment:%b} {moment.day:>2} {moment:%H:%M:%S} {host} sshd[{1000 + i}]: "
            f"Failed password for root from {attacker} port {40000 + i} ssh2"
        )
    lines.append("garbage-without-a-syslog-header")
    return "\n".join(lines) + "\n"


def import_file(store: Store, path: Path, tenant: str, state: Path) -> dict[str, int]:
    config = SensorConfig(
        tenant=tenant,
        sensor_id=f"test-{tenant}",
        state_dir=state,
        inputs=[InputConfig(paths=[str(path)], parser="auth", from_beginning=True)],
    )
    sensor = LogSensor(config, store)
    try:
        return sensor.run_until_idle(timeout=60)
    finally:
        sensor.close()


@pytest.fixture
def api_url(store: Store) -> Iterator[str]:
    with serve(create_app(Settings(), store)) as url:
        yield url


def login(client: httpx.Client, username: str) -> dict[str, str]:
    response = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_ssh_brute_force_reaches_the_analyst(store: Store, api_url: str, tmp_path: Path) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    police_log = tmp_path / "police-auth.log"
    police_log.write_text(auth_log("portal-congan", start, failures=8, attacker=ATTACKER))
    health_log = tmp_path / "health-auth.log"
    health_log.write_text(auth_log("his-soyte", start, failures=2, attacker="198.51.100.9"))

    police = import_file(store, police_log, "police", tmp_path / "state-police")
    health = import_file(store, health_log, "health", tmp_path / "state-health")
    assert police["events_out"] == 12 and police["parse_failures"] == 1
    assert health["events_out"] == 6

    engine = DetectionEngine(load_rules([shipped_rules_dir()]), store)
    assert not engine.errors

    def alerts() -> list[object]:
        store.refresh()
        engine.run_until_idle()
        return list(store.list_docs("alerts", size=10).items)

    wait_for(alerts, "an alert from the imported auth.log", poll=0.2)

    for tenant in ("police", "health"):
        accounts.add_tenant(store, tenant_id=tenant, name=tenant.title())
        accounts.add_user(
            store, username=f"analyst_{tenant}", password=PASSWORD, memberships=[Membership(tenant, "analyst")]
        )

    with httpx.Client(base_url=api_url, timeout=10) as client:
        assert client.get("/api/alerts").status_code == 401
        police_alerts = client.get("/api/alerts", headers=login(client, "analyst_police")).json()["items"]
        brute = [a for a in police_alerts if a["rule_name"] == "SSH Brute Force"]
        assert len(brute) == 1, police_alerts
        alert = brute[0]
        assert alert["tenant"] == "police"
        assert alert["level"] == "high"
        assert alert["count"] >= 5
        assert alert["entities"]["source.ip"] == [ATTACKER]
        assert "attack.t1110.001" in alert["attack"]

        headers = login(client, "analyst_police")
        detail = client.get(f"/api/alerts/{alert['id']}", headers=headers).json()
        assert len(detail["events"]) == alert["count"]
        assert all("Failed password for root" in e["message"] for e in detail["events"])

        health_headers = login(client, "analyst_health")
        health_alerts = client.get("/api/alerts", headers=health_headers).json()["items"]
        assert [a for a in health_alerts if a["rule_name"] == "SSH Brute Force"] == []
        # another agency's alert id does not exist for this analyst
        assert client.get(f"/api/alerts/{alert['id']}", headers=health_headers).status_code == 404

        hunt = client.get("/api/events", params={"q": f"source.ip:{ATTACKER}"}, headers=headers).json()
        assert len(hunt["items"]) == 8
