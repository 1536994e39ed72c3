"""Alerts raised by scheduled jobs, built as the detection engine builds its alerts
(:func:`detections.alerts.new_alert`) and created with a deterministic id: a run repeated by a
restart, or a second scheduler, finds the alert there and raises nothing twice."""

from __future__ import annotations

from detections.alerts import Detection, new_alert
from soc_core.errors import Conflict
from soc_core.events import format_timestamp, utcnow
from soc_core.store import Store


def raise_alert(store: Store, detection: Detection) -> bool:
    """Create the detection's alert; False if it exists already (this episode or event was
    alerted before)."""
    alert = new_alert(detection, now=format_timestamp(utcnow()))
    try:
        store.create_doc("alerts", alert, doc_id=str(alert["id"]))
    except Conflict:
        return False
    return True


__all__ = ["raise_alert"]
