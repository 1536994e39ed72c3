"""Case actions: open (or update) the alert's case, add observables, link related alerts —
through the case service (:mod:`workflow.cases`), within the run's agency.

All three are idempotent: run again after a crash, ``case.open`` finds the case the alert is in
and the others add only what the case does not hold yet. ``case.open`` returns ``case_id``,
which the runner keeps as the run's case (later steps read ``case``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from playbooks.actions.base import Action, ActionContext, ActionError, ActionResult, register
from playbooks.records import Subject, subject
from soc_core.errors import Conflict
from soc_core.events import parse_timestamp
from soc_core.store import Doc
from workflow.alerts import visible_alert
from workflow.cases import (
    add_observables,
    create_case,
    extract_observables,
    link_alerts,
    update_case,
    visible_case,
)

Severity = Literal["informational", "low", "medium", "high", "critical"]
OBSERVABLE_TYPES = ("ip", "domain", "user", "host", "hash")
MAX_SCANNED = 2000  # alerts read looking for related ones


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _alert(ctx: ActionContext) -> tuple[Subject, Doc]:
    about = subject(ctx.store, ctx.run_id, ctx.tenant)
    if not about.alert_id:
        raise ActionError("this run has no alert")
    return about, visible_alert(ctx.store, about.alert_id, about.scope)


def _case_of(about: Subject, *, dry_run: bool) -> str | None:
    """The run's case; in a dry run there may be none yet (the case.open before it only said it
    would open one), and the step says what it would do to it."""
    if not about.case_id and not dry_run:
        raise ActionError("the run's alert is in no case", hint="open one first with a case.open step")
    return about.case_id


@register
class OpenCase(Action["OpenCase.Params"]):
    name: ClassVar[str] = "case.open"
    idempotent: ClassVar[bool] = True

    class Params(_Params):
        title: str | None = Field(None, max_length=300, description="default: the rule's name")
        severity: Severity | None = Field(None, description="default: the alert's level")
        description: str = Field("", max_length=10_000)
        note: str = Field("", max_length=4000, description="added to the timeline of a case that exists")

    def run(self, ctx: ActionContext, params: Params) -> ActionResult:
        about, alert = _alert(ctx)
        existing = alert.body.get("case_id")
        if existing:
            case = visible_case(ctx.store, str(existing), about.scope)
            if ctx.dry_run:
                return ActionResult({"case_id": case.id, "result": "would update", "created": False})
            note = params.note or f"alert {alert.id} handled by playbook {about.playbook}"
            for _ in range(10):
                case = visible_case(ctx.store, str(existing), about.scope)
                try:
                    update_case(
                        ctx.store,
                        case_id=case.id,
                        version=case.version,
                        scope=about.scope,
                        actor=about.actor,
                        comment=note,
                    )
                except Conflict:
                    continue
                return ActionResult({"case_id": case.id, "result": "updated", "created": False}, True)
            raise ActionError(f"case {existing} kept changing; the step can be retried")
        title = params.title or str(alert.body.get("rule.name") or f"alert {alert.id}")
        severity = params.severity or str(alert.body.get("rule.level") or "medium")
        if ctx.dry_run:
            return ActionResult({"case_id": None, "result": "would open", "title": title, "severity": severity})
        case = create_case(
            ctx.store,
            title=title,
            description=params.description,
            severity=severity,
            alert_ids=[alert.id],
            scope=about.scope,
            actor=about.actor,
        )
        return ActionResult({"case_id": case.id, "result": "opened", "created": True, "title": title}, True)


class Observable(_Params):
    type: Literal["ip", "domain", "user", "host", "hash"]
    value: str = Field(min_length=1, max_length=512)


@register
class AddObservables(Action["AddObservables.Params"]):
    name: ClassVar[str] = "case.add_observables"
    idempotent: ClassVar[bool] = True

    class Params(_Params):
        observables: list[Observable] | None = Field(
            None, max_length=1000, description="default: the alert's IPs, hosts, users, domains and hashes"
        )

    def run(self, ctx: ActionContext, params: Params) -> ActionResult:
        about, alert = _alert(ctx)
        case_id = _case_of(about, dry_run=ctx.dry_run)
        if params.observables is None:
            events = ctx.store.get_events(list(alert.body.get("event_ids") or [])[:1000], tenants=about.scope)
            wanted = extract_observables([alert.body.get("entities") or {}, *events])
        else:
            wanted = [{"type": o.type, "value": o.value} for o in params.observables]
        if ctx.dry_run or case_id is None:
            case = visible_case(ctx.store, case_id, about.scope).body if case_id else {}
            held = {(o.get("type"), o.get("value")) for o in case.get("observables") or []}
            new = [o for o in wanted if (o["type"], o["value"]) not in held]
            return ActionResult({"case_id": case_id, "result": "would add", "observables": new})
        _, added = add_observables(ctx.store, case_id=case_id, observables=wanted, scope=about.scope, actor=about.actor)
        return ActionResult({"case_id": case_id, "result": "added", "observables": added}, bool(added))


@register
class LinkRelated(Action["LinkRelated.Params"]):
    """Alerts of the same agency, in no case yet, that share an entity value (an IP, a user, a
    host) with the run's alert and were seen within ``window_hours`` of it."""

    name: ClassVar[str] = "case.link_related"
    idempotent: ClassVar[bool] = True

    class Params(_Params):
        window_hours: float = Field(24.0, gt=0, le=24 * 30)
        fields: list[str] = Field(
            default_factory=lambda: ["source.ip", "destination.ip", "user.name", "host.name"],
            min_length=1,
            max_length=20,
        )
        max_alerts: int = Field(50, ge=1, le=500)

    def run(self, ctx: ActionContext, params: Params) -> ActionResult:
        about, alert = _alert(ctx)
        case_id = _case_of(about, dry_run=ctx.dry_run)
        related = self._related(ctx, about, alert, params)
        if ctx.dry_run or case_id is None:
            return ActionResult({"case_id": case_id, "result": "would link", "alert_ids": related})
        _, linked = link_alerts(ctx.store, case_id=case_id, alert_ids=related, scope=about.scope, actor=about.actor)
        return ActionResult({"case_id": case_id, "result": "linked", "alert_ids": linked}, bool(linked))

    @staticmethod
    def _related(ctx: ActionContext, about: Subject, alert: Doc, params: Params) -> list[str]:
        entities = alert.body.get("entities") or {}
        wanted = {(name, str(value)) for name in params.fields for value in entities.get(name) or []}
        if not wanted:
            return []
        window = timedelta(hours=params.window_hours)
        start = parse_timestamp(str(alert.body.get("first_seen") or alert.body["created_at"])) - window
        end = parse_timestamp(str(alert.body.get("last_seen") or alert.body["created_at"])) + window
        found: list[str] = []
        cursor: str | None = None
        scanned = 0
        while scanned < MAX_SCANNED and len(found) < params.max_alerts:
            page = ctx.store.list_docs(
                "alerts", tenants=about.scope, sort="last_seen", descending=True, size=500, cursor=cursor
            )
            for doc in page.items:
                scanned += 1
                seen = doc.body.get("last_seen") or doc.body.get("created_at")
                if not seen:
                    continue
                moment = parse_timestamp(str(seen))
                first = parse_timestamp(str(doc.body.get("first_seen") or seen))
                if moment < start:
                    return found  # sorted by last_seen: everything after is older still
                if doc.id == alert.id or doc.body.get("case_id") or first > end:
                    continue
                theirs = doc.body.get("entities") or {}
                if any(str(value) in {str(v) for v in theirs.get(name) or []} for name, value in wanted):
                    found.append(doc.id)
                    if len(found) >= params.max_alerts:
                        break
            if not page.next_cursor:
                break
            cursor = page.next_cursor
        return found


__all__ = ["AddObservables", "LinkRelated", "Observable", "OpenCase"]
