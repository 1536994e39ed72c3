"""Search action: run a hunt query over the run's agency's events (the one query builder,
:func:`soc_core.query.event_query`, with that agency as the only tenant) and attach the results
— event ids and a summary — to the run's case.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from playbooks.actions.base import Action, ActionContext, ActionError, ActionResult, register
from playbooks.records import subject
from soc_core.events import format_timestamp, utcnow
from soc_core.query import MAX_QUERY_LENGTH, event_query
from workflow.cases import attach_hunt, visible_case

SUMMARY_FIELDS = ("source.ip", "destination.ip", "user.name", "host.name", "event.action", "event.outcome")


def summarise(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Pure: first and last time and the top values of the fields analysts pivot on."""
    stamps = sorted(str(e["@timestamp"]) for e in events if e.get("@timestamp"))
    top: dict[str, list[list[Any]]] = {}
    for name in SUMMARY_FIELDS:
        counts = Counter(str(e[name]) for e in events if e.get(name) not in (None, ""))
        if counts:
            top[name] = [[value, count] for value, count in counts.most_common(5)]
    return {"first": stamps[0] if stamps else None, "last": stamps[-1] if stamps else None, "top": top}


@register
class Hunt(Action["Hunt.Params"]):
    name: ClassVar[str] = "search.hunt"
    idempotent: ClassVar[bool] = True  # reading; the case keeps one result per run step

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        query: str = Field(min_length=1, max_length=MAX_QUERY_LENGTH)
        hours: float = Field(24.0, gt=0, le=24 * 90, description="how far back from now")
        size: int = Field(100, ge=1, le=500)
        attach: bool = Field(True, description="keep the results on the run's case")

    def run(self, ctx: ActionContext, params: Params) -> ActionResult:
        about = subject(ctx.store, ctx.run_id, ctx.tenant)
        end = utcnow()
        query = event_query(
            tenants=about.scope,
            query=params.query,
            start=end - timedelta(hours=params.hours),
            end=end,
            size=params.size,
        )
        page = ctx.store.search_events(query)
        events = [dict(event) for event in page.items]
        output: dict[str, Any] = {
            "query": params.query,
            "count": len(events),
            "more": page.next_cursor is not None,
            "event_ids": [str(e.get("event.id")) for e in events if e.get("event.id")],
            "summary": summarise(events),
        }
        if not params.attach:
            return ActionResult(output)
        if not about.case_id and not ctx.dry_run:  # a dry run's case.open opened nothing
            raise ActionError(
                "the run's alert is in no case to attach the hunt to",
                hint="open one first with case.open, or attach: false",
            )
        output["case_id"] = about.case_id
        if ctx.dry_run or not about.case_id:
            if about.case_id:
                visible_case(ctx.store, about.case_id, about.scope)
            return ActionResult({**output, "result": "would attach"})
        hunt = {
            "key": f"{ctx.run_id}/{ctx.step_id}",
            "at": format_timestamp(end),
            "by": about.actor.principal.id,
            **{k: output[k] for k in ("query", "count", "more", "event_ids")},
            "details": output["summary"],  # free-form: stored unindexed (Elasticsearch)
        }
        attach_hunt(ctx.store, case_id=about.case_id, hunt=hunt, scope=about.scope, actor=about.actor)
        return ActionResult({**output, "result": "attached"}, True)


__all__ = ["Hunt", "summarise"]
