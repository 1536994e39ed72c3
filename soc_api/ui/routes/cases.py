"""Cases: the list, opening one from selected alerts, and the case page."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from soc_api.deps import CurrentPrincipal, StoreDep, TenantScope
from soc_api.routes.alerts import actor_of
from soc_api.schemas import CaseCreate, CaseUpdate
from soc_api.ui.forms import FormDep
from soc_api.ui.render import render
from soc_api.ui.routes.auth import redirect
from soc_core.errors import Conflict, InvalidInput, NotFound
from soc_core.store import Doc, Store
from workflow import alerts, cases

router = APIRouter(prefix="/ui/cases", include_in_schema=False)

SEVERITIES = ("low", "medium", "high", "critical")
PAGE_SIZE = 50
# hunt field for each observable type, so a case's observables pivot into the events
OBSERVABLE_PIVOT = {"ip": "source.ip", "user": "user.name", "host": "host.name", "domain": "url.domain"}


@router.get("", response_class=HTMLResponse)
def case_list(
    request: Request,
    store: StoreDep,
    scope: TenantScope,
    status: Annotated[str, Query(max_length=20)] = "",
    cursor: Annotated[str, Query(max_length=2000)] = "",
) -> HTMLResponse:
    filters: dict[str, Any] = {}
    if status:
        if status not in cases.CASE_STATUSES:
            raise InvalidInput(f"unknown case status {status!r}")
        filters["status"] = status
    page = store.list_docs(
        "cases", tenants=scope, filters=filters, sort="updated_at", size=PAGE_SIZE, cursor=cursor or None
    )
    return render(
        request,
        "cases.html",
        cases=[{"id": doc.id, **doc.body} for doc in page.items],
        next_cursor=page.next_cursor,
        status=status,
        case_statuses=cases.CASE_STATUSES,
        first_page=not cursor,
        show_tenant=scope is None or len(scope) > 1,
    )


@router.post("", response_model=None)
def open_case(
    request: Request, form: FormDep, store: StoreDep, scope: TenantScope, principal: CurrentPrincipal
) -> HTMLResponse | Any:
    alert_ids = form.getlist("alert_id")
    if not alert_ids:
        raise InvalidInput("select at least one alert")
    title = form.get("title")
    if not title:  # name it after the first alert's rule
        first = alerts.visible_alert(store, alert_ids[0], scope)
        title = str(first.body.get("rule.name") or "Case")[:300]
    try:
        create = CaseCreate(
            title=title,
            description=form.get("description"),
            severity=form.get("severity") or "medium",
            alert_ids=alert_ids,
        )
    except ValidationError as exc:
        raise InvalidInput("check the case title, severity and alerts") from exc
    doc = cases.create_case(
        store,
        title=create.title,
        description=create.description,
        severity=create.severity,
        alert_ids=create.alert_ids,
        scope=scope,
        actor=actor_of(request, principal),
    )
    return redirect(request, f"/ui/cases/{doc.id}")


def _case_context(store: Store, doc: Doc, scope: tuple[str, ...] | None) -> dict[str, Any]:
    linked = []
    for alert_id in (doc.body.get("alert_ids") or [])[:200]:
        try:
            linked.append(alerts.visible_alert(store, alert_id, scope))
        except NotFound:
            continue
    return {
        "case": {"id": doc.id, "version": doc.version, **doc.body},
        "linked_alerts": [{"id": a.id, **a.body} for a in linked],
        "observable_pivot": OBSERVABLE_PIVOT,
        "case_statuses": cases.CASE_STATUSES,
        "classifications": cases.CLASSIFICATIONS,
    }


@router.get("/{case_id}", response_class=HTMLResponse)
def case_page(case_id: str, request: Request, store: StoreDep, scope: TenantScope) -> HTMLResponse:
    doc = cases.visible_case(store, case_id, scope)
    return render(request, "case.html", **_case_context(store, doc, scope))


@router.post("/{case_id}", response_class=HTMLResponse)
def update_case(
    case_id: str, request: Request, form: FormDep, store: StoreDep, scope: TenantScope, principal: CurrentPrincipal
) -> HTMLResponse:
    """Status, classification, assignee, tasks, comments; answers with the case body re-rendered."""
    fields = ("status", "assignee", "classification", "add_task", "complete_task", "comment")
    current = cases.visible_case(store, case_id, scope)
    # the form sends every field; only what differs is a change (and a timeline entry)
    change = {name: form.get(name) for name in fields if form.get(name) and form.get(name) != current.body.get(name)}
    error, status, doc = "", 200, current
    try:
        update = CaseUpdate(version=form.get("version"), **change)
        doc = cases.update_case(
            store, case_id=case_id, scope=scope, actor=actor_of(request, principal), **update.model_dump()
        )
    except ValidationError:
        error, status = "case.invalid", 422
    except Conflict:
        error, status, doc = "case.conflict", 409, cases.visible_case(store, case_id, scope)
    except alerts.WorkflowError:
        error, status = "case.refused", 422
    return render(request, "_case_body.html", status_code=status, error=error, **_case_context(store, doc, scope))


__all__ = ["router"]
