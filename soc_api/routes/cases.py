"""Cases: investigations over one or many alerts."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from soc_api.deps import CurrentPrincipal, StoreDep, TenantScope
from soc_api.routes.alerts import actor_of
from soc_api.schemas import CaseCreate, CasePage, CasePublic, CaseUpdate
from soc_core.store import Doc
from workflow import cases

router = APIRouter(prefix="/api/cases", tags=["cases"])


def to_public(doc: Doc) -> CasePublic:
    return CasePublic(id=doc.id, version=doc.version, **doc.body)


@router.post("", response_model=CasePublic, status_code=201)
def create_case(
    body: CaseCreate, request: Request, store: StoreDep, scope: TenantScope, principal: CurrentPrincipal
) -> CasePublic:
    """Open a case from one or many alerts of one agency (promotes them)."""
    doc = cases.create_case(
        store,
        title=body.title,
        description=body.description,
        severity=body.severity,
        alert_ids=body.alert_ids,
        scope=scope,
        actor=actor_of(request, principal),
    )
    return to_public(doc)


@router.get("", response_model=CasePage)
def list_cases(
    store: StoreDep,
    scope: TenantScope,
    status: Annotated[list[Literal["open", "in_progress", "closed"]] | None, Query()] = None,
    assignee: Annotated[str | None, Query(max_length=100)] = None,
    size: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> CasePage:
    filters: dict[str, object] = {}
    if status:
        filters["status"] = list(status)
    if assignee:
        filters["assignee"] = assignee
    page = store.list_docs("cases", tenants=scope, filters=filters, sort="updated_at", size=size, cursor=cursor)
    return CasePage(items=[to_public(d) for d in page.items], next_cursor=page.next_cursor)


@router.get("/{case_id}", response_model=CasePublic)
def get_case(case_id: str, store: StoreDep, scope: TenantScope) -> CasePublic:
    return to_public(cases.visible_case(store, case_id, scope))


@router.patch("/{case_id}", response_model=CasePublic)
def update_case(
    case_id: str, body: CaseUpdate, request: Request, store: StoreDep, scope: TenantScope, principal: CurrentPrincipal
) -> CasePublic:
    doc = cases.update_case(
        store,
        case_id=case_id,
        version=body.version,
        scope=scope,
        actor=actor_of(request, principal),
        status=body.status,
        assignee=body.assignee,
        classification=body.classification,
        add_task=body.add_task,
        complete_task=body.complete_task,
        comment=body.comment,
    )
    return to_public(doc)
