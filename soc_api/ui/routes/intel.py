"""Threat-intel lists in the UI: the lists an analyst's agencies see (theirs and province-wide);
for admins, pasting a list to import (CSV, a MISP event or a STIX bundle, as big as a form
may be — larger files go through ``soc intel import`` or ``POST /api/intel/lists``) and deleting.

The same services and checks as ``/api/intel/lists``, the same audit records.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse

from intel import lists
from intel.indicators import PROVINCE_WIDE
from intel.parsers import format_named
from soc_api.deps import CurrentPrincipal, StoreDep, TenantScope
from soc_api.routes.alerts import actor_of
from soc_api.routes.intel import check_writable, delete_audited, import_upload
from soc_api.ui.forms import FormDep
from soc_api.ui.render import render
from soc_core.errors import InvalidInput, ParseError
from soc_core.store import Store
from workflow.principals import Principal

router = APIRouter(prefix="/ui/intel", include_in_schema=False)
FORMATS = ("csv", "misp", "stix")
VALUE_TYPES = ("ip", "domain", "url", "hash")
SHOWN_PROBLEMS = 50


def _context(store: Store, principal: Principal) -> dict[str, Any]:
    """The page's data: lists by the caller's ``intel:read`` agencies, the form and delete
    buttons by its ``intel:write`` ones (they may differ, membership by membership)."""
    writable = principal.tenants_for("intel:write")
    return {
        "lists": lists.lists(store, principal.tenants_for("intel:read")),
        "tenants": [PROVINCE_WIDE, *sorted(doc.id for doc in store.list_docs("tenants", size=1000).items)]
        if writable is None
        else list(writable),
        "writable": writable,
        "formats": FORMATS,
        "value_types": VALUE_TYPES,
        "report": None,
        "problems": [],
        "error": "",
        "notice": "",
    }


@router.get("", response_class=HTMLResponse)
def intel_page(request: Request, store: StoreDep, principal: CurrentPrincipal) -> HTMLResponse:
    return render(request, "intel.html", **_context(store, principal))


@router.post("", response_class=HTMLResponse)
def import_list(
    request: Request, form: FormDep, store: StoreDep, scope: TenantScope, principal: CurrentPrincipal
) -> HTMLResponse:
    """Answers with the panel re-rendered: the import's counts and skipped lines."""
    tenant, name, fmt = form.get("tenant"), form.get("name"), form.get("format")
    value_type = form.get("type") or None
    if fmt not in FORMATS or (value_type is not None and value_type not in VALUE_TYPES) or not form.get("content"):
        return render(
            request, "_intel_body.html", status_code=422, **{**_context(store, principal), "error": "intel.invalid"}
        )
    check_writable(tenant, scope)
    try:
        report = import_upload(
            store,
            form.get("content").encode(),
            tenant=tenant,
            name=name,
            fmt=format_named(fmt),
            value_type=value_type,
            actor=actor_of(request, principal),
        )
    except (InvalidInput, ParseError) as exc:
        context = {**_context(store, principal), "error": "intel.refused", "detail": exc.render()}
        return render(request, "_intel_body.html", status_code=422, **context)
    return render(
        request,
        "_intel_body.html",
        **{**_context(store, principal), "report": report.to_dict(), "problems": report.skipped[:SHOWN_PROBLEMS]},
    )


@router.post("/{tenant}/{name}/delete", response_class=HTMLResponse)
def delete_list(
    request: Request,
    store: StoreDep,
    scope: TenantScope,
    principal: CurrentPrincipal,
    tenant: Annotated[str, Path(min_length=1, max_length=40)],
    name: Annotated[str, Path(min_length=1, max_length=64)],
) -> HTMLResponse:
    check_writable(tenant, scope)
    delete_audited(store, tenant=tenant, name=name, actor=actor_of(request, principal))
    return render(request, "_intel_body.html", **{**_context(store, principal), "notice": "intel.deleted"})


__all__ = ["router"]
