"""The alert status vocabulary and its workflow, in one place.

The detection engine (which alerts are still open to suppression), the triage service (which
moves are allowed), the API schemas and the UI all read these; none writes the names out again.

Open statuses still absorb new detections of the same group; closed ones never reopen by
themselves (an analyst reopens to ``in_progress``)::

    new ──► acknowledged ──► in_progress ──► resolved | false_positive | benign | duplicate
     └──────────┴───────────────────────────────►┘                    │
                                  in_progress ◄─── reopen ────────────┘
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args

from soc_core.events import parse_timestamp

AlertStatus = Literal["new", "acknowledged", "in_progress", "resolved", "false_positive", "benign", "duplicate"]
# Every status a person may set: "new" is only ever given by the engine.
SettableStatus = Literal["acknowledged", "in_progress", "resolved", "false_positive", "benign", "duplicate"]

ALERT_STATUSES: tuple[AlertStatus, ...] = get_args(AlertStatus)
SETTABLE_STATUSES: tuple[SettableStatus, ...] = get_args(SettableStatus)
OPEN_STATUSES: tuple[AlertStatus, ...] = ("new", "acknowledged", "in_progress")
CLOSED_STATUSES: tuple[AlertStatus, ...] = ("resolved", "false_positive", "benign", "duplicate")
TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"acknowledged", "in_progress", *CLOSED_STATUSES}),
    "acknowledged": frozenset({"in_progress", *CLOSED_STATUSES}),
    "in_progress": frozenset(CLOSED_STATUSES),
    **{closed: frozenset({"in_progress"}) for closed in CLOSED_STATUSES},  # reopen
}

# Why an alert was closed. Each classification closes to one status, so the weekly report's
# false-positive rate (``status == "false_positive"``) and the classification never disagree;
# ``true_positive`` is the plain "resolved".
Classification = Literal["true_positive", "false_positive", "benign", "duplicate"]
CLASSIFICATIONS: tuple[Classification, ...] = get_args(Classification)
STATUS_OF_CLASSIFICATION: dict[str, AlertStatus] = {
    "true_positive": "resolved",
    "false_positive": "false_positive",
    "benign": "benign",
    "duplicate": "duplicate",
}
CLASSIFICATION_OF_STATUS: dict[str, Classification] = {
    "resolved": "true_positive",
    "false_positive": "false_positive",
    "benign": "benign",
    "duplicate": "duplicate",
}

# The response times of an alert, in whole milliseconds since ``created_at``, kept beside the
# timestamps they come from: reports average them and compare them with SLAs in the store
# (Elasticsearch cannot subtract two fields of a document without scripts).
RESPONSE_TIMES = {"acknowledged_at": "time_to_acknowledge_ms", "resolved_at": "time_to_resolve_ms"}


def with_response_times(body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` with :data:`RESPONSE_TIMES` set from its timestamps (removed with them)."""
    timed = dict(body)
    created = body.get("created_at")
    for stamp, duration in RESPONSE_TIMES.items():
        value = body.get(stamp)
        if value and created:
            delta = parse_timestamp(str(value)) - parse_timestamp(str(created))
            timed[duration] = max(0, round(delta.total_seconds() * 1000))
        else:
            timed.pop(duration, None)
    return timed


__all__ = [
    "ALERT_STATUSES",
    "CLASSIFICATIONS",
    "CLASSIFICATION_OF_STATUS",
    "CLOSED_STATUSES",
    "OPEN_STATUSES",
    "RESPONSE_TIMES",
    "SETTABLE_STATUSES",
    "STATUS_OF_CLASSIFICATION",
    "TRANSITIONS",
    "AlertStatus",
    "Classification",
    "SettableStatus",
    "with_response_times",
]
