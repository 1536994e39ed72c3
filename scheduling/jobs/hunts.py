"""Scheduled hunts (``scheduler.hunts``): a saved query in the hunt language, run every so many
minutes over one agency (or ``*``, every agency); each matching event raises an alert.

Each run reads the events since the previous run's end (kept in ``checkpoints/hunt:<name>``),
plus :data:`LATE_MARGIN` before it for events stored a little late; the alert id is
deterministic per (hunt, event), so an event seen twice raises one alert. An event stored later
than the margin after its ``@timestamp`` is missed. One run raises at most
:data:`MAX_ALERTS_PER_RUN`; the next run goes on from the last event it read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from detections.alerts import RuleMeta, detection_from_event
from scheduling.alerting import raise_alert
from scheduling.registry import RunContext
from soc_core.config import HuntSettings, JobTrigger, Settings
from soc_core.errors import NotFound
from soc_core.events import format_timestamp, parse_timestamp, utcnow
from soc_core.query import event_query
from soc_core.store import Store

PREFIX = "hunt-"
LATE_MARGIN = timedelta(minutes=5)
MAX_ALERTS_PER_RUN = 1000
PAGE = 500


def job_id(name: str) -> str:
    return PREFIX + name.replace("_", "-")


def trigger(hunt: HuntSettings) -> JobTrigger:
    return JobTrigger(every_minutes=hunt.every_minutes)


def rule_of(hunt: HuntSettings) -> RuleMeta:
    return RuleMeta(f"hunt-{hunt.name}", hunt.title or f"Hunt: {hunt.name}", "1", hunt.level, ())


def _hunt(settings: Settings, wanted: str) -> HuntSettings:
    for hunt in settings.scheduler.hunts:
        if job_id(hunt.name) == wanted:
            return hunt
    raise NotFound(f"no hunt for job {wanted!r}", where="scheduler.hunts")


def run(store: Store, settings: Settings, context: RunContext) -> Mapping[str, Any]:
    hunt = _hunt(settings, context.job_id)
    checkpoint_id = f"hunt:{hunt.name}"
    now = utcnow()
    try:
        since = parse_timestamp(str(store.get_doc("checkpoints", checkpoint_id).body["until"]))
    except NotFound:
        since = now - timedelta(minutes=hunt.every_minutes)
    query = event_query(
        tenants=None if hunt.tenant == "*" else [hunt.tenant],
        province_wide=hunt.tenant == "*",
        query=hunt.query,
        start=since - LATE_MARGIN,
        end=now,
        size=PAGE,
        ascending=True,
    )
    rule = rule_of(hunt)
    matched = raised = 0
    until = now
    while True:
        page = store.search_events(query)
        for event in page.items:
            matched += 1
            raised += raise_alert(store, detection_from_event(rule, event))
            if raised >= MAX_ALERTS_PER_RUN:
                until = parse_timestamp(str(event["@timestamp"]))
                break
        if raised >= MAX_ALERTS_PER_RUN or page.next_cursor is None:
            break
        query = replace(query, cursor=page.next_cursor)
    store.put_doc("checkpoints", checkpoint_id, {"until": format_timestamp(until), "updated_at": format_timestamp(now)})
    return {
        "hunt": hunt.name,
        "since": format_timestamp(since),
        "until": format_timestamp(until),
        "matched": matched,
        "alerts_raised": raised,
    }
