"""API keys for sensors and integrations: list, create (the key is shown once), revoke.

Admins only; an agency admin sees and manages the keys of their agencies, a province admin all
(and only a province admin the province-wide keys).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from soc_api.client import client_address
from soc_api.deps import CurrentPrincipal, StoreDep, TenantScope
from soc_api.errors import ApiProblem
from soc_api.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyPage, ApiKeyPublic
from soc_api.services import apikeys
from soc_core.auth import PROVINCE
from soc_core.errors import NotVisible
from soc_core.events import format_timestamp
from soc_core.store import Doc, Store
from workflow.principals import Principal

router = APIRouter(prefix="/api/apikeys", tags=["apikeys"])


def to_public(doc: Doc, status: apikeys.KeyStatus) -> ApiKeyPublic:
    body = doc.body
    return ApiKeyPublic(
        id=doc.id,
        name=body["name"],
        tenant=body["tenant"],
        role=body["role"],
        owner=body.get("owner") or None,
        sensor_id=body.get("sensor_id"),
        status=status,
        created_at=body["created_at"],
        created_by=body.get("created_by"),
        expires_at=format_timestamp(apikeys.expires_at(body)),
        revoked_at=body.get("revoked_at"),
        revoked_by=body.get("revoked_by"),
        last_used_at=body.get("last_used_at"),
        last_used_ip=body.get("last_used_ip"),
    )


def public_keys(store: Store, docs: list[Doc]) -> list[ApiKeyPublic]:
    statuses = apikeys.statuses(store, docs)
    return [to_public(doc, statuses[doc.id]) for doc in docs]


def caller_of(request: Request, principal: Principal) -> apikeys.Caller:
    return apikeys.Caller(
        actor=principal.id,
        request_id=getattr(request.state, "request_id", None),
        source_ip=client_address(request),
    )


def check_tenant_in_scope(tenant: str, scope: tuple[str, ...] | None) -> None:
    if scope is None:
        return
    if tenant == PROVINCE:
        raise ApiProblem(403, "Forbidden", "only a province-wide admin makes province-wide keys")
    if tenant not in scope:
        raise NotVisible("no such tenant", target=f"tenants/{tenant}", owner=tenant)


@router.get("", response_model=ApiKeyPage)
def list_keys(
    store: StoreDep,
    scope: TenantScope,
    owner: Annotated[str | None, Query(max_length=100)] = None,
    size: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> ApiKeyPage:
    """Newest first, with status and last use; never the keys themselves."""
    page = apikeys.list_keys(store, scope=scope, owner=owner, size=size, cursor=cursor)
    return ApiKeyPage(items=public_keys(store, page.items), next_cursor=page.next_cursor)


def create_in_scope(
    store: Store, body: ApiKeyCreate, scope: tuple[str, ...] | None, caller: apikeys.Caller
) -> tuple[Doc, str]:
    """Create the key ``body`` asks for, for an agency in the caller's scope (API and UI alike)."""
    check_tenant_in_scope(body.tenant, scope)
    return apikeys.create_api_key(
        store,
        name=body.name,
        tenant=body.tenant,
        role=body.role,
        owner=body.owner,
        expires_days=body.expires_days,
        sensor_id=body.sensor_id,
        caller=caller,
    )


@router.post("", response_model=ApiKeyCreated, status_code=201)
def create_key(
    body: ApiKeyCreate, request: Request, store: StoreDep, scope: TenantScope, principal: CurrentPrincipal
) -> ApiKeyCreated:
    """A new key owned by a person; it never holds more than its owner does at each request."""
    doc, key = create_in_scope(store, body, scope, caller_of(request, principal))
    return ApiKeyCreated(**public_keys(store, [doc])[0].model_dump(), api_key=key)


@router.post("/{key_id}/revoke", response_model=ApiKeyPublic)
def revoke_key(
    key_id: Annotated[str, Path(max_length=64)],
    request: Request,
    store: StoreDep,
    scope: TenantScope,
    principal: CurrentPrincipal,
) -> ApiKeyPublic:
    """Revoked at once: the next request with the key is refused (401)."""
    doc = apikeys.revoke_key(store, key_id, scope=scope, caller=caller_of(request, principal))
    return public_keys(store, [doc])[0]
