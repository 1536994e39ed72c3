"""Alerts: the analysts' queue."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from soc_api.client import client_address
from soc_api.deps import CurrentPrincipal, StoreDep, TenantScope
from soc_api.errors import record_cross_tenant
from soc_api.schemas import (
    AlertDetail,
    AlertPage,
    AlertPublic,
    AlertUpdate,
    BulkAlertUpdate,
    BulkItemResult,
    BulkResult,
    CommentCreate,
)
from soc_core.alert_status import AlertStatus
from soc_core.errors import Conflict, NotFound, NotVisible
from soc_core.store import Doc, Store
from workflow import alerts
from workflow.principals import Actor, Principal

router = APIRouter(prefix="/api/alerts", tags=["alerts"])

Level = Literal["informational", "low", "medium", "high", "critical"]


def to_public(doc: Doc) -> dict[str, Any]:
    body = doc.body
    return {
        "id": doc.id,
        "version": doc.version,
        "tenant": body.get("tenant", ""),
        "status": body.get("status", "new"),
        "rule_id": body.get("rule.id"),
        "rule_name": body.get("rule.name"),
        "level": body.get("rule.level"),
        "attack": body.get("rule.tags") or [],
        "tags": body.get("tags") or [],
        "assignee": body.get("assignee"),
        "acknowledged_at": body.get("acknowledged_at"),
        "resolved_at": body.get("resolved_at"),
        "case_id": body.get("case_id"),
        "count": body.get("count", 1),
        "first_seen": body.get("first_seen"),
        "last_seen": body.get("last_seen"),
        "entities": body.get("entities") or {},
        "event_ids": body.get("event_ids") or [],
        "created_at": body.get("created_at"),
        "classification": body.get("classification"),
        "resolution_note": body.get("resolution_note"),
        "distinct": body.get("distinct") or {},
        "trigger": body.get("trigger") or {},
    }


@router.get("", response_model=AlertPage)
def list_alerts(
    store: StoreDep,
    scope: TenantScope,
    status: Annotated[list[AlertStatus] | None, Query()] = None,
    level: Annotated[list[Level] | None, Query()] = None,
    rule_id: Annotated[str | None, Query(max_length=200)] = None,
    assignee: Annotated[str | None, Query(max_length=100)] = None,
    tenant: Annotated[str | None, Query(max_length=40)] = None,
    size: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> AlertPage:
    tenants = scope
    if tenant is not None:
        if scope is not None and tenant not in scope:
            return AlertPage(items=[])
        tenants = (tenant,)
    filters: dict[str, Any] = {}
    if status:
        filters["status"] = list(status)
    if level:
        filters["rule.level"] = list(level)
    if rule_id:
        filters["rule.id"] = rule_id
    if assignee:
        filters["assignee"] = assignee
    page = store.list_docs("alerts", tenants=tenants, filters=filters, sort="last_seen", size=size, cursor=cursor)
    return AlertPage(items=[AlertPublic(**to_public(d)) for d in page.items], next_cursor=page.next_cursor)


@router.get("/{alert_id}", response_model=AlertDetail)
def get_alert(alert_id: str, store: StoreDep, scope: TenantScope) -> AlertDetail:
    doc = store.get_doc("alerts", alert_id)
    tenant = doc.body.get("tenant")
    if scope is not None and tenant not in scope:
        # another agency's alert does not exist for this caller
        raise NotVisible("no such alert", target=f"alerts/{alert_id}", owner=str(tenant))
    events = store.get_events(list(doc.body.get("event_ids") or [])[:100], tenants=(str(tenant),))
    return AlertDetail(**to_public(doc), events=events, comments=doc.body.get("comments") or [])


def actor_of(request: Request, principal: Principal) -> Actor:
    return Actor(
        principal=principal,
        request_id=getattr(request.state, "request_id", None),
        source_ip=client_address(request),
    )


@router.patch("/{alert_id}", response_model=AlertPublic)
def update_alert(
    alert_id: str, body: AlertUpdate, request: Request, store: StoreDep, scope: TenantScope, principal: CurrentPrincipal
) -> AlertPublic:
    doc = alerts.update_alert(
        store,
        alert_id=alert_id,
        version=body.version,
        scope=scope,
        actor=actor_of(request, principal),
        status=body.status,
        assignee=body.assignee,
        unassign=body.unassign,
        add_tags=body.add_tags,
        remove_tags=body.remove_tags,
        classification=body.classification,
        note=body.note,
    )
    return AlertPublic(**to_public(doc))


@router.post("/{alert_id}/comments", response_model=AlertDetail, status_code=201)
def comment(
    alert_id: str,
    body: CommentCreate,
    request: Request,
    store: StoreDep,
    scope: TenantScope,
    principal: CurrentPrincipal,
) -> AlertDetail:
    doc = alerts.add_comment(store, alert_id=alert_id, scope=scope, actor=actor_of(request, principal), text=body.text)
    return AlertDetail(**to_public(doc), comments=doc.body.get("comments") or [])


@router.post("/bulk", response_model=BulkResult)
def bulk_update(
    body: BulkAlertUpdate, request: Request, store: StoreDep, scope: TenantScope, principal: CurrentPrincipal
) -> BulkResult:
    """Apply one change to many alerts; each gets its own result (no all-or-nothing)."""
    return BulkResult(items=apply_bulk(request, store, scope, principal, body))


def apply_bulk(
    request: Request, store: Store, scope: tuple[str, ...] | None, principal: Principal, body: BulkAlertUpdate
) -> list[BulkItemResult]:
    """The bulk change, alert by alert on its current version (the API and the queue's bulk bar)."""
    results = []
    actor = actor_of(request, principal)
    for alert_id in dict.fromkeys(body.ids):
        try:
            current = alerts.visible_alert(store, alert_id, scope)
            alerts.update_alert(
                store,
                alert_id=alert_id,
                version=current.version,
                scope=scope,
                actor=actor,
                status=body.status,
                assignee=body.assignee,
                add_tags=body.add_tags,
                classification=body.classification,
                note=body.note,
            )
        except NotVisible as exc:
            record_cross_tenant(request, exc)
            results.append(BulkItemResult(id=alert_id, status="not_found"))
        except NotFound:
            results.append(BulkItemResult(id=alert_id, status="not_found"))
        except Conflict:
            results.append(BulkItemResult(id=alert_id, status="conflict", detail="changed meanwhile; retry"))
        except alerts.WorkflowError as exc:
            results.append(BulkItemResult(id=alert_id, status="refused", detail=exc.message))
        else:
            results.append(BulkItemResult(id=alert_id, status="updated"))
    return results
