"""The managers' dashboard between Mondays (:func:`dashboard`): open alerts by level, alerts per
day over the last 30 days, MTTA/MTTR per week over the last 8 weeks, the top rules of the last
30 days and the sensors' health — for the caller's agencies only.

Like the weekly report, every number is counted by the store (:meth:`Store.aggregate_docs`
through :func:`~soc_core.store.docquery.doc_query`, which always carries the tenant filter);
Python walks only the groups that come back. Days and weeks are local to ``reports.timezone``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from reports.metrics import ACK_MS, RESOLVE_MS, TOP, week_bounds
from reports.model import LEVELS
from soc_core.alert_status import OPEN_STATUSES
from soc_core.config import Settings
from soc_core.events import format_timestamp, utcnow
from soc_core.store import Store
from soc_core.store.docquery import MAX_GROUPS, Condition, DocQuery, between, doc_query, missing, term

DAYS = 30
WEEKS = 8


@dataclass(frozen=True)
class WeekResponse:
    week: str
    alerts: int
    mtta_seconds: float | None
    mttr_seconds: float | None


@dataclass(frozen=True)
class Sensors:
    total: int
    silent: int  # no heartbeat for reports.silent_after_minutes, or never one
    silent_names: list[str]


@dataclass(frozen=True)
class Dashboard:
    tenants: tuple[str, ...] | None  # None: the province
    open_by_level: dict[str, int]
    open_total: int
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
    sensors = Sensors(
        total=sensor_total.count,
        silent=sensor_total.filters["stale"] + sensor_total.filters["never"],
        silent_names=silent,
    )
    return Dashboard(
        tenants=tenants,
        open_by_level=open_by_level,
        open_total=sum(open_by_level.values()),
        days=days,
        weeks=weeks,
        top_rules=top_rules,
        sensors=sensors,
    )


__all__ = ["DAYS", "WEEKS", "Dashboard", "Sensors", "WeekResponse", "dashboard"]
