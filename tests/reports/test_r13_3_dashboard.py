"""Item 3 of the r13 brief, the numbers behind the dashboard's charts: sensor uptime over the last
7 days (the weekly report's heartbeat hours) with the sensors of lowest uptime first, and the
province's open alerts per agency — counted by the store, on SQLite and on the real
Elasticsearch node; an agency sees only its own sensors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from reports.dashboard import dashboard
from soc_api.services import accounts
from soc_core.config import Settings
from soc_core.events import format_timestamp
from soc_core.store import Store
from soc_core.store.base import DocWrite
from tests.reports.seeded_week import ALERTS, _alert

NOW = datetime(2026, 12, 1, tzinfo=UTC)
BORN = "2026-11-01T00:00:00.000Z"
SENSORS = {  # id: (tenant, name, last heartbeat before now, hours of the last 7 days with heartbeats)
    "s-net": ("police", "net-1", None, 0),
    "s-log": ("police", "log-1", timedelta(minutes=1), 84),
    "s-hlog": ("health", "hlog-1", timedelta(minutes=2), 168),
}


def seed(store: Store, now: datetime = NOW) -> None:
    """Two agencies, the seeded weeks' alerts, three sensors with heartbeat hours before ``now``."""
    accounts.add_tenant(store, tenant_id="police", name="Công an tỉnh")
    accounts.add_tenant(store, tenant_id="health", name="Sở Y tế")
    for alert in ALERTS:
        _alert(store, alert)
    for sensor_id, (tenant, name, quiet, hours) in SENSORS.items():
        last_seen = None if quiet is None else format_timestamp(now - quiet)
        store.create_doc(
            "sensors",
            {"tenant": tenant, "name": name, "kind": "log", "last_seen": last_seen, "created_at": BORN},
            doc_id=sensor_id,
        )
        beats = []
        for hour in range(hours):  # the last `hours` hours before now, one record each
            at = now - timedelta(hours=hour + 1)
            beats.append(
                DocWrite(
                    f"{sensor_id}-{at:%Y%m%d%H}",
                    {"tenant": tenant, "sensor_id": sensor_id, "hour": format_timestamp(at), "beats": 60,
                     "covered_seconds": 3600, "received": 0, "dropped": 0,
                     "last_ms": round((at + timedelta(minutes=59)).timestamp() * 1000),
                     "created_at": format_timestamp(at)},
                )
            )  # fmt: skip
        if beats:
            store.write_docs("sensor_uptime", beats)
    store.refresh()


def test_r13_3_dashboard_uptime_and_agencies_from_the_store(store: Store, tmp_path: Path) -> None:
    seed(store)
    settings = Settings(data_dir=tmp_path)

    police = dashboard(store, settings, ("police",), now=NOW)
    # log-1 vouched for 84 of the 168 hours; net-1 never reported (no uptime, listed first)
    assert police.sensors.uptime == 0.5
    assert [(row.name, row.uptime) for row in police.sensors.by_sensor] == [("net-1", None), ("log-1", 0.5)]
    assert police.open_by_agency == [], "an agency's dashboard has no per-agency comparison"

    province = dashboard(store, settings, None, now=NOW)
    assert province.sensors.uptime == 0.75  # (84 + 168) hours of (168 + 168)
    assert [row.name for row in province.sensors.by_sensor] == ["net-1", "log-1", "hlog-1"]
    assert province.open_by_agency == [("police", 3), ("health", 1)]

    health = dashboard(store, settings, ("health",), now=NOW)
    assert [(row.name, row.tenant, row.uptime) for row in health.sensors.by_sensor] == [("hlog-1", "health", 1.0)]
    assert health.sensors.uptime == 1.0 and health.open_total == 1
