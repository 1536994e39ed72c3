"""The event model: flat dicts keyed by dotted ECS field names.

Events are plain dicts at the edges (``{"@timestamp": ..., "source.ip": ...}``); the helpers
here build them, give them deterministic ids and check the fields every event must carry.
Flat keys keep the streaming matcher to one dict lookup per field, and both stores accept them
as they are (Elasticsearch expands dotted names when it maps them).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from soc_core.errors import ParseError

Event = dict[str, Any]

TENANT_FIELD = "organization.id"
REQUIRED_FIELDS = ("@timestamp", "event.id", "event.kind", "event.dataset", TENANT_FIELD)
EVENT_KINDS = frozenset({"alert", "enrichment", "event", "metric", "state", "pipeline_error", "signal"})
PARSE_FAILURE_TAG = "parse_failure"
# Tenant ids appear inside Elasticsearch index names (canhgac-events-<tenant>-<dataset>-<day>),
# so they may not contain "-": a prefix pattern for one tenant never matches another's indices.
TENANT_ID = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
DATASET = re.compile(r"^[a-z0-9][a-z0-9_.]{0,79}$")


def check_tenant_id(tenant: str) -> str:
    if not isinstance(tenant, str) or not TENANT_ID.match(tenant):
        raise ParseError(
            f"bad tenant id {tenant!r}",
            hint="use 2-40 lowercase letters, digits or _ , starting with a letter (e.g. police, so_y_te)",
        )
    return tenant


def event_id(sensor_id: str, source: str, position: str | int, raw: bytes) -> str:
    """Deterministic id: the same input at the same place always gets the same id.

    Redelivery therefore writes the same id again, which the stores treat as "already stored".
    The digest covers each of sensor id, source and position length-prefixed, then the raw bytes.
    """
    place = str(position).encode()
    return hashlib.blake2b(
        _id_prefix(sensor_id, source) + len(place).to_bytes(4, "big") + place + raw, digest_size=16
    ).hexdigest()


@functools.lru_cache(maxsize=1024)
def _id_prefix(sensor_id: str, source: str) -> bytes:
    """The part of :func:`event_id`'s input every event of one source shares."""
    parts = (sensor_id.encode(), source.encode())
    return b"".join(len(part).to_bytes(4, "big") + part for part in parts)


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z``: the one form events carry."""
    last = _last_formatted
    if moment is last[0]:  # parsers return one object for a repeated time (lines of one second)
        return last[1]
    if moment.tzinfo is None:
        utc = moment.replace(tzinfo=UTC)
    elif moment.utcoffset():
        utc = moment.astimezone(UTC)
    else:
        utc = moment
    text = utc.isoformat(timespec="milliseconds")[:23] + "Z"  # years have 4 digits, padded
    _remember_formatted(moment, text)
    return text


_last_formatted: tuple[datetime | None, str] = (None, "")


def _remember_formatted(moment: datetime, text: str) -> None:
    global _last_formatted  # noqa: PLW0603 - one (object, text) pair, replaced whole: thread-safe
    _last_formatted = (moment, text)


def parse_timestamp(value: str) -> datetime:
    """Read an ISO 8601 timestamp; naive values are taken as UTC."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError) as exc:
        raise ParseError(f"not an ISO 8601 timestamp: {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_event(
    *,
    tenant: str,
    dataset: str,
    sensor_id: str,
    source: str,
    position: str | int,
    raw: bytes,
    timestamp: datetime | None = None,
    fields: Mapping[str, Any] | None = None,
    kind: str = "event",
) -> Event:
    """Build an event with its required fields and deterministic id.

    ``tenant`` comes from the sensor's credentials, never from the input: a tenant written
    inside ``fields`` is overwritten.
    """
    event: Event = dict(fields or {})
    event["@timestamp"] = format_timestamp(timestamp or utcnow())
    event["event.id"] = event_id(sensor_id, source, position, raw)
    event["event.kind"] = kind
    event["event.dataset"] = dataset
    event["event.module"] = event.get("event.module") or dataset.split(".", 1)[0]
    event[TENANT_FIELD] = tenant
    event.setdefault("observer.name", sensor_id)
    return event


def mark_parse_failure(event: Event, raw_text: str, reason: str) -> Event:
    """Keep what could not be parsed: the raw text, the reason and the ``parse_failure`` tag."""
    event["event.original"] = raw_text
    event["error.message"] = reason
    add_tag(event, PARSE_FAILURE_TAG)
    return event


def add_tag(event: Event, tag: str) -> None:
    tags = list(event.get("tags") or [])
    if tag not in tags:
        tags.append(tag)
    event["tags"] = tags


def encode_event(event: Mapping[str, Any]) -> bytes:
    """An event as JSON bytes: orjson, with values JSON has no type for written as text."""
    return orjson.dumps(event, default=str)


