"""JSON lines from any application: one JSON object per line → flat dotted fields.

Nested objects are flattened (``{"http": {"status": 200}}`` → ``http.status``), so Beats-style
ECS documents keep their field names. ``@timestamp`` (ISO 8601 or epoch seconds/milliseconds)
becomes the event time; a valid ``event.dataset`` in the document is kept, else the events are
``json.generic``. Fields the sensor owns (``event.id``, ``event.kind``, ``event.ingested``,
``organization.id``) are never taken from the line.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

from sensors.parsers.context import Fields, ParseContext
from soc_core.errors import ParseError
from soc_core.events import DATASET as DATASET_NAME
from soc_core.events import TENANT_FIELD, flatten, parse_timestamp

DATASET = "json.generic"
OWNED = frozenset({"event.id", "event.kind", "event.ingested", TENANT_FIELD})


def parse(line: str, ctx: ParseContext) -> Fields:
    try:
        document = json.loads(line)
    except ValueError as exc:
        raise ParseError(f"invalid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ParseError(f"a JSON line must be an object, not {type(document).__name__}")
    fields = {key: value for key, value in flatten(document).items() if key not in OWNED}
    stamp = fields.pop("@timestamp", None)
    if stamp is not None:
        moment = _timestamp(stamp)
        if moment is None:
            fields["json.@timestamp"] = stamp
        else:
            fields["@timestamp"] = moment
    dataset = fields.get("event.dataset")
    if not (isinstance(dataset, str) and DATASET_NAME.match(dataset)):
        if dataset is not None:
            fields["json.event.dataset"] = dataset
        fields["event.dataset"] = DATASET
    return fields


def _timestamp(value: object) -> datetime | None:
    if isinstance(value, str):
        try:
            return parse_timestamp(value)
        except ParseError:
            return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        seconds = value / 1000 if abs(value) > 1e11 else value  # epoch milliseconds or seconds
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


__all__ = ["DATASET", "parse"]
