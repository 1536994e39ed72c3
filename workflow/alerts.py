"""Alert triage: status workflow, assignment, tags, comments, bulk updates.

Every change names the version it was based on; a stale version is a Conflict (HTTP 409), never
a lost update. Timestamps for MTTA (``acknowledged_at``) and MTTR (``resolved_at``) are set by the
first transition that earns them. Each change is written to the audit trail.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from soc_core.alert_status import (
    CLASSIFICATION_OF_STATUS,
    CLOSED_STATUSES,
    STATUS_OF_CLASSIFICATION,
    TRANSITIONS,
    with_response_times,
)
from soc_core.errors import Conflict, NotVisible, SocError
from soc_core.events import format_timestamp, utcnow
from soc_core.store import Doc, Store
from workflow import audit
from workflow.principals import Actor

MAX_COMMENTS = 500
LEVELS = ("critical", "high", "medium", "low", "informational")
MAX_TAGS = 50
MAX_NOTE = 2000
# what a triage change may touch: a change based on an older version still applies when these
# are as its author saw them (only comments or a playbook's timeline moved the version)
TRIAGE_FIELDS = ("status", "assignee", "tags", "rule.level", "classification")


class WorkflowError(SocError):
    """A change the alert workflow does not allow."""


def visible_alert(store: Store, alert_id: str, scope: tuple[str, ...] | None) -> Doc:
    """The alert if the caller's tenants include its tenant; otherwise it does not exist."""
    doc = store.get_doc("alerts", alert_id)
    if scope is not None and doc.body.get("tenant") not in scope:
        raise NotVisible("no such alert", target=f"alerts/{alert_id}", owner=doc.body.get("tenant"))
    return doc


def apply_change(
    body: dict[str, Any],
    *,
    actor: str,
    status: str | None = None,
    assignee: str | None = None,
    unassign: bool = False,
    add_tags: Sequence[str] = (),
    remove_tags: Sequence[str] = (),
    level: str | None = None,
    classification: str | None = None,
    note: str | None = None,
    now: str,
) -> dict[str, Any]:
    """Pure: the alert body after the change (raises WorkflowError for forbidden moves).

    A classification closes the alert to its status (:data:`STATUS_OF_CLASSIFICATION`); a close
    without one (a playbook setting ``false_positive``) is classified by its status."""
    changed = dict(body)
    current = str(body.get("status", "new"))
    if classification is not None:
        implied = STATUS_OF_CLASSIFICATION.get(classification)
        if implied is None:
            raise WorkflowError(
                f"no classification {classification!r}; use one of {', '.join(STATUS_OF_CLASSIFICATION)}"
            )
        if status is not None and status != implied:
            raise WorkflowError(f"classification {classification} closes an alert as {implied}, not {status}")
        status = implied
    if status is not None and status != current:
        if status not in TRANSITIONS.get(current, frozenset()):
            raise WorkflowError(f"an alert cannot go from {current} to {status}")
        changed["status"] = status
        if current == "new" and not changed.get("acknowledged_at"):
            changed["acknowledged_at"] = now
        if status in CLOSED_STATUSES:
            changed["resolved_at"] = now
            changed["resolved_by"] = actor
        elif current in CLOSED_STATUSES:
            for key in ("resolved_at", "resolved_by", "classification", "resolution_note"):
                changed.pop(key, None)
    if status in CLOSED_STATUSES:
        changed["classification"] = classification or CLASSIFICATION_OF_STATUS[status]
        if note:
            changed["resolution_note"] = note[:MAX_NOTE]
    if level is not None and level != body.get("rule.level"):
        if level not in LEVELS:
            raise WorkflowError(f"no alert level {level!r}; use one of {', '.join(LEVELS)}")
        changed.setdefault("rule.level_original", body.get("rule.level"))  # the rule's own, kept once
        changed["rule.level"] = level
    if unassign:
        changed.pop("assignee", None)
    elif assignee is not None:
        changed["assignee"] = assignee
    if add_tags or remove_tags:
        tags = [t for t in body.get("tags") or [] if t not in set(remove_tags)]
        tags += [t for t in add_tags if t not in tags]
        if len(tags) > MAX_TAGS:
            raise WorkflowError(f"an alert carries at most {MAX_TAGS} tags")
        changed["tags"] = tags
    changed["updated_at"] = now
    return with_response_times(changed)


def update_alert(
    store: Store,
    *,
    alert_id: str,
    version: str,
    scope: tuple[str, ...] | None,
    actor: Actor,
    status: str | None = None,
    assignee: str | None = None,
    unassign: bool = False,
    add_tags: Sequence[str] = (),
    remove_tags: Sequence[str] = (),
    level: str | None = None,
    classification: str | None = None,
    note: str | None = None,
) -> Doc:
    doc = visible_alert(store, alert_id, scope)
    now = format_timestamp(utcnow())
    body = apply_change(
        doc.body,
        actor=actor.principal.id,
        status=status,
        assignee=assignee,
        unassign=unassign,
        add_tags=add_tags,
        remove_tags=remove_tags,
        level=level,
        classification=classification,
        note=note,
        now=now,
    )
    updated = store.update_doc("alerts", alert_id, body, version=version, refresh=audit.refreshing())
    audit.record(
        store,
        actor=actor.principal.id,
        action="alert.update",
        tenant=body.get("tenant"),
        target=f"alerts/{alert_id}",
        before={k: doc.body.get(k) for k in TRIAGE_FIELDS},
        after={**{k: body.get(k) for k in TRIAGE_FIELDS}, **({"note": note} if note else {})},
        request_id=actor.request_id,
        source_ip=actor.source_ip,
    )
    return updated


def add_comment(store: Store, *, alert_id: str, scope: tuple[str, ...] | None, actor: Actor, text: str) -> Doc:
    """Comments do not need the caller's version: they are appended, retrying on a race."""
    for _ in range(10):
        doc = visible_alert(store, alert_id, scope)
        comments = list(doc.body.get("comments") or [])
        if len(comments) >= MAX_COMMENTS:
            raise WorkflowError(f"an alert holds at most {MAX_COMMENTS} comments")
        comments.append({"at": format_timestamp(utcnow()), "author": actor.principal.id, "text": text})
        try:
            updated = store.update_doc(
                "alerts", alert_id, {**doc.body, "comments": comments}, version=doc.version, refresh=audit.refreshing()
            )
        except Conflict:
            continue  # someone changed the alert meanwhile; append to the new version
        audit.record(
            store,
            actor=actor.principal.id,
            action="alert.comment",
            tenant=doc.body.get("tenant"),
            target=f"alerts/{alert_id}",
            after={"text": text},
            request_id=actor.request_id,
            source_ip=actor.source_ip,
        )
        return updated
    raise WorkflowError("the alert kept changing; try again")


def triage_view(body: dict[str, Any]) -> str:
    """A short fingerprint of what triage changes touch (:data:`TRIAGE_FIELDS`): a form carries
    the one it was rendered with, so a conflict caused only by comments or timeline entries (the
    user's own comment, a playbook's note) is retried instead of refused."""
    seen = json.dumps([body.get(k) for k in TRIAGE_FIELDS], sort_keys=True, default=str)
    return hashlib.sha256(seen.encode()).hexdigest()[:16]


__all__ = [
    "TRIAGE_FIELDS",
    "Actor",
    "WorkflowError",
    "add_comment",
    "apply_change",
    "triage_view",
    "update_alert",
]
