"""The alert queue and alert detail with triage actions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from soc_api.deps import CurrentPrincipal, StoreDep, TenantScope
from soc_api.routes.alerts import actor_of, to_public
from soc_api.schemas import AlertUpdate, CommentCreate
from soc_api.ui.forms import FormDep
from soc_api.ui.render import render
from soc_core.alert_status import ALERT_STATUSES
from soc_core.errors import Conflict, InvalidInput
from soc_core.store import Doc, Store
from workflow import alerts

router = APIRouter(prefix="/ui/alerts", include_in_schema=False)

LEVELS = ("critical", "high", "medium", "low", "informational")
PAGE_SIZE = 50
COUNT_CAP = 10_000  # the status counts scan at most this many alerts
ENTITY_COLUMNS = ("source.ip", "user.name", "host.name")


def _checked(values: list[str], allowed: tuple[str, ...], what: str) -> list[str]:
    chosen = [v for v in values if v]
    unknown = sorted(set(chosen) - set(allowed))
    if unknown:
        raise InvalidInput(f"unknown {what} {unknown[0]!r}", hint=f"use one of {', '.join(allowed)}")
    return chosen


def status_counts(
    store: Store, tenants: tuple[str, ...] | None, filters: dict[str, Any]
) -> tuple[dict[str, int], bool]:
    """Alerts per status under the other filters; ``True`` when the scan hit the cap."""
    counts: dict[str, int] = dict.fromkeys(ALERT_STATUSES, 0)
    seen = 0
    cursor = None
    while seen < COUNT_CAP:
        page = store.list_docs("alerts", tenants=tenants, filters=filters, sort="last_seen", size=1000, cursor=cursor)
        for doc in page.items:
            status = str(doc.body.get("status", "new"))
            counts[status] = counts.get(status, 0) + 1
        seen += len(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return counts, False
    return counts, True


@router.get("", response_class=HTMLResponse)
def queue(
    request: Request,
    store: StoreDep,
    scope: TenantScope,
    status: Annotated[list[str], Query(max_length=20)] = [],  # noqa: B006 - FastAPI copies defaults
    level: Annotated[list[str], Query(max_length=20)] = [],  # noqa: B006
    rule_id: Annotated[str, Query(max_length=200)] = "",
    assignee: Annotated[str, Query(max_length=100)] = "",
    cursor: Annotated[str, Query(max_length=2000)] = "",
) -> HTMLResponse:
    statuses = _checked(status, ALERT_STATUSES, "status")
    levels = _checked(level, LEVELS, "level")
    filters: dict[str, Any] = {}
    if levels:
        filters["rule.level"] = levels
    if rule_id.strip():
        filters["rule.id"] = rule_id.strip()
    if assignee.strip():
        filters["assignee"] = assignee.strip()
    counts, capped = status_counts(store, scope, filters)
    if statuses:
        filters["status"] = statuses
    page = store.list_docs(
        "alerts", tenants=scope, filters=filters, sort="last_seen", size=PAGE_SIZE, cursor=cursor or None
    )
    params = {"status": statuses, "level": levels, "rule_id": rule_id.strip(), "assignee": assignee.strip()}
    return render(
        request,
        "alerts.html",
        alerts=[to_public(doc) for doc in page.items],
        next_cursor=page.next_cursor,
        first_page=not cursor,
        params=params,
        counts=counts,
        counts_capped=capped,
        statuses=ALERT_STATUSES,
        levels=LEVELS,
        show_tenant=scope is None or len(scope) > 1,
        entity_columns=ENTITY_COLUMNS,
    )


def _detail_context(store: Store, doc: Doc) -> dict[str, Any]:
    tenant = str(doc.body.get("tenant"))
    events = store.get_events(list(doc.body.get("event_ids") or [])[:100], tenants=(tenant,))
    return {
        "alert": to_public(doc),
        "events": events,
        "comments": doc.body.get("comments") or [],
        "timeline": doc.body.get("timeline") or [],  # playbook runs' entries (playbooks.records)
    }


@router.get("/{alert_id}", response_class=HTMLResponse)
def detail(alert_id: str, request: Request, store: StoreDep, scope: TenantScope) -> HTMLResponse:
    doc = alerts.visible_alert(store, alert_id, scope)
    return render(request, "alert.html", statuses=ALERT_STATUSES, **_detail_context(store, doc))


def _triage(request: Request, doc: Doc, *, message: str = "", error: str = "", status: int = 200) -> HTMLResponse:
    return render(
        request,
        "_triage.html",
        status_code=status,
        alert=to_public(doc),
        statuses=ALERT_STATUSES,
        message=message,
        error=error,
    )


@router.post("/{alert_id}", response_class=HTMLResponse)
def triage(
    alert_id: str, request: Request, form: FormDep, store: StoreDep, scope: TenantScope, principal: CurrentPrincipal
) -> HTMLResponse:
    """One triage action from the panel; answers with the panel re-rendered (fresh version)."""
    action = form.get("action")
    value = form.get("value")
    change: dict[str, Any] = {"version": form.get("version")}
    if action == "status":
        change["status"] = value
    elif action == "assign":
        change["assignee"] = value or principal.id
    elif action == "unassign":
        change["unassign"] = True
    elif action == "tag":
        change["add_tags"] = [value]
    elif action == "untag":
        change["remove_tags"] = [value]
    else:
        raise InvalidInput(f"unknown action {action!r}")
    current = alerts.visible_alert(store, alert_id, scope)  # 404 before anything else
    try:
        update = AlertUpdate(**change)
    except ValidationError:
        return _triage(request, current, error="triage.invalid", status=422)
    try:
        doc = alerts.update_alert(
            store,
            alert_id=alert_id,
            version=update.version,
            scope=scope,
            actor=actor_of(request, principal),
            status=update.status,
            assignee=update.assignee,
            unassign=update.unassign,
            add_tags=update.add_tags,
            remove_tags=update.remove_tags,
        )
    except Conflict:
        fresh = alerts.visible_alert(store, alert_id, scope)
        return _triage(request, fresh, error="triage.conflict", status=409)
    except alerts.WorkflowError:
        return _triage(request, current, error="triage.refused", status=422)
    return _triage(request, doc, message="triage.saved")


@router.post("/{alert_id}/comments", response_class=HTMLResponse)
def comment(
    alert_id: str, request: Request, form: FormDep, store: StoreDep, scope: TenantScope, principal: CurrentPrincipal
) -> HTMLResponse:
    try:
        text = CommentCreate(text=form.get("text")).text
    except ValidationError:
        doc = alerts.visible_alert(store, alert_id, scope)
        return render(
            request,
            "_comments.html",
            status_code=422,
            alert=to_public(doc),
            comments=doc.body.get("comments") or [],
            error="comment.invalid",
        )
    doc = alerts.add_comment(store, alert_id=alert_id, scope=scope, actor=actor_of(request, principal), text=text)
    return render(request, "_comments.html", alert=to_public(doc), comments=doc.body.get("comments") or [], error="")


__all__ = ["LEVELS", "router", "status_counts"]
