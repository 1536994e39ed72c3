"""The audit trail, for admins: read-only (no route edits or deletes records)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from soc_api.deps import StoreDep, TenantScope
from soc_api.errors import ApiProblem
from soc_api.schemas import AuditPage, AuditRecord, AuditVerification
from workflow import audit

router = APIRouter(prefix="/api/audit", tags=["audit"])


@router.get("", response_model=AuditPage)
def list_audit(
    store: StoreDep,
    scope: TenantScope,
    actor: Annotated[str | None, Query(max_length=100)] = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    size: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> AuditPage:
    """Newest first. Agency admins see their agency's records; province admins see all."""
    filters: dict[str, object] = {}
    if actor:
        filters["actor"] = actor
    if action:
        filters["action"] = action
    page = store.list_docs("audit", tenants=scope, filters=filters, sort="seq", size=size, cursor=cursor)
    return AuditPage(items=[AuditRecord(**d.body) for d in page.items], next_cursor=page.next_cursor)


@router.get("/verify", response_model=AuditVerification)
def verify_audit(store: StoreDep, scope: TenantScope) -> AuditVerification:
    """Check the whole trail: every record's seal and link, and the head against the anchors
    kept outside the store. Province-wide admins only: it reads every agency's records."""
    if scope is not None:
        raise ApiProblem(403, "Forbidden", "only province-wide admins may verify the whole audit trail")
    return AuditVerification(**audit.verify_chain(store).as_dict())