def encode_stored(event: Mapping[str, Any], ingested: str, encoded: bytes | None = None) -> bytes:
    """The JSON a store keeps for ``event``: the event plus ``event.ingested``.

    ``encoded`` (the event's :func:`encode_event` bytes) is reused when it can be: the field is
    put in front instead of serialising the whole event again.
    """
    if encoded is not None and encoded[:1] == b"{" and len(encoded) > 2 and "event.ingested" not in event:
        return b'{"event.ingested":' + orjson.dumps(ingested) + b"," + encoded[1:]
    stored = dict(event)
    stored["event.ingested"] = ingested
    return encode_event(stored)


def validate_event(event: Mapping[str, Any]) -> list[str]:
    """Problems with an event, as readable strings; an empty list means it is valid."""
    problems = [f"missing required field {name!r}" for name in REQUIRED_FIELDS if not event.get(name)]
    tenant = event.get(TENANT_FIELD)
    if tenant and not (isinstance(tenant, str) and _matches(TENANT_ID, tenant)):
        problems.append(f"{TENANT_FIELD} {tenant!r} is not a valid tenant id")
    dataset = event.get("event.dataset")
    if dataset and not (isinstance(dataset, str) and _matches(DATASET, dataset)):
        problems.append(f"event.dataset {dataset!r} must be lowercase letters, digits, '_' or '.'")
    kind = event.get("event.kind")
    if kind and kind not in EVENT_KINDS:
        problems.append(f"event.kind {kind!r} is not an ECS event kind")
    stamp = event.get("@timestamp")
    if isinstance(stamp, str):
        problem = _timestamp_problem(stamp)
        if problem is not None:
            problems.append(f"@timestamp: {problem}")
    elif stamp is not None:
        problems.append("@timestamp must be an ISO 8601 string")
    problems.extend(f"bad field name {key!r}" for key in event if key not in _GOOD_NAMES and not _good_name(key))
    return problems


# Validation runs on every event a store takes, and the same values recur: tenants, datasets,
# field names, the timestamps of one second. Known-good ones are remembered (bounded).
_GOOD_NAMES: set[str] = set()
_GOOD_VALUES: dict[re.Pattern[str], set[str]] = {}
_REMEMBERED = 10_000


def _matches(pattern: re.Pattern[str], value: str) -> bool:
    good = _GOOD_VALUES.setdefault(pattern, set())
    if value in good:
        return True
    if not pattern.match(value):
        return False
    if len(good) < _REMEMBERED:
        good.add(value)
    return True


def _good_name(key: object) -> bool:
    if not isinstance(key, str) or not key or key != key.strip():
        return False
    if len(_GOOD_NAMES) < _REMEMBERED:
        _GOOD_NAMES.add(key)
    return True


@functools.lru_cache(maxsize=4096)
def _timestamp_problem(stamp: str) -> str | None:
    try:
        parse_timestamp(stamp)
    except ParseError as exc:
        return exc.message
    return None


def shape_problem(event: Mapping[str, Any], *, max_bytes: int, max_fields: int, max_depth: int) -> str | None:
    """Why an event is too big to take (size as JSON, keys at every level, nesting), or None.

    Iterative, and it stops at the first limit passed, so a hostile event costs at most what
    its limits allow; the size is measured last, on an event already known to be shallow.
    """
    fields = 0
    stack: list[tuple[Any, int]] = [(event, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > max_depth:
            return f"nested deeper than {max_depth} levels (api.limits.event_depth)"
        if isinstance(value, Mapping):
            fields += len(value)
            if fields > max_fields:
                return f"more than {max_fields} fields (api.limits.event_fields)"
            children: Any = value.values()
        elif isinstance(value, list | tuple):
            children = value
        else:
            continue
        stack.extend((child, depth + 1) for child in children if isinstance(child, Mapping | list | tuple))
    size = len(encode_event(event))
    if size > max_bytes:
        return f"{size} bytes as JSON, more than {max_bytes} (api.limits.event_bytes)"
    return None


def flatten(document: Mapping[str, Any], prefix: str = "") -> Event:
    """Turn a nested ECS document (as Beats write it) into flat dotted keys.

    Lists stay lists; dicts inside lists are kept as they are.
    """
    flat: Event = {}
    for key, value in document.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


__all__ = [
    "EVENT_KINDS",
    "PARSE_FAILURE_TAG",
    "REQUIRED_FIELDS",
    "TENANT_FIELD",
    "Event",
    "add_tag",
    "check_tenant_id",
    "event_id",
    "flatten",
    "format_timestamp",
    "make_event",
    "mark_parse_failure",
    "parse_timestamp",
    "shape_problem",
    "utcnow",
    "validate_event",
]
