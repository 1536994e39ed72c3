"""Sigma correlation rules over a stream of base-rule matches, with true sliding windows.

Supported types: ``event_count``, ``value_count``, ``temporal``, ``temporal_ordered``, with
``timespan``, ``group-by``, ``aliases`` and a condition (``gt``/``gte``/``lt``/``lte``/``eq``/
``neq``, plus ``field`` for ``value_count``). The tenant (``organization.id``) is always the
first part of the group key, so events of two agencies never correlate.

Windows slide with each event instead of being cut into buckets: for ``gt``/``gte`` (the
"at least N" case) a burst of N events anywhere within ``timespan`` fires, even when it
straddles what would be a bucket edge. Every later event that keeps the condition true fires
again; alert grouping (:mod:`detections.alerts`) folds those repeats into one alert. For
``lt``/``lte``/``eq``/``neq`` the window is the one ending at the newest event.

A correlation rule may reference another correlation rule (Sigma's chaining): each firing of
the referenced rule is fed to it as one item standing for the referenced window's events, at the
time and with the fields of the event that made it fire. ``temporal_ordered`` over a brute-force
correlation and a successful-login rule is how "a login succeeded after a run of failures" is
written.

A hit's ``count`` is the number of distinct events in its window (a chained item counts the
events it stands for); ``fresh`` is how many of them no earlier hit of the same group reported,
so an alert that folds every repeat hit adds up to exactly the distinct events, whatever the
number of hits. ``distinct`` holds the window's distinct values of :data:`DISTINCT_FIELDS`
(ports, users, URLs), for the alert's distinct-entity counts.

Events missing a group-by field are not correlated (as an Elasticsearch terms aggregation
skips them). Timestamps come from ``@timestamp``; events arriving late still land in the right
place of their key's window.

State is bounded — at most ``max_keys`` group keys (least recently updated evicted first) and
``max_items`` events per key — evictions are counted, and :meth:`CorrelationEngine.snapshot`
/ :meth:`CorrelationEngine.restore` turn the whole state into a JSON-able dict and back, so it
survives a restart.
"""

from __future__ import annotations

import bisect
import json
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
)

from soc_core.errors import RuleError, SocError
from soc_core.events import TENANT_FIELD, format_timestamp, parse_timestamp

from .loader import rule_key

