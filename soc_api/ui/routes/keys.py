"""API keys for admins: the list (status, expiry, last use), creating one (shown once), revoking.

The same service as ``/api/apikeys``, the same scoping: an agency admin sees and manages the keys
of their agencies, a province admin every key.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from soc_api.deps import CurrentPrincipal, StoreDep, TenantScope
from soc_api.routes.apikeys import caller_of, create_in_scope, public_keys
from soc_api.schemas import ApiKeyCreate
from soc_api.services import apikeys
from soc_api.ui.forms import FormDep
from soc_api.ui.render import render
from soc_core.auth import KEY_ROLES, PROVINCE
from soc_core.errors import InvalidInput
from soc_core.store import Store

router = APIRouter(prefix="/ui/keys", include_in_schema=False)

PAGE_SIZE = 100


def _tenants(store: Store, scope: tuple[str, ...] | None) -> list[str]:
    if scope is not None:
        return list(scope)
    return [PROVINCE, *sorted(doc.id for doc in store.list_docs("tenants", size=1000).items)]


def _context(store: Store, scope: tuple[str, ...] | None, cursor: str | None = None) -> dict[str, Any]:
    page = apikeys.list_keys(store, scope=scope, size=PAGE_SIZE, cursor=cursor)
    return {
        "keys": public_keys(store, page.items),
        "next_cursor": page.next_cursor,
        "first_page": not cursor,
        "tenants": _tenants(store, scope),
        "roles": KEY_ROLES,
        "created": None,
        "error": "",
        "detail": "",
        "notice": "",
    }


@router.get("", response_class=HTMLResponse)
def key_list(
    request: Request,
    store: StoreDep,
    scope: TenantScope,
    cursor: Annotated[str, Query(max_length=2000)] = "",
) -> HTMLResponse:
    return render(request, "keys.html", **_context(store, scope, cursor or None))


@router.post("", response_class=HTMLResponse)
def create_key(
    request: Request, form: FormDep, store: StoreDep, scope: TenantScope, principal: CurrentPrincipal
) -> HTMLResponse:
    """Answers with the keys panel re-rendered, the new key shown there once."""
    context = _context(store, scope)
    try:
        body = ApiKeyCreate(
            name=form.get("name"),
            tenant=form.get("tenant"),
            role=form.get("role") or "analyst",
            owner=form.get("owner") or principal.id,
            expires_days=int(form.get("expires_days")) if form.get("expires_days") else None,
            sensor_id=form.get("sensor_id") or None,
        )
        doc, key = create_in_scope(store, body, scope, caller_of(request, principal))
    except (ValidationError, ValueError):
        return render(request, "_keys_body.html", status_code=422, **{**context, "error": "keys.invalid"})
    except InvalidInput as exc:
        return render(
            request, "_keys_body.html", status_code=422, **{**context, "error": "keys.refused", "detail": exc.render()}
        )
    return render(request, "_keys_body.html", **{**_context(store, scope), "created": {"id": doc.id, "key": key}})


@router.post("/{key_id}/revoke", response_class=HTMLResponse)
def revoke_key(
    key_id: Annotated[str, Path(max_length=64)],
    request: Request,
    store: StoreDep,
    scope: TenantScope,
    principal: CurrentPrincipal,
) -> HTMLResponse:
    apikeys.revoke_key(store, key_id, scope=scope, caller=caller_of(request, principal))
    return render(request, "_keys_body.html", **{**_context(store, scope), "notice": "keys.revoked"})


__all__ = ["router"]
