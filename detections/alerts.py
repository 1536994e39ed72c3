"""Alert documents and their grouping — pure functions, data in and data out.

A :class:`Detection` is one thing a rule saw: a single matching event (base rule) or a window
of events (correlation rule). Detections become alert documents (plain dicts, stored as kind
``"alerts"``)::

    {
      "rule.id", "rule.name", "rule.version", "rule.level", "rule.tags",   # ATT&CK tags only
      "tenant", "group_key", "group", "dedup_key",
      "entities": {"source.ip": [...], "user.name": [...], ...},
      "event_ids": [... at most MAX_EVENT_IDS ...], "count": <distinct events, not capped>,
      "distinct": {"destination.port": n, "user.name": n, ...},   # correlations: distinct values
      "trigger": {"@timestamp", "event.id", "user.name", ...},     # correlations: the firing event
      "first_seen", "last_seen", "status": "new", "created_at", "updated_at",
      "details": {...}   # threat-intel hits, the distinct values behind "distinct"; never indexed
    }

Counts are exact: a correlation hit says how many of its window's events no earlier hit of its
group reported (``fresh``), and a merge adds just those, so an alert fed by thousands of hits
of overlapping windows counts each event once. ``distinct`` counts the union of the values the
hits saw (exact up to MAX_DISTINCT_VALUES values per field, "at least" beyond). ``trigger`` is
the event that first made a correlation fire — for "success after failures", the successful
login: its account and time.

Suppression: a detection of the same (rule, tenant, group key) whose events come within
``window`` of the open alert's ``last_seen`` updates that alert (count, last_seen, event_ids,
entities) instead of creating another. Alerts an analyst has closed are never reopened; a new
alert starts instead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from soc_core.alert_status import OPEN_STATUSES
from soc_core.events import TENANT_FIELD, parse_timestamp

from .loader import LoadedRule

ENTITY_FIELDS = ("source.ip", "destination.ip", "user.name", "host.name")
MAX_EVENT_IDS = 100
MAX_ENTITY_VALUES = 20
MAX_DISTINCT_VALUES = 10_000
# the facts of the event that made a correlation fire (user.target.name: a Windows logon's account)
TRIGGER_FIELDS = (
    *("@timestamp", "event.id", "event.action", "event.outcome"),
    *("user.name", "user.target.name", "source.ip", "host.name"),
)
DEFAULT_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class RuleMeta:
    """The rule facts an alert carries."""

    id: str
    name: str
    version: str
    level: str | None
    tags: tuple[str, ...]

    @classmethod
    def from_loaded(cls, loaded: LoadedRule) -> RuleMeta:
        return cls(
            id=loaded.id,
            name=loaded.title,
            version=loaded.version,
            level=loaded.level,
            tags=tuple(loaded.attack_tags),
        )


@dataclass
class Detection:
    rule: RuleMeta
    tenant: str
    group: dict[str, Any]
    event_ids: list[str]
    count: int
    first_seen: str
    last_seen: str
    entities: dict[str, list[str]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # free-form facts for the alert (intel hits)
    fresh: int | None = None  # a correlation's events no earlier hit of its group reported (None: a base rule)
    distinct: dict[str, list[str]] = field(default_factory=dict)  # a correlation window's distinct values
    trigger: dict[str, Any] = field(default_factory=dict)  # the event that made a correlation fire

    @property
    def group_key(self) -> str:
        return json.dumps({"tenant": self.tenant, **self.group}, sort_keys=True, default=str)

    @property
    def dedup_key(self) -> str:
        return dedup_key(self.rule.id, self.tenant, self.group_key)


def dedup_key(rule_id: str, tenant: str, group_key: str) -> str:
    """Stable id of one (rule, tenant, group key) stream of detections."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (rule_id, tenant, group_key):
        digest.update(part.encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def entities_of(events: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Entity values present on the events, first seen first, per entity field."""
    found: dict[str, list[str]] = {}
    for event in events:
        for name in ENTITY_FIELDS:
            for value in _as_list(event.get(name)):
                values = found.setdefault(name, [])
                text = str(value)
                if text not in values and len(values) < MAX_ENTITY_VALUES:
                    values.append(text)
    return found


def trigger_of(event: Mapping[str, Any]) -> dict[str, Any]:
    """The facts of the event that made a correlation fire (its account and time)."""
    return {name: event[name] for name in TRIGGER_FIELDS if event.get(name) not in (None, "")}


def detection_from_event(rule: RuleMeta, event: Mapping[str, Any]) -> Detection:
    """A base-rule match. Its group is the event's entities, so repeats of the same actor
    against the same target fold into one alert."""
    stamp = str(event.get("@timestamp", ""))
    entities = entities_of([event])
    group = {name: values[0] for name, values in entities.items() if len(values) == 1}
    return Detection(
        rule=rule,
        tenant=str(event[TENANT_FIELD]),
        group=group,
        event_ids=[str(event.get("event.id", ""))],
        count=1,
        first_seen=stamp,
        last_seen=stamp,
        entities=entities,
    )


def alert_doc_id(detection: Detection) -> str:
    """Deterministic: re-running a batch after a crash finds the alert it already created."""
    first_event = detection.event_ids[0] if detection.event_ids else detection.first_seen
    return dedup_key(detection.dedup_key, first_event, "alert")


def new_alert(detection: Detection, *, now: str) -> dict[str, Any]:
    return {
        "id": alert_doc_id(detection),
        "rule.id": detection.rule.id,
        "rule.name": detection.rule.name,
        "rule.version": detection.rule.version,
        "rule.level": detection.rule.level,
        "rule.tags": list(detection.rule.tags),
        "tenant": detection.tenant,
        "group_key": detection.group_key,
        "group": dict(detection.group),
        "dedup_key": detection.dedup_key,
        "entities": {name: list(values) for name, values in detection.entities.items()},
        "event_ids": list(dict.fromkeys(detection.event_ids))[:MAX_EVENT_IDS],
        "count": detection.count,
        "first_seen": detection.first_seen,
        "last_seen": detection.last_seen,
        "status": "new",
        "created_at": now,
        "updated_at": now,
        **({"trigger": dict(detection.trigger)} if detection.trigger else {}),
        **_with_distinct({"details": dict(detection.details)} if detection.details else {}, detection),
    }


def _with_distinct(alert: dict[str, Any], detection: Detection) -> dict[str, Any]:
    """``alert`` with the detection's distinct values folded into its ``distinct`` counts."""
    if not detection.distinct:
        return alert
    details = dict(alert.get("details") or {})
    known = {name: list(values) for name, values in dict(details.get("distinct_values") or {}).items()}
    counts = dict(alert.get("distinct") or {})
    for name, values in detection.distinct.items():
        current = known.setdefault(name, [])
        seen = set(current)
        new_values = [value for value in values if value not in seen]
        room = max(0, MAX_DISTINCT_VALUES - len(current))
        current.extend(new_values[:room])
        # past the cap new values cannot be told from old ones: count them as new ("at least")
        counts[name] = max(int(counts.get(name, 0)), len(current)) + max(0, len(new_values) - room)
    details["distinct_values"] = known
    return {**alert, "details": details, "distinct": counts}


def can_merge(alert: Mapping[str, Any], detection: Detection, *, window: timedelta) -> bool:
    """Same stream, still open, and the detection starts within ``window`` of its last event."""
    if alert.get("dedup_key") != detection.dedup_key or alert.get("tenant") != detection.tenant:
        return False
    if alert.get("status") not in OPEN_STATUSES:
        return False
    gap = parse_timestamp(detection.first_seen) - parse_timestamp(str(alert["last_seen"]))
    return gap <= window


def merge_alert(alert: Mapping[str, Any], detection: Detection, *, now: str) -> dict[str, Any]:
    """The alert updated by a repeat detection; events it already holds are not counted twice."""
    merged = dict(alert)
    known = list(alert.get("event_ids", []))
    known_set = set(known)
    fresh = [eid for eid in dict.fromkeys(detection.event_ids) if eid not in known_set]
    merged["event_ids"] = (known + fresh)[:MAX_EVENT_IDS]
    # a correlation knows which of its events are new; a base rule's one event is new unless
    # the alert holds it already (a batch replayed after a crash)
    merged["count"] = int(alert.get("count", 0)) + (len(fresh) if detection.fresh is None else detection.fresh)
    merged["first_seen"] = min(str(alert["first_seen"]), detection.first_seen, key=_instant)
    merged["last_seen"] = max(str(alert["last_seen"]), detection.last_seen, key=_instant)
    entities = {name: list(values) for name, values in dict(alert.get("entities", {})).items()}
    for name, values in detection.entities.items():
        current = entities.setdefault(name, [])
        for value in values:
            if value not in current and len(current) < MAX_ENTITY_VALUES:
                current.append(value)
    merged["entities"] = entities
    merged["rule.version"] = detection.rule.version
    merged["updated_at"] = now
    if detection.trigger and "trigger" not in merged:
        merged["trigger"] = dict(detection.trigger)
    return _with_distinct(merged, detection)


def group_detections(
    detections: Sequence[Detection],
    open_alerts: Mapping[str, Mapping[str, Any]],
    *,
    window: timedelta = DEFAULT_WINDOW,
    now: str,
) -> list[dict[str, Any]]:
    """Fold detections into alerts.

    ``open_alerts`` maps a dedup key to the newest known alert of that stream (with its
    ``id``). Returns the alerts to write, each in its final state, oldest stream first; an
    alert whose ``id`` is not among ``open_alerts`` is new. Pure: inputs are not modified.
    """
    out: list[dict[str, Any]] = []
    latest: dict[str, int] = {}
    for detection in detections:
        key = detection.dedup_key
        alert: Mapping[str, Any] | None = None
        if key in latest:
            alert = out[latest[key]]
        elif key in open_alerts:
            alert = open_alerts[key]
        if alert is not None and can_merge(alert, detection, window=window):
            merged = merge_alert(alert, detection, now=now)
            if key in latest:
                out[latest[key]] = merged
            else:
                latest[key] = len(out)
                out.append(merged)
        else:
            latest[key] = len(out)
            out.append(new_alert(detection, now=now))
    return out


def _instant(stamp: str) -> float:
    return parse_timestamp(stamp).timestamp()


def _as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [item for item in value if item is not None and item != ""]
    return [value]


__all__ = [
    "DEFAULT_WINDOW",
    "ENTITY_FIELDS",
    "MAX_EVENT_IDS",
    "OPEN_STATUSES",
    "Detection",
    "RuleMeta",
    "alert_doc_id",
    "can_merge",
    "dedup_key",
    "detection_from_event",
    "entities_of",
    "group_detections",
    "merge_alert",
    "new_alert",
    "trigger_of",
]
