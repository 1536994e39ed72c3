"""Sensor silence: an alert when a sensor stops sending heartbeats, or an agency's events of a
watched dataset stop, for longer than expected (``scheduler.silence``).

A silence episode is named by the last sign of life before it (the last heartbeat, the newest
event), so the alert's id is deterministic per (sensor or agency and dataset, episode): every
run during one silence finds the alert there, and a source that comes back and goes quiet again
starts a new episode and a new alert. Sensors never seen are not silent (nothing was expected).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from detections.alerts import Detection, RuleMeta
from scheduling.alerting import raise_alert
from scheduling.registry import RunContext
from soc_core.config import Settings
from soc_core.events import format_timestamp, parse_timestamp, utcnow
from soc_core.query import event_query
from soc_core.store import Doc, Store

SENSOR_RULE = "canhgac-sensor-silence"
DATASET_RULE = "canhgac-log-source-silence"


def _all(store: Store, kind: str) -> list[Doc]:
    docs: list[Doc] = []
    cursor: str | None = None
    while True:
        page = store.list_docs(kind, sort="created_at", descending=False, size=500, cursor=cursor)
        docs += page.items
        if page.next_cursor is None:
            return docs
        cursor = page.next_cursor


def _detection(rule: RuleMeta, tenant: str, group: dict[str, Any], last_seen: str, quiet: timedelta) -> Detection:
    return Detection(
        rule=rule,
        tenant=tenant,
        group=group,
        event_ids=[],  # the id is then made from first_seen: the episode's start
        count=1,
        first_seen=last_seen,
        last_seen=last_seen,
        details={"silent_for_minutes": round(quiet.total_seconds() / 60, 1), **group},
    )


def _quiet_sensors(store: Store, settings: Settings, now: datetime, rule: RuleMeta) -> tuple[int, int]:
    config = settings.scheduler.silence
    checked = raised = 0
    for doc in _all(store, "sensors"):
        last = doc.body.get("last_seen")
        if not last or not doc.body.get("tenant"):
            continue
        checked += 1
        kind = str(doc.body.get("kind") or "other")
        expected = timedelta(minutes=config.sensor_kinds.get(kind, config.sensor_minutes))
        quiet = now - parse_timestamp(str(last))
        if quiet > expected:
            group = {"observer.id": doc.id, "observer.name": str(doc.body.get("name", "")), "observer.type": kind}
            raised += raise_alert(store, _detection(rule, str(doc.body["tenant"]), group, str(last), quiet))
    return checked, raised


def _quiet_datasets(store: Store, settings: Settings, now: datetime, rule: RuleMeta) -> tuple[int, int]:
    config = settings.scheduler.silence
    checked = raised = 0
    tenants = [doc.id for doc in _all(store, "tenants")]
    for dataset, minutes in sorted(config.datasets.items()):
        for tenant in tenants:
            newest = store.search_events(
                event_query(
                    tenants=[tenant],
                    query=f'event.dataset:"{dataset}"',
                    start=now - timedelta(days=config.lookback_days),
                    size=1,
                )
            ).items
            if not newest:
                continue  # this agency sends no such logs: nothing to miss
            checked += 1
            last = str(newest[0]["@timestamp"])
            quiet = now - parse_timestamp(last)
            if quiet > timedelta(minutes=minutes):
                raised += raise_alert(store, _detection(rule, tenant, {"event.dataset": dataset}, last, quiet))
    return checked, raised


def run(store: Store, settings: Settings, context: RunContext) -> Mapping[str, Any]:
    level = settings.scheduler.silence.level
    now = utcnow()
    sensors = _quiet_sensors(store, settings, now, RuleMeta(SENSOR_RULE, "Sensor silent", "1", level, ()))
    datasets = _quiet_datasets(store, settings, now, RuleMeta(DATASET_RULE, "Log source silent", "1", level, ()))
    return {
        "sensors_checked": sensors[0],
        "sensor_alerts": sensors[1],
        "log_sources_checked": datasets[0],
        "log_source_alerts": datasets[1],
        "at": format_timestamp(now),
    }
