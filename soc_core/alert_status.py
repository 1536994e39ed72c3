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

from typing import Literal, get_args

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

__all__ = [
    "ALERT_STATUSES",
    "CLOSED_STATUSES",
    "OPEN_STATUSES",
    "SETTABLE_STATUSES",
    "TRANSITIONS",
    "AlertStatus",
    "SettableStatus",
]
