"""The managers' dashboard between Mondays (:func:`dashboard`): open alerts by level (and, for the
province, by agency), alerts per day over the last 30 days, MTTA/MTTR per week over the last 8
weeks, the top rules of the last 30 days and the sensors' health (uptime over the last 7 days,
as the weekly report counts it, and the silent ones) — for the caller's agencies only.

Like the weekly report, every number is counted by the store (:meth:`Store.aggregate_docs`
through :func:`~soc_core.store.docquery.doc_query`, which always carries the tenant filter);
Python walks only the groups that come back. Days and weeks are local to ``reports.timezone``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from reports.metrics import (
    ACK_MS,
    RESOLVE_MS,
    TOP,
    _ratio,
    _sensor_docs,
    _sensor_uptime,
    _uptimes,
    _Window,
    week_bounds,
)
from reports.model import LEVELS
from soc_core.alert_status import OPEN_STATUSES
from soc_core.config import Settings
from soc_core.events import format_timestamp, utcnow
from soc_core.store import Store
from soc_core.store.docquery import MAX_GROUPS, Condition, DocQuery, between, doc_query, missing, term

DAYS = 30
WEEKS = 8
UPTIME_DAYS = 7


@dataclass(frozen=True)
class WeekResponse:
    week: str
    alerts: int
    mtta_seconds: float | None
    mttr_seconds: float | None


@dataclass(frozen=True)
class SensorUptime:
    name: str
    tenant: str
    uptime: float | None  # share of the last UPTIME_DAYS days its heartbeats vouch for; None: never reported


@dataclass(frozen=True)
class Sensors:
    total: int
    silent: int  # no heartbeat for reports.silent_after_minutes, or never one
    silent_names: list[str]
    uptime: float | None  # all reporting sensors together, over the last UPTIME_DAYS days
    by_sensor: list[SensorUptime]  # lowest uptime first (never reported: first of all)


@dataclass(frozen=True)
class Dashboard:
    tenants: tuple[str, ...] | None  # None: the province
    open_by_level: dict[str, int]
    open_total: int
    open_by_agency: list[tuple[str, int]]  # (tenant, open alerts), the province only; most first
    days: list[tuple[str, int]]  # (YYYY-MM-DD local, alerts created that day), oldest first
    weeks: list[WeekResponse]  # oldest first, the running week last
    top_rules: list[tuple[str, int]]  # (rule name, alerts in the last DAYS days)
    sensors: Sensors


def _stamp(moment: datetime) -> str:
    return format_timestamp(moment.astimezone(UTC))


def dashboard(
    store: Store, settings: Settings, tenants: tuple[str, ...] | None, now: datetime | None = None
) -> Dashboard:
    """The dashboard of ``tenants`` (None: every agency, for province-wide callers)."""
    zone = ZoneInfo(settings.reports.timezone)
    now = (now or utcnow()).astimezone(UTC)

    def query(kind: str, *where: Condition) -> DocQuery:
        return doc_query(kind, tenants=tenants, province_wide=tenants is None, where=where)

    store.refresh()
    open_groups = store.aggregate_docs(
        query("alerts", term("status", *OPEN_STATUSES)), by="rule.level", limit=MAX_GROUPS
    )
    counted = {group.key: group.count for group in open_groups}
    open_by_level = {level: counted.get(level, 0) for level in reversed(LEVELS)}
    open_by_agency = []
    if tenants is None:
        by_tenant = store.aggregate_docs(query("alerts", term("status", *OPEN_STATUSES)), by="tenant", limit=MAX_GROUPS)
        open_by_agency = [(group.key, group.count) for group in by_tenant]

    today = now.astimezone(zone).date()
    midnights = [
        datetime.combine(today - timedelta(days=DAYS - 1 - n), time(), zone).astimezone(UTC) for n in range(DAYS + 1)
    ]
    day_filters: dict[str, Condition] = {
        day.astimezone(zone).date().isoformat(): between("created_at", gte=_stamp(day), lt=_stamp(following))
        for day, following in pairwise(midnights)
    }
    recent = query("alerts", between("created_at", gte=_stamp(midnights[0])))
    (total,) = store.aggregate_docs(recent, filters=day_filters)
    days = [(name, total.filters[name]) for name in day_filters]
    top_rules = [(group.key, group.count) for group in store.aggregate_docs(recent, by="rule.name", limit=TOP)]

    weeks: list[WeekResponse] = []
    for back in range(WEEKS - 1, -1, -1):
        year, number, _ = (today - timedelta(weeks=back)).isocalendar()
        name = f"{year}-W{number:02d}"
        start, end = week_bounds(name, zone)
        (group,) = store.aggregate_docs(
            query("alerts", between("created_at", gte=_stamp(start), lt=_stamp(end))),
            stats={"ack": ACK_MS, "resolve": RESOLVE_MS},
        )
        ack, resolve = group.stats["ack"].mean, group.stats["resolve"].mean
        weeks.append(
            WeekResponse(
                name, group.count, None if ack is None else ack / 1000, None if resolve is None else resolve / 1000
            )
        )

    silent_since = _stamp(now - timedelta(minutes=settings.reports.silent_after_minutes))
    sensor_groups = store.aggregate_docs(
        query("sensors"),
        by="name",
        limit=MAX_GROUPS,
        filters={"stale": between("last_seen", lt=silent_since), "never": missing("last_seen")},
    )
    silent = sorted(group.key for group in sensor_groups if group.filters["stale"] or group.filters["never"])
    (sensor_total,) = store.aggregate_docs(
        query("sensors"), filters={"stale": between("last_seen", lt=silent_since), "never": missing("last_seen")}
    )
    # uptime as the weekly report counts it (heartbeat hours), over the last UPTIME_DAYS days
    window = _Window(store, settings, tenants, now - timedelta(days=UPTIME_DAYS), now, now)
    sensor_docs = _sensor_docs(window)
    uptimes = _uptimes(window, sensor_docs)
    by_sensor = [
        SensorUptime(
            name=str(doc.body.get("name") or doc.id),
            tenant=str(doc.body.get("tenant")),
            uptime=_ratio(min(uptimes[doc.id].covered, uptimes[doc.id].expected), uptimes[doc.id].expected)
            if doc.body.get("last_seen")
            else None,
        )
        for doc in sensor_docs
    ]
    sensors = Sensors(
        total=sensor_total.count,
        silent=sensor_total.filters["stale"] + sensor_total.filters["never"],
        silent_names=silent,
        uptime=_sensor_uptime(sensor_docs, uptimes),
        by_sensor=sorted(by_sensor, key=lambda row: (-1.0 if row.uptime is None else row.uptime, row.name)),
    )
    return Dashboard(
        tenants=tenants,
        open_by_level=open_by_level,
        open_total=sum(open_by_level.values()),
        open_by_agency=open_by_agency,
        days=days,
        weeks=weeks,
        top_rules=top_rules,
        sensors=sensors,
    )


__all__ = ["DAYS", "UPTIME_DAYS", "WEEKS", "Dashboard", "SensorUptime", "Sensors", "WeekResponse", "dashboard"]
