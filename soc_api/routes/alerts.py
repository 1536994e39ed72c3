"""Alerts: the analysts' queue."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from soc_api.deps import StoreDep, TenantScope
from soc_api.schemas import AlertDetail, AlertPage, AlertPublic
from soc_core.errors import NotFound
from soc_core.store import Doc

router = APIRouter(prefix="/api/alerts", tags=["alerts"])

Status = Literal["new", "acknowledged", "in_progress", "resolved", "false_positive", "benign", "duplicate"]
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
        "tags": body.get("rule.tags") or [],
        "count": body.get("count", 1),
        "first_seen": body.get("first_seen"),
        "last_seen": body.get("last_seen"),
        "entities": body.get("entities") or {},
        "event_ids": body.get("event_ids") or [],
        "created_at": body.get("created_at"),
    }


@router.get("", response_model=AlertPage)
def list_alerts(
    store: StoreDep,
    scope: TenantScope,
    status: Annotated[list[Status] | None, Query()] = None,
    level: Annotated[list[Level] | None, Query()] = None,
    rule_id: Annotated[str | None, Query(max_length=200)] = None,
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
    page = store.list_docs("alerts", tenants=tenants, filters=filters, sort="last_seen", size=size, cursor=cursor)
    return AlertPage(items=[AlertPublic(**to_public(d)) for d in page.items], next_cursor=page.next_cursor)


@router.get("/{alert_id}", response_model=AlertDetail)
def get_alert(alert_id: str, store: StoreDep, scope: TenantScope) -> AlertDetail:
    doc = store.get_doc("alerts", alert_id)
    tenant = doc.body.get("tenant")
    if scope is not None and tenant not in scope:
        raise NotFound("no such alert")  # another agency's alert does not exist for this caller
    events = store.get_events(list(doc.body.get("event_ids") or [])[:100], tenants=(str(tenant),))
    return AlertDetail(**to_public(doc), events=events)
