"""Alert actions: status, level, tags, assignee, comment — through the triage service
(:mod:`workflow.alerts`), so the status workflow of :mod:`soc_core.alert_status` holds for a
playbook exactly as for a person, and every change is audited as ``playbook:<name>``.

Each acts on the run's alert, or on ``alert_id`` when given; always within the run's agency.
A dry run computes the change (a forbidden move is still an error) and writes nothing.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from playbooks.actions.base import Action, ActionContext, ActionError, ActionResult, register
from playbooks.records import Subject, subject
from soc_core.alert_status import SettableStatus
from soc_core.errors import Conflict
from soc_core.events import format_timestamp, utcnow
from soc_core.store import Doc
from workflow.alerts import MAX_TAGS, add_comment, apply_change, update_alert, visible_alert

Level = Literal["informational", "low", "medium", "high", "critical"]


class _AlertParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alert_id: str | None = Field(None, max_length=200, description="default: the run's alert")


def _target(ctx: ActionContext, params: _AlertParams) -> tuple[Subject, Doc]:
    about = subject(ctx.store, ctx.run_id, ctx.tenant)
    alert_id = params.alert_id or about.alert_id
    if not alert_id:
        raise ActionError("this run has no alert; give alert_id")
    return about, visible_alert(ctx.store, alert_id, about.scope)


def _change(ctx: ActionContext, params: _AlertParams, **change: Any) -> ActionResult:
    """Apply a triage change (re-reading on a race), or say what it would be in a dry run."""
    keys = ("status", "assignee", "tags", "rule.level")
    for _ in range(10):
        about, doc = _target(ctx, params)
        after = apply_change(doc.body, actor=about.actor.principal.id, now=format_timestamp(utcnow()), **change)
        before_view = {k: doc.body.get(k) for k in keys}
        after_view = {k: after.get(k) for k in keys}
        changed = before_view != after_view
        if ctx.dry_run or not changed:
            verb = "would change" if ctx.dry_run and changed else "unchanged"
            return ActionResult({"alert_id": doc.id, "result": verb, "before": before_view, "after": after_view})
        try:
            update_alert(
                ctx.store, alert_id=doc.id, version=doc.version, scope=about.scope, actor=about.actor, **change
            )
        except Conflict:
            continue
        return ActionResult({"alert_id": doc.id, "result": "changed", "before": before_view, "after": after_view}, True)
    raise ActionError("the alert kept changing; the step can be retried")


@register
class SetStatus(Action["SetStatus.Params"]):
    name: ClassVar[str] = "alert.set_status"
    idempotent: ClassVar[bool] = True

    class Params(_AlertParams):
        status: SettableStatus

    def run(self, ctx: ActionContext, params: Params) -> ActionResult:
        return _change(ctx, params, status=params.status)


@register
class SetLevel(Action["SetLevel.Params"]):
    name: ClassVar[str] = "alert.set_level"
    idempotent: ClassVar[bool] = True

    class Params(_AlertParams):
        level: Level

    def run(self, ctx: ActionContext, params: Params) -> ActionResult:
        return _change(ctx, params, level=params.level)


@register
class Tag(Action["Tag.Params"]):
    name: ClassVar[str] = "alert.tag"
    idempotent: ClassVar[bool] = True

    class Params(_AlertParams):
        add: list[str] = Field(default_factory=list, max_length=MAX_TAGS)
        remove: list[str] = Field(default_factory=list, max_length=MAX_TAGS)

        @model_validator(mode="after")
        def _something(self) -> Tag.Params:
            if not self.add and not self.remove:
                raise ValueError("give tags to add or remove")
            if any(not tag or len(tag) > 100 for tag in [*self.add, *self.remove]):
                raise ValueError("a tag is 1-100 characters")
            return self

    def run(self, ctx: ActionContext, params: Params) -> ActionResult:
        return _change(ctx, params, add_tags=params.add, remove_tags=params.remove)


@register
class Assign(Action["Assign.Params"]):
    name: ClassVar[str] = "alert.assign"
    idempotent: ClassVar[bool] = True

    class Params(_AlertParams):
        assignee: str | None = Field(..., max_length=200, description="a user name; null unassigns")

    def run(self, ctx: ActionContext, params: Params) -> ActionResult:
        if params.assignee is None:
            return _change(ctx, params, unassign=True)
        return _change(ctx, params, assignee=params.assignee)


@register
class Comment(Action["Comment.Params"]):
    """Not idempotent: run again after a crash, it would add the comment twice."""

    name: ClassVar[str] = "alert.comment"

    class Params(_AlertParams):
        text: str = Field(min_length=1, max_length=4000)

    def run(self, ctx: ActionContext, params: Params) -> ActionResult:
        about, doc = _target(ctx, params)
        if ctx.dry_run:
            return ActionResult({"alert_id": doc.id, "result": "would comment", "text": params.text})
        add_comment(ctx.store, alert_id=doc.id, scope=about.scope, actor=about.actor, text=params.text)
        return ActionResult({"alert_id": doc.id, "result": "commented", "text": params.text}, True)


__all__ = ["Assign", "Comment", "SetLevel", "SetStatus", "Tag"]
