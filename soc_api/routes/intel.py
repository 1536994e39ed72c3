"""Threat-intel lists: upload (the file as the body), list, delete.

A list belongs to one agency or to the whole province (``*``). Everyone with ``intel:read`` sees
their agencies' lists and the province-wide ones; an agency's admins upload and delete their
agency's lists, and only a province admin touches ``*``. Another agency's list answers 404.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from intel import lists
from intel.indicators import PROVINCE_WIDE
from intel.parsers import FORMATS, detect_format, parse_file
from soc_api.client import client_address
from soc_api.deps import CurrentPrincipal, StoreDep, TenantScope
from soc_api.errors import ApiProblem
from soc_api.services import audit
from soc_core.errors import InvalidInput, NotVisible, ParseError
from soc_core.store import Store

router = APIRouter(prefix="/api/intel", tags=["intel"])
SUFFIX = {"csv": ".csv", "stix": ".json", "misp": ".json"}


class IntelList(BaseModel):
    id: str
    tenant: str
    name: str
    count: int = 0
    counts: dict[str, int] = {}
    format: str = ""
    source: str = ""
    created_at: str | None = None
    updated_at: str | None = None


class IntelLists(BaseModel):
    items: list[IntelList]


class ImportResult(BaseModel):
    tenant: str
    name: str
    loaded: int
    updated: int
    removed: int
    duplicates: int
    skipped: int
    total: int
    problems: list[str]


def public(body: dict[str, Any]) -> IntelList:
    return IntelList(**{key: body[key] for key in IntelList.model_fields if key in body})


def check_admin_scope(tenant: str, scope: tuple[str, ...] | None) -> None:
    """Uploads and deletes: an agency's admins for that agency, a province admin for any and ``*``."""
    if scope is None:
        return
    if tenant == PROVINCE_WIDE:
        raise ApiProblem(403, "Forbidden", "only a province admin changes province-wide (*) lists")
    if tenant not in scope:
        raise NotVisible("no such agency", target=f"intel/{tenant}", owner=tenant)


def import_text(
    store: Store,
    data: bytes,
    *,
    tenant: str,
    name: str,
    fmt: str | None,
    value_type: str | None,
    source: str,
    actor: str,
    request_id: str | None,
    source_ip: str | None,
) -> ImportResult:
    """Parse an uploaded list (a file's bytes) and store it; audited. Shared with the UI."""
    if not data.strip():
        raise InvalidInput("the upload is empty", hint="send the list's file as the request body")
    if fmt is not None and fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    guess = fmt or ("misp" if data.lstrip()[:1] in (b"{", b"[") else "csv")
    with tempfile.TemporaryDirectory(prefix="intel-upload-") as folder:
        path = Path(folder) / f"{Path(source).stem or 'upload'}{SUFFIX[guess]}"
        path.write_bytes(data)
        try:
            chosen = fmt or detect_format(path)
            parsed = parse_file(path, chosen, value_type=value_type)
        except ParseError as exc:  # named by the upload, not the server's temporary file
            where = (exc.where or "").replace(str(path), source) or source
            raise ParseError(exc.message, where=where, hint=f"give format= one of {', '.join(FORMATS)}") from None
    parsed.skipped = [replace(p, where=p.where.replace(str(path), source)) for p in parsed.skipped]
    report = lists.import_list(store, parsed, tenant=tenant, name=name, fmt=chosen, source=source, actor=actor)
    summary = report.to_dict()
    audit.record(
        store,
        actor=actor,
        action="intel.import",
        tenant=report.tenant,
        target=f"intel/{lists.list_id(report.tenant, report.name)}",
        after=summary,
        request_id=request_id,
        source_ip=source_ip,
    )
    return ImportResult(
        **{key: value for key, value in summary.items() if key != "list"},
        name=report.name,
        problems=[problem.render() for problem in report.skipped[:100]],
    )


def delete(store: Store, *, tenant: str, name: str, actor: str, request_id: str | None, source_ip: str | None) -> None:
    lists.delete_list(store, tenant=tenant, name=name)
    audit.record(
        store,
        actor=actor,
        action="intel.delete",
        tenant=tenant,
        target=f"intel/{lists.list_id(tenant, name)}",
        request_id=request_id,
        source_ip=source_ip,
    )


@router.get("/lists", response_model=IntelLists)
def list_lists(store: StoreDep, scope: TenantScope) -> IntelLists:
    """The caller's agencies' lists and the province-wide ones."""
    return IntelLists(items=[public(body) for body in lists.lists(store, scope)])


@router.post("/lists", response_model=ImportResult, status_code=201)
async def upload_list(
    request: Request,
    store: StoreDep,
    scope: TenantScope,
    principal: CurrentPrincipal,
    tenant: Annotated[str, Query(min_length=1, max_length=40, description="An agency, or * for the province")],
    name: Annotated[str, Query(min_length=1, max_length=100, description="The list's name")],
    format: Annotated[str | None, Query(max_length=10, description="misp, stix or csv (default: detected)")] = None,
    type: Annotated[str | None, Query(max_length=10, description="A CSV of bare values: their type")] = None,
) -> ImportResult:
    """Create or replace a list from the body (a MISP event JSON, a STIX 2.1 bundle or a CSV),
    at most ``api.limits.intel_bytes``."""
    check_admin_scope(tenant, scope)
    data = await request.body()
    return import_text(
        store,
        data,
        tenant=tenant,
        name=name,
        fmt=format,
        value_type=type,
        source=name,
        actor=principal.id,
        request_id=getattr(request.state, "request_id", None),
        source_ip=client_address(request),
    )


@router.delete("/lists/{tenant}/{name}", status_code=204)
def delete_list(
    tenant: str, name: str, request: Request, store: StoreDep, scope: TenantScope, principal: CurrentPrincipal
) -> None:
    check_admin_scope(tenant, scope)
    delete(
        store,
        tenant=tenant,
        name=name,
        actor=principal.id,
        request_id=getattr(request.state, "request_id", None),
        source_ip=client_address(request),
    )


__all__ = ["check_admin_scope", "delete", "import_text", "router"]
