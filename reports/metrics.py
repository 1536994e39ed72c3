"""The weekly report's numbers, counted by the store (:func:`weekly`).

Every number is an aggregation the store runs — :meth:`Store.aggregate_docs` over workflow
documents, :meth:`Store.count_events` over events — with the report's tenants as the filter
(:func:`~soc_core.store.docquery.doc_query`, :func:`~soc_core.query.event_query`). Python only
walks the buckets that come back (levels, statuses, rules, sensors), never the documents.

Definitions (the model's comments say what each field is; these say how it is decided):

* The week is ISO week ``YYYY-Www`` in ``reports.timezone``: Monday 00:00 to the next Monday
  00:00, local. Its "end" for states (open cases, statuses, silence, unacknowledged alerts) is
  the week's end, or *now* while the week is still running (the cut-off).
* Alerts of the week: ``created_at`` in the week. MTTA and MTTR are the means of their
  ``time_to_acknowledge_ms`` / ``time_to_resolve_ms`` (kept on the alert by the triage service),
  whenever that happened. An acknowledge breach is an acknowledgement later than the level's SLA,
  or none before the cut-off although the SLA ran out before it; resolve breaches alike.
* Status at the end of the week: closed by then → its (current) closed status; acknowledged by
  then but not closed → its current open status, or ``acknowledged`` if it was closed later;
  otherwise ``new``.
* False positives: alerts closed (``resolved_at``) in the week, per rule; those whose status is
  ``false_positive``.
* Sensor uptime: the seconds vouched for by heartbeats in the week (one interval per heartbeat,
  counted per sensor and hour by ``soc_api.services.sensors.record_beat``) over the seconds the
  sensor existed in the week up to the cut-off. Capture loss: kernel drops over kernel packets
  received, from the same hourly records. Silent: no heartbeat for ``reports.silent_after_minutes``
  or no event for ``reports.quiet_after_hours`` before the cut-off. Events of a sensor: events
  with its id as ``observer.id`` (sent through the API), else as ``observer.name``.
* Containments: ``containment`` records (made only by a live block) created in the week.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import cast
from zoneinfo import ZoneInfo

from reports.model import (
    LEVELS,
    Agency,
    Alerts,
    Attack,
    Cases,
    Change,
    DayCount,
    Headline,
    Level,
    LevelResponse,
    Playbooks,
    Response,
    RuleCount,
    RuleFalsePositives,
    Scope,
    SensorHealth,
    Technique,
    ValueCount,
    WeeklyReport,
)
from soc_core.alert_status import CLOSED_STATUSES, OPEN_STATUSES, RESPONSE_TIMES
from soc_core.config import Settings
from soc_core.errors import InvalidInput, NotFound, ParseError
from soc_core.events import check_tenant_id, format_timestamp, parse_timestamp, utcnow
from soc_core.query import EventQuery, event_query
from soc_core.store import Store
from soc_core.store.base import MAX_LIST_SIZE, Doc
from soc_core.store.docquery import (
    MAX_GROUPS,
    Condition,
    DocGroup,
    DocQuery,
    FieldStats,
    Not,
    all_of,
    between,
    doc_query,
    exists,
    missing,
    term,
)

WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
# Stores compare UTC instants and the report looks back from a week's end (SLAs, silence): the
# first and last days of Python's calendar (years 1 and 9999) overflow, and no event predates 1970.
YEARS = range(1970, 9999)
TOP = 10
ACK_MS, RESOLVE_MS = RESPONSE_TIMES["acknowledged_at"], RESPONSE_TIMES["resolved_at"]
TECHNIQUE = re.compile(r"^attack\.t\d{4}(\.\d{3})?$")
NOT_A_TACTIC = re.compile(r"^attack\.[gs]\d{4}$")  # ATT&CK groups and software
CRITICAL: tuple[Level, ...] = ("critical", "high")


def week_bounds(week: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """Monday 00:00 of ISO ``week`` (of a year in :data:`YEARS`) and the next Monday 00:00, in ``zone``."""
    match = WEEK.match(week)
    if match is None:
        raise InvalidInput(f"week {week!r} is not an ISO week", where="week", hint="write it as 2026-W48")
    if int(match[1]) not in YEARS:
        raise InvalidInput(
            f"week {week!r} is outside the years a report counts ({YEARS.start}-{YEARS.stop - 1})",
            where="week",
            hint="ask for a week such as 2026-W48",
        )
    try:
        monday = date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError as exc:
        raise InvalidInput(
            f"week {week!r} does not exist: {exc}", where="week", hint="ISO weeks run 01-52 or 53"
        ) from exc
    return datetime.combine(monday, time(), zone), datetime.combine(monday + timedelta(days=7), time(), zone)


def previous_week(week: str, zone: ZoneInfo) -> str:
    start, _ = week_bounds(week, zone)
    year, number, _ = (start.date() - timedelta(days=7)).isocalendar()
    return f"{year}-W{number:02d}"


def _stamp(moment: datetime) -> str:
    return format_timestamp(moment.astimezone(UTC))


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 6) if whole else None


def _seconds(stats: FieldStats) -> float | None:
    mean = stats.mean
    return None if mean is None else round(mean / 1000, 3)


def _merge(groups: Iterable[FieldStats]) -> FieldStats:
    count, total = 0, 0.0
    for stats in groups:
        count, total = count + stats.count, total + stats.total
    return FieldStats(count, total)


@dataclass(frozen=True)
class _Window:
    """One week of one scope: where the queries look."""

    store: Store
    settings: Settings
    tenants: tuple[str, ...] | None
    start: datetime  # local
    end: datetime
    cutoff: datetime  # the week's end, or now while it runs

    def query(self, kind: str, *where: Condition) -> DocQuery:
        return doc_query(kind, tenants=self.tenants, province_wide=self.tenants is None, where=where)

    def created(self, field: str = "created_at") -> Condition:
        return between(field, gte=_stamp(self.start), lt=_stamp(self.end))

    def alerts(self, *where: Condition) -> DocQuery:
        return self.query("alerts", self.created(), *where)

    def sla_seconds(self, level: str) -> tuple[int, int]:
        sla = getattr(self.settings.reports.sla, level)
        return round(sla.ack_minutes * 60), round(sla.resolve_minutes * 60)

    def breach_filters(self, level: str, *, scoped: bool) -> dict[str, Condition]:
        """The four ways an alert of ``level`` breaches its SLA (disjoint: a late answer has a
        duration, an overdue one has none); ``scoped`` adds the level itself as a condition."""
        ack, resolve = self.sla_seconds(level)
        extra = [term("rule.level", level)] if scoped else []
        late = {"ack": (ACK_MS, ack), "resolve": (RESOLVE_MS, resolve)}
        found: dict[str, Condition] = {}
        for name, (duration, seconds) in late.items():
            found[f"{name}_late_{level}"] = all_of(*extra, between(duration, gt=seconds * 1000))
            overdue_before = _stamp(self.cutoff - timedelta(seconds=seconds))
            found[f"{name}_overdue_{level}"] = all_of(
                *extra, missing(duration), between("created_at", lt=overdue_before)
            )
        return found

    def events(self, start: datetime, end: datetime) -> EventQuery:
        return event_query(tenants=self.tenants, province_wide=self.tenants is None, start=start, end=end)


# --- sections ----------------------------------------------------------------------------


def _alerts(window: _Window) -> Alerts:
    # local midnights (a day may not be 24 hours where the zone shifts its clocks)
    days = [datetime.combine(window.start.date() + timedelta(days=n), time(), window.start.tzinfo) for n in range(8)]
    day_filters: dict[str, Condition] = {
        day.date().isoformat(): between("created_at", gte=_stamp(day), lt=_stamp(following))
        for day, following in pairwise(days)
    }
    per_level = {g.key: g for g in window.store.aggregate_docs(window.alerts(), by="rule.level", filters=day_filters)}
    by_level = {level: per_level[level].count if level in per_level else 0 for level in LEVELS}
    by_day = []
    for name in day_filters:
        counts = {level: per_level[level].filters[name] if level in per_level else 0 for level in LEVELS}
        by_day.append(DayCount(date=name, by_level=cast(dict[Level, int], counts), total=sum(counts.values())))
    cutoff = _stamp(window.cutoff)
    statuses = window.store.aggregate_docs(
        window.alerts(),
        by="status",
        limit=MAX_GROUPS,
        filters={"closed": between("resolved_at", lt=cutoff), "acked": between("acknowledged_at", lt=cutoff)},
    )
    by_status: dict[str, int] = {}

    def add(status: str, count: int) -> None:
        if count:
            by_status[status] = by_status.get(status, 0) + count

    for group in statuses:
        closed, acked = group.filters["closed"], group.filters["acked"]
        if group.key in CLOSED_STATUSES:
            add(group.key, closed)
            add("acknowledged", acked - closed)  # closed after the week's end
            add("new", group.count - acked)
        elif group.key in OPEN_STATUSES and group.key != "new":
            add(group.key, acked)
            add("new", group.count - acked)
        else:
            add(group.key, group.count)
    total = sum(group.count for group in statuses)
    return Alerts(total=total, by_level=cast(dict[Level, int], by_level), by_day=by_day, by_status=by_status)


def _rule_facts(window: _Window, query: DocQuery, rule_ids: list[str]) -> dict[str, tuple[str, str]]:
    """Each rule's most frequent title and level among ``query``'s alerts (ties: the first by
    text), two aggregations for all the rules at once."""
    if not rule_ids:
        return {}
    per_rule = {rule_id: term("rule.id", rule_id) for rule_id in rule_ids}
    facts: dict[str, list[str]] = {rule_id: ["", ""] for rule_id in rule_ids}
    narrowed = DocQuery(query.kind, query.tenants, (*query.where, term("rule.id", *rule_ids)))
    for position, field in enumerate(("rule.name", "rule.level")):
        best: dict[str, int] = {}
        for group in window.store.aggregate_docs(narrowed, by=field, limit=MAX_GROUPS, filters=per_rule):
            for rule_id, count in group.filters.items():
                if count > best.get(rule_id, 0):  # groups come most frequent first, then by text
                    best[rule_id] = count
                    facts[rule_id][position] = group.key
    return {rule_id: (title, level) for rule_id, (title, level) in facts.items()}


def _top_rules(window: _Window) -> list[RuleCount]:
    top = window.store.aggregate_docs(window.alerts(), by="rule.id", limit=TOP)
    facts = _rule_facts(window, window.alerts(), [g.key for g in top])
    rules = []
    for group in top:
        title, level = facts[group.key]
        rules.append(
            RuleCount(
                rule_id=group.key,
                title=title or group.key,
                level=cast(Level, level if level in LEVELS else "informational"),
                count=group.count,
            )
        )
    return rules


def _attack(window: _Window) -> Attack:
    tags = window.store.aggregate_docs(window.alerts(), by="rule.tags", prefix="attack.", limit=MAX_GROUPS)
    tactics: dict[str, int] = {}
    techniques: dict[str, int] = {}
    for group in tags:
        if TECHNIQUE.match(group.key):
            name = group.key.removeprefix("attack.").upper()
            techniques[name] = techniques.get(name, 0) + group.count
        elif not NOT_A_TACTIC.match(group.key):
            name = group.key.removeprefix("attack.").replace("_", "-")  # older Sigma rules spell them with _
            tactics[name] = tactics.get(name, 0) + group.count

    def ranked(counts: Mapping[str, int]) -> list[Technique]:
        return [Technique(id=key, count=n) for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:20]

    return Attack(tactics=ranked(tactics), techniques=ranked(techniques))


def _values(groups: Iterable[DocGroup]) -> list[ValueCount]:
    return [ValueCount(value=g.key, count=g.count) for g in groups]


def _top_targets(window: _Window) -> list[ValueCount]:
    """host.name of the alerts, else destination.ip: two aggregations of disjoint documents."""
    hosts = window.store.aggregate_docs(window.alerts(), by=("entities", "host.name"), limit=TOP)
    addresses = window.store.aggregate_docs(
        window.alerts(missing(("entities", "host.name"))), by=("entities", "destination.ip"), limit=TOP
    )
    counts: dict[str, int] = {}
    for group in [*hosts, *addresses]:
        counts[group.key] = counts.get(group.key, 0) + group.count
    return [ValueCount(value=k, count=n) for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:TOP]


def _open_cases(window: _Window) -> Condition:
    """Created before the cut-off and not closed before it (a reopened case keeps its old
    ``closed_at``, so the status decides)."""
    cutoff = _stamp(window.cutoff)
    return all_of(
        between("created_at", lt=cutoff), Not(all_of(term("status", "closed"), between("closed_at", lt=cutoff)))
    )


def _cases(window: _Window) -> Cases:
    store = window.store
    opened = store.aggregate_docs(window.query("cases", window.created()))[0].count
    closed_query = window.query("cases", term("status", "closed"), window.created("closed_at"))
    closed = store.aggregate_docs(closed_query)[0].count
    classes = store.aggregate_docs(closed_query, by="classification", limit=MAX_GROUPS)
    open_at_end = store.aggregate_docs(window.query("cases", _open_cases(window)))[0].count
    return Cases(
        opened=opened,
        closed=closed,
        open_at_end=open_at_end,
        by_classification={g.key: g.count for g in classes},
    )


def _response(window: _Window) -> Response:
    filters: dict[str, Condition] = {}
    for level in LEVELS:
        filters.update(window.breach_filters(level, scoped=False))
    filters["acked"], filters["resolved"] = exists(ACK_MS), exists(RESOLVE_MS)
    groups = {
        g.key: g
        for g in window.store.aggregate_docs(
            window.alerts(),
            by="rule.level",
            limit=MAX_GROUPS,
            filters=filters,
            stats={"ack": ACK_MS, "resolve": RESOLVE_MS},
        )
    }
    by_level = []
    for level in LEVELS:
        group = groups.get(
            level, DocGroup(level, 0, dict.fromkeys(filters, 0), {"ack": FieldStats(), "resolve": FieldStats()})
        )
        ack, resolve = window.sla_seconds(level)
        by_level.append(
            LevelResponse(
                level=cast(Level, level),
                alerts=group.count,
                acknowledged=group.filters["acked"],
                resolved=group.filters["resolved"],
                mtta_seconds=_seconds(group.stats["ack"]),
                mttr_seconds=_seconds(group.stats["resolve"]),
                ack_sla_seconds=ack,
                resolve_sla_seconds=resolve,
                ack_breaches=group.filters[f"ack_late_{level}"] + group.filters[f"ack_overdue_{level}"],
                resolve_breaches=group.filters[f"resolve_late_{level}"] + group.filters[f"resolve_overdue_{level}"],
            )
        )
    return Response(
        mtta_seconds=_seconds(_merge(g.stats["ack"] for g in groups.values())),
        mttr_seconds=_seconds(_merge(g.stats["resolve"] for g in groups.values())),
        sla_breaches=sum(r.ack_breaches + r.resolve_breaches for r in by_level),
        by_level=by_level,
    )


def _closed_alerts(window: _Window) -> DocQuery:
    return window.query("alerts", window.created("resolved_at"))


def _false_positive_rate(window: _Window) -> float | None:
    total = window.store.aggregate_docs(_closed_alerts(window), filters={"fp": term("status", "false_positive")})[0]
    return _ratio(total.filters["fp"], total.count)


def _false_positives(window: _Window) -> list[RuleFalsePositives]:
    per_rule = window.store.aggregate_docs(
        _closed_alerts(window), by="rule.id", limit=MAX_GROUPS, filters={"fp": term("status", "false_positive")}
    )
    ranked = sorted(per_rule, key=lambda g: (-g.filters["fp"] / g.count, -g.count, g.key))[:TOP]
    facts = _rule_facts(window, _closed_alerts(window), [g.key for g in ranked])
    return [
        RuleFalsePositives(
            rule_id=g.key,
            title=facts[g.key][0] or g.key,
            closed=g.count,
            false_positives=g.filters["fp"],
            rate=round(g.filters["fp"] / g.count, 6),
        )
        for g in ranked
    ]


def _sensor_docs(window: _Window) -> list[Doc]:
    """The scope's sensors registered before the cut-off (one record per sensor: the rows of
    the report, not its data)."""
    found: list[Doc] = []
    cursor: str | None = None
    cutoff = _stamp(window.cutoff)
    while True:
        page = window.store.list_docs(
            "sensors", tenants=window.tenants, sort="created_at", descending=False, size=MAX_LIST_SIZE, cursor=cursor
        )
        found += [doc for doc in page.items if str(doc.body.get("created_at") or "") < cutoff]
        cursor = page.next_cursor
        if cursor is None:
            return found


def _events_per_sensor(window: _Window, start: datetime, end: datetime) -> dict[str, int]:
    found = window.store.count_events(window.events(start, end), by=("observer.id", "observer.name"), limit=MAX_GROUPS)
    return {bucket.key: bucket.count for bucket in found}


@dataclass(frozen=True)
class _Uptime:
    covered: float
    expected: float
    received: float
    dropped: float
    last_ms: float | None


def _uptimes(window: _Window, sensors: list[Doc]) -> dict[str, _Uptime]:
    store = window.store
    week = store.aggregate_docs(
        window.query("sensor_uptime", window.created("hour")),
        by="sensor_id",
        limit=MAX_GROUPS,
        stats={"covered": "covered_seconds", "received": "received", "dropped": "dropped"},
    )
    before = store.aggregate_docs(
        window.query("sensor_uptime", between("hour", lt=_stamp(window.cutoff))),
        by="sensor_id",
        limit=MAX_GROUPS,
        stats={"last": "last_ms"},
    )
    in_week = {g.key: g for g in week}
    last = {g.key: g.stats["last"].high for g in before}
    found = {}
    for doc in sensors:
        created = parse_timestamp(str(doc.body["created_at"]))
        since = max(window.start.astimezone(UTC), created)
        expected = max(0.0, (window.cutoff.astimezone(UTC) - since).total_seconds())
        group = in_week.get(doc.id)
        stats = group.stats if group is not None else {}
        found[doc.id] = _Uptime(
            covered=stats["covered"].total if stats else 0.0,
            expected=expected,
            received=stats["received"].total if stats else 0.0,
            dropped=stats["dropped"].total if stats else 0.0,
            last_ms=last.get(doc.id),
        )
    return found


def _reported(doc: Doc) -> bool:
    return bool(doc.body.get("last_seen"))


def _sensor_uptime(sensors: list[Doc], uptimes: Mapping[str, _Uptime]) -> float | None:
    reporting = [uptimes[doc.id] for doc in sensors if _reported(doc) and uptimes[doc.id].expected]
    covered = sum(min(u.covered, u.expected) for u in reporting)
    return _ratio(covered, sum(u.expected for u in reporting))


def _sensors(window: _Window, sensors: list[Doc], uptimes: Mapping[str, _Uptime]) -> list[SensorHealth]:
    settings = window.settings.reports
    events = _events_per_sensor(window, window.start, window.end)
    quiet_from = window.cutoff - timedelta(hours=settings.quiet_after_hours)
    recent = _events_per_sensor(window, quiet_from, window.cutoff)
    silent_before = (window.cutoff - timedelta(minutes=settings.silent_after_minutes)).timestamp() * 1000
    rows = []
    for doc in sensors:
        uptime = uptimes[doc.id]
        last_ms = uptime.last_ms
        rows.append(
            SensorHealth(
                sensor_id=doc.id,
                name=str(doc.body.get("name") or doc.id),
                tenant=str(doc.body.get("tenant")),
                kind=str(doc.body.get("kind") or ""),
                uptime=_ratio(min(uptime.covered, uptime.expected), uptime.expected) if _reported(doc) else None,
                capture_loss=_ratio(uptime.dropped, uptime.received),
                events=events.get(doc.id, 0),
                last_seen=None if last_ms is None else format_timestamp(datetime.fromtimestamp(last_ms / 1000, UTC)),
                silent=last_ms is None or last_ms < silent_before or not recent.get(doc.id),
            )
        )
    return sorted(rows, key=lambda row: (row.tenant, row.name, row.sensor_id))


def _playbooks(window: _Window) -> Playbooks:
    runs = window.query("playbook_runs", window.created())
    statuses = window.store.aggregate_docs(runs, by="status", limit=MAX_GROUPS)
    playbooks = window.store.aggregate_docs(runs, by="playbook", limit=TOP)
    containments = window.store.aggregate_docs(window.query("containment", window.created()))[0].count
    return Playbooks(
        runs=sum(g.count for g in statuses),
        by_status={g.key: g.count for g in statuses},
        by_playbook=_values(playbooks),
        containments=containments,
    )


def _agencies(window: _Window, names: Mapping[str, str], sensors: list[SensorHealth]) -> list[Agency]:
    store = window.store
    breaches: dict[str, Condition] = {}
    for level in LEVELS:
        breaches.update(window.breach_filters(level, scoped=True))
    alerts = {
        g.key: g
        for g in store.aggregate_docs(
            window.alerts(),
            by="tenant",
            limit=MAX_GROUPS,
            filters={"critical": term("rule.level", *CRITICAL), **breaches},
            stats={"ack": ACK_MS, "resolve": RESOLVE_MS},
        )
    }
    open_cases = {
        g.key: g.count
        for g in store.aggregate_docs(window.query("cases", _open_cases(window)), by="tenant", limit=MAX_GROUPS)
    }
    silent: dict[str, int] = {}
    for row in sensors:
        silent[row.tenant] = silent.get(row.tenant, 0) + int(row.silent)
    rows = []
    for tenant, name in sorted(names.items()):
        group = alerts.get(tenant)
        rows.append(
            Agency(
                tenant=tenant,
                name=name,
                alerts=group.count if group else 0,
                critical_alerts=group.filters["critical"] if group else 0,
                open_cases=open_cases.get(tenant, 0),
                mtta_seconds=_seconds(group.stats["ack"]) if group else None,
                mttr_seconds=_seconds(group.stats["resolve"]) if group else None,
                sla_breaches=sum(group.filters[name] for name in breaches) if group else 0,
                silent_sensors=silent.get(tenant, 0),
            )
        )
    return rows


# --- the report --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Numbers:
    """The headline numbers of one week."""

    alerts: int
    critical_alerts: int
    cases: Cases
    response: Response
    false_positive_rate: float | None
    sensor_uptime: float | None
    playbooks: Playbooks


def _headline_numbers(window: _Window, alerts: Alerts, sensors: list[Doc], uptimes: Mapping[str, _Uptime]) -> _Numbers:
    return _Numbers(
        alerts=alerts.total,
        critical_alerts=sum(alerts.by_level[level] for level in CRITICAL),
        cases=_cases(window),
        response=_response(window),
        false_positive_rate=_false_positive_rate(window),
        sensor_uptime=_sensor_uptime(sensors, uptimes),
        playbooks=_playbooks(window),
    )


def _change(value: float | None, previous: float | None) -> Change:
    change = None if value is None or previous is None or previous == 0 else round((value - previous) / previous, 6)
    return Change(value=value, previous=previous, change=change)


def _headline(now: _Numbers, before: _Numbers) -> Headline:
    pairs = {
        "alerts": (now.alerts, before.alerts),
        "critical_alerts": (now.critical_alerts, before.critical_alerts),
        "cases_opened": (now.cases.opened, before.cases.opened),
        "cases_closed": (now.cases.closed, before.cases.closed),
        "open_cases": (now.cases.open_at_end, before.cases.open_at_end),
        "mtta_seconds": (now.response.mtta_seconds, before.response.mtta_seconds),
        "mttr_seconds": (now.response.mttr_seconds, before.response.mttr_seconds),
        "sla_breaches": (now.response.sla_breaches, before.response.sla_breaches),
        "false_positive_rate": (now.false_positive_rate, before.false_positive_rate),
        "sensor_uptime": (now.sensor_uptime, before.sensor_uptime),
        "playbook_runs": (now.playbooks.runs, before.playbooks.runs),
        "containments": (now.playbooks.containments, before.playbooks.containments),
    }
    return Headline(**{name: _change(value, previous) for name, (value, previous) in pairs.items()})


def _agency_names(store: Store, tenant: str) -> dict[str, str]:
    """The agencies a report covers: every ``tenants`` record for the province (``*``), else
    the one named (it must exist)."""
    if tenant != "*":
        try:
            check_tenant_id(tenant)
            doc = store.get_doc("tenants", tenant)
        except (ParseError, NotFound) as exc:
            raise InvalidInput(
                f"no agency {tenant!r}",
                where="tenant",
                hint="name an agency's tenant id (soc tenant list), or * for the province",
            ) from exc
        return {tenant: str(doc.body.get("name") or tenant)}
    names: dict[str, str] = {}
    cursor: str | None = None
    while True:
        page = store.list_docs("tenants", sort="created_at", descending=False, size=MAX_LIST_SIZE, cursor=cursor)
        names.update({doc.id: str(doc.body.get("name") or doc.id) for doc in page.items})
        cursor = page.next_cursor
        if cursor is None:
            return names


def weekly(store: Store, settings: Settings, *, week: str, tenant: str, now: datetime | None = None) -> WeeklyReport:
    """The weekly report of ISO ``week`` for one agency (its tenant id) or the province (``*``)."""
    zone = ZoneInfo(settings.reports.timezone)
    now = (now or utcnow()).astimezone(UTC)
    start, end = week_bounds(week, zone)
    if start.astimezone(UTC) > now:
        raise InvalidInput(f"week {week} has not started yet", where="week", hint="ask for this week or an earlier one")
    names = _agency_names(store, tenant)
    tenants = None if tenant == "*" else (tenant,)
    store.refresh()
    window = _Window(store, settings, tenants, start, end, min(end.astimezone(UTC), now))
    # the week before, its baseline (1970-W01's is of 1969: outside YEARS, inside the calendar)
    before_start = datetime.combine(start.date() - timedelta(days=7), time(), zone)
    before = _Window(store, settings, tenants, before_start, start, min(start.astimezone(UTC), now))

    alerts = _alerts(window)
    sensor_docs = _sensor_docs(window)
    uptimes = _uptimes(window, sensor_docs)
    numbers = _headline_numbers(window, alerts, sensor_docs, uptimes)
    before_sensors = _sensor_docs(before)
    previous = _headline_numbers(before, _alerts(before), before_sensors, _uptimes(before, before_sensors))
    sensors = _sensors(window, sensor_docs, uptimes)
    return WeeklyReport(
        week=week,
        start=start.isoformat(),
        end=end.isoformat(),
        timezone=settings.reports.timezone,
        generated_at=format_timestamp(now),
        scope=Scope(
            tenant=tenant,
            tenants=sorted(names),
            name=settings.reports.province_name if tenant == "*" else names[tenant],
        ),
        headline=_headline(numbers, previous),
        alerts=alerts,
        top_rules=_top_rules(window),
        attack=_attack(window),
        top_sources=_values(window.store.aggregate_docs(window.alerts(), by=("entities", "source.ip"), limit=TOP)),
        top_targets=_top_targets(window),
        cases=numbers.cases,
        response=numbers.response,
        false_positives=_false_positives(window),
        sensors=sensors,
        playbooks=numbers.playbooks,
        agencies=_agencies(window, names, sensors) if tenant == "*" else [],
    )


__all__ = ["previous_week", "week_bounds", "weekly"]