SNAPSHOT_VERSION = 2
SUPPORTED_TYPES = {
    SigmaCorrelationType.EVENT_COUNT: "event_count",
    SigmaCorrelationType.VALUE_COUNT: "value_count",
    SigmaCorrelationType.TEMPORAL: "temporal",
    SigmaCorrelationType.TEMPORAL_ORDERED: "temporal_ordered",
}
_OPERATORS: dict[str, Callable[[int, int], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "eq": lambda a, b: a == b,
    "neq": lambda a, b: a != b,
}
MAX_HIT_EVENT_IDS = 100
# the entity fields whose distinct values an alert counts (a port scan's ports, a spray's users)
DISTINCT_FIELDS = ("destination.ip", "destination.port", "user.name", "url.original")
MAX_CHAIN_DEPTH = 4  # correlations of correlations; deeper chains (or cycles) stop here


@dataclass(frozen=True)
class CorrelationSpec:
    """What the streaming engine needs from one correlation rule, in plain data."""

    rule_id: str
    type: str
    rule_ids: tuple[str, ...]
    timespan: float
    group_by: tuple[str, ...] = ()
    aliases: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    op: str = "gte"
    count: int = 1
    value_field: str | None = None
    scope: frozenset[str] | None = None  # the tenants whose events it counts (None: every tenant)

    @classmethod
    def from_rule(cls, rule: SigmaCorrelationRule, *, where: str) -> CorrelationSpec:
        """Read a resolved pySigma correlation rule; RuleError for what we do not support."""
        kind = SUPPORTED_TYPES.get(rule.type)
        if kind is None:
            raise RuleError(
                f"correlation type {rule.type.name.lower()!r} is not supported",
                where=where,
                hint=f"use one of {sorted(SUPPORTED_TYPES.values())}",
            )
        condition = rule.condition
        if not isinstance(condition, SigmaCorrelationCondition):
            raise RuleError(
                "extended (boolean) correlation conditions are not supported",
                where=where,
                hint="list the rules under `rules:` and use a count condition",
            )
        value_field: str | None = None
        if condition.fieldref is not None:
            if isinstance(condition.fieldref, list):
                if len(condition.fieldref) != 1:
                    raise RuleError("value_count over several fields is not supported", where=where)
                value_field = condition.fieldref[0]
            else:
                value_field = condition.fieldref
        rule_ids = tuple(rule_key(ref.rule) for ref in rule.referenced_rules)
        aliases = {
            alias.alias: {rule_key(ref.rule): name for ref, name in alias.mapping.items()} for alias in rule.aliases
        }
        op = _operator_name(condition.op)
        return cls(
            rule_id=rule_key(rule),
            type=kind,
            rule_ids=rule_ids,
            timespan=float(rule.timespan.seconds),
            group_by=tuple(rule.group_by or ()),
            aliases=aliases,
            op=op,
            count=condition.count,
            value_field=value_field,
        )

    def field_for(self, name: str, base_rule_id: str) -> str:
        """The event field behind ``name`` (a group-by field or alias) for events of a rule."""
        mapping = self.aliases.get(name)
        if mapping is not None:
            return mapping.get(base_rule_id, name)
        return name


def _operator_name(op: SigmaCorrelationConditionOperator) -> str:
    return op.name.lower()


@dataclass
class CorrelationHit:
    """One firing of a correlation rule: the window of events that satisfied it."""

    rule_id: str
    tenant: str
    group: dict[str, Any]
    group_key: str
    event_ids: list[str]
    count: int  # distinct events in the window
    first_seen: str
    last_seen: str
    measure: int
    fresh: int = 0  # of those, the events no earlier hit of this group reported
    distinct: dict[str, list[str]] = field(default_factory=dict)  # DISTINCT_FIELDS values in the window
    members: tuple[str, ...] = ()  # every event id of the window (a chained correlation feeds on them)


# (timestamp, event id, index of the base rule in spec.rule_ids, values of the value field,
#  the event ids the item stands for (a chained correlation hit's window; empty: itself),
#  the DISTINCT_FIELDS values of the event as "field=value")
_Item = tuple[float, str, int, tuple[str, ...], tuple[str, ...], tuple[str, ...]]


@dataclass
class _KeyState:
    spec_id: str
    tenant: str
    group: dict[str, Any]
    items: list[_Item] = field(default_factory=list)
    reported: set[str] = field(default_factory=set)  # event ids of the items already in a hit


class CorrelationEngine:
    """Sliding-window state for every correlation rule; pure apart from its own memory."""

    def __init__(self, specs: Iterable[CorrelationSpec], *, max_keys: int = 100_000, max_items: int = 1_000) -> None:
        self.specs: dict[str, CorrelationSpec] = {spec.rule_id: spec for spec in specs}
        self.by_base_rule: dict[str, list[CorrelationSpec]] = {}
        for spec in self.specs.values():
            for base_id in dict.fromkeys(spec.rule_ids):
                self.by_base_rule.setdefault(base_id, []).append(spec)
        self.max_keys = max_keys
        self.max_items = max_items
        self.keys: OrderedDict[str, _KeyState] = OrderedDict()
        self.evicted_keys = 0
        self.evicted_items = 0
        self.skipped_events = 0
        self.watermark = 0.0

    def feed(self, base_rule_id: str, event: Mapping[str, Any]) -> list[CorrelationHit]:
        """Account one event matched by ``base_rule_id``; the correlations it makes fire."""
        specs = self.by_base_rule.get(base_rule_id)
        if not specs:
            return []
        moment = _event_time(event)
        tenant = event.get(TENANT_FIELD)
        if moment is None or not isinstance(tenant, str) or not tenant:
            self.skipped_events += 1
            return []
        self.watermark = max(self.watermark, moment)
        return self._feed_specs(specs, base_rule_id, event, moment=moment, tenant=tenant, members=(), depth=0)

    def _feed_specs(
        self,
        specs: list[CorrelationSpec],
        rule_id: str,
        event: Mapping[str, Any],
        *,
        moment: float,
        tenant: str,
        members: tuple[str, ...],
        depth: int,
    ) -> list[CorrelationHit]:
        hits = []
        for spec in specs:
            if spec.scope is not None and tenant not in spec.scope:
                continue  # a correlation scoped to other agencies never sees this agency's events
            hit = self._feed_one(spec, rule_id, event, moment=moment, tenant=tenant, members=members)
            if hit is None:
                continue
            hits.append(hit)
            chained = self.by_base_rule.get(hit.rule_id)
            if chained and depth < MAX_CHAIN_DEPTH:
                # the hit, as one item of the correlations built on it: at the firing event
                hits.extend(
                    self._feed_specs(
                        chained, hit.rule_id, event, moment=moment, tenant=tenant, members=hit.members, depth=depth + 1
                    )
                )
        return hits

    def _feed_one(
        self,
        spec: CorrelationSpec,
        base_rule_id: str,
        event: Mapping[str, Any],
        *,
        moment: float,
        tenant: str,
        members: tuple[str, ...] = (),
    ) -> CorrelationHit | None:
        group: dict[str, Any] = {}
        for name in spec.group_by:
            value = event.get(spec.field_for(name, base_rule_id))
            if value is None or value == "" or isinstance(value, dict):
                return None
            group[name] = value
        key = json.dumps([spec.rule_id, tenant, *group.values()], default=str)
        state = self.keys.get(key)
        if state is None:
            state = _KeyState(spec.rule_id, tenant, group)
            self.keys[key] = state
            while len(self.keys) > self.max_keys:
                self.keys.popitem(last=False)
                self.evicted_keys += 1
        else:
            self.keys.move_to_end(key)
        values: tuple[str, ...] = ()
        if spec.value_field is not None:
            raw = event.get(spec.field_for(spec.value_field, base_rule_id))
            values = tuple(str(v) for v in (raw if isinstance(raw, list) else [raw]) if v is not None)
            if spec.type == "value_count" and not values:
                return None
        index = spec.rule_ids.index(base_rule_id)
        item: _Item = (moment, str(event.get("event.id", "")), index, values, members, _facts(event))
        bisect.insort(state.items, item)
        newest = state.items[-1][0]
        keep_from = bisect.bisect_left(state.items, (newest - spec.timespan,))
        if keep_from:
            del state.items[:keep_from]
        drop = max(0, len(state.items) - self.max_items)
        if drop:
            del state.items[:drop]
            self.evicted_items += drop
        if (keep_from or drop) and state.reported:
            # the ids of dropped items can never be in a window again
            state.reported &= {eid for entry in state.items for eid in _ids(entry)}
        window = self._best_window(spec, state.items, moment)
        if window is None:
            return None
        measure = _measure(spec, window)
        event_ids = list(dict.fromkeys(eid for entry in window for eid in _ids(entry)))
        fresh = sum(1 for eid in event_ids if eid not in state.reported)
        state.reported.update(event_ids)
        distinct: dict[str, dict[str, None]] = {}  # dicts: ordered sets
        for entry in window:
            for fact in entry[5]:
                name, _, value = fact.partition("=")
                distinct.setdefault(name, {})[value] = None
        return CorrelationHit(
            rule_id=spec.rule_id,
            tenant=tenant,
            group=dict(group),
            group_key=group_key_text(tenant, group),
            event_ids=event_ids[-MAX_HIT_EVENT_IDS:],
            count=len(event_ids),
            first_seen=_format(window[0][0]),
            last_seen=_format(window[-1][0]),
            measure=measure,
            fresh=fresh,
            distinct={name: list(found) for name, found in distinct.items()},
            members=tuple(event_ids),
        )

    def _best_window(self, spec: CorrelationSpec, items: list[_Item], moment: float) -> list[_Item] | None:
        """A window of ``timespan`` containing the new event that satisfies the condition."""
        compare = _OPERATORS[spec.op]
        span = spec.timespan
        if spec.op not in ("gt", "gte"):
            end = bisect.bisect_right(items, (moment, "\uffff"))
            start = bisect.bisect_left(items, (moment - span,))
            window = items[start:end]
            return window if compare(_measure(spec, window), spec.count) else None
        # Try every window [s, s + span] that contains the new event; the measures grow with
        # the window, so starting at each item's timestamp covers all of them.
        first = bisect.bisect_left(items, (moment - span,))
        for position in range(first, len(items)):
            begin = items[position][0]
            if begin > moment:
                break
            end = bisect.bisect_right(items, (begin + span, "\uffff"))
            window = items[position:end]
            if compare(_measure(spec, window), spec.count):
                return window
            if end == len(items) and begin == items[first][0]:
                # the widest window already includes every later item: later starts only shrink it
                break
        return None

    # persistence ---------------------------------------------------------------------------
    def expire(self) -> int:
        """Drop keys whose newest event is older than the watermark minus their timespan."""
        stale = [
            key
            for key, state in self.keys.items()
            if not state.items
            or state.spec_id not in self.specs
            or state.items[-1][0] < self.watermark - self.specs[state.spec_id].timespan
        ]
        for key in stale:
            del self.keys[key]
        return len(stale)

    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-able data (expired keys are left out)."""
        self.expire()
        return {
            "version": SNAPSHOT_VERSION,
            "watermark": self.watermark,
            "evicted_keys": self.evicted_keys,
            "evicted_items": self.evicted_items,
            "skipped_events": self.skipped_events,
            "keys": [
                {
                    "key": key,
                    "rule": state.spec_id,
                    "tenant": state.tenant,
                    "group": state.group,
                    "items": [
                        [ts, eid, idx, list(values), list(members), list(facts)]
                        for ts, eid, idx, values, members, facts in state.items
                    ],
                    "reported": sorted(state.reported),
                }
                for key, state in self.keys.items()
            ],
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Load a :meth:`snapshot`; keys of rules that no longer exist are dropped."""
        version = data.get("version")
        if version not in (1, SNAPSHOT_VERSION):
            raise SocError(
                f"correlation state version {version!r} is not {SNAPSHOT_VERSION}",
                hint="delete the detection-engine checkpoint to start with empty windows",
            )
        self.keys.clear()
        self.watermark = float(data.get("watermark", 0.0))
        self.evicted_keys = int(data.get("evicted_keys", 0))
        self.evicted_items = int(data.get("evicted_items", 0))
        self.skipped_events = int(data.get("skipped_events", 0))
        for entry in data.get("keys", []):
            if entry["rule"] not in self.specs:
                continue
            # version 1 items have no members nor facts; their windows carry on without them
            items: list[_Item] = [
                (float(ts), str(eid), int(idx), tuple(values), tuple(rest[0]), tuple(rest[1]))
                for ts, eid, idx, values, *rest in ((*raw, [], []) if len(raw) == 4 else raw for raw in entry["items"])
            ]
            reported = {str(eid) for eid in entry.get("reported", [])}
            self.keys[entry["key"]] = _KeyState(
                entry["rule"], entry["tenant"], dict(entry["group"]), sorted(items), reported
            )


def _ids(entry: _Item) -> tuple[str, ...]:
    """The event ids an item stands for: a chained hit's window, else its own event."""
    return entry[4] or (entry[1],)


def _facts(event: Mapping[str, Any]) -> tuple[str, ...]:
    facts = []
    for name in DISTINCT_FIELDS:
        raw = event.get(name)
        for value in raw if isinstance(raw, list) else [raw]:
            if value is not None and value != "" and not isinstance(value, dict):
                facts.append(f"{name}={value}")
    return tuple(facts)


def _measure(spec: CorrelationSpec, window: list[_Item]) -> int:
    if spec.type == "event_count":
        return len(window)
    if spec.type == "value_count":
        return len({value for entry in window for value in entry[3]})
    if spec.type == "temporal":
        return len({entry[2] for entry in window})
    # temporal_ordered: how far along rule_ids an in-order chain gets (greedy is optimal)
    step = 0
    for entry in window:
        if step < len(spec.rule_ids) and entry[2] == step:
            step += 1
    return step


def group_key_text(tenant: str, group: Mapping[str, Any]) -> str:
    """Stable text for (tenant, group-by values), used as the alert's ``group_key``."""
    return json.dumps({"tenant": tenant, **group}, sort_keys=True, default=str)


def _event_time(event: Mapping[str, Any]) -> float | None:
    stamp = event.get("@timestamp")
    if not isinstance(stamp, str):
        return None
    try:
        return parse_timestamp(stamp).timestamp()
    except SocError:
        return None


def _format(moment: float) -> str:
    return format_timestamp(datetime.fromtimestamp(moment, tz=UTC))


__all__ = [
    "DISTINCT_FIELDS",
    "SUPPORTED_TYPES",
    "CorrelationEngine",
    "CorrelationHit",
    "CorrelationSpec",
    "group_key_text",
]
