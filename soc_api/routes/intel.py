"""Threat-intel lists: list, upload (create or update), delete.

Reading needs ``intel:read`` (analysts, managers, rule admins and admins see the lists of their
agencies and the province-wide ones); uploading and deleting need ``intel:write`` — an admin's
right: a list raises alerts in every engine and comes from outside feeds — in the list's agency,
and a province-wide (``*``) list a province-wide admin. The upload's
body is the file itself (a MISP event, a STIX bundle or a CSV list; ``api.limits.intel_bytes``),
with the format, agency and name in the query. Every change is audited.
"""

from __future__ import annotations

import tempfile
from pathlib import Path as FilePath
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from intel import lists
from intel.indicators import LIST_NAME, PROVINCE_WIDE
from intel.parsers import Format, Problem, parse_file
from soc_api.deps import CurrentPrincipal, StoreDep, TenantScope
from soc_api.errors import ApiProblem
from soc_api.routes.alerts import actor_of
from soc_api.schemas import SCOPE_PATTERN, IntelImportPublic, IntelListPage, IntelListPublic, IntelProblem
from soc_core.errors import NotVisible, ParseError
from soc_core.store import Store
from workflow.principals import Actor

router = APIRouter(prefix="/api/intel", tags=["intel"])
MAX_PROBLEMS = 500
SUFFIX = {"misp": ".json", "stix": ".json", "csv": ".csv"}
Scope = Annotated[
    str, Query(min_length=1, max_length=40, pattern=SCOPE_PATTERN, description="An agency id, or * for province-wide")
]
ListName = Annotated[str, Query(min_length=1, max_length=64, pattern=LIST_NAME.pattern)]


def check_writable(tenant: str, scope: tuple[str, ...] | None) -> None:
    if scope is None:
        return
    if tenant == PROVINCE_WIDE:
        raise ApiProblem(403, "Forbidden", "only a province-wide admin changes province-wide (*) lists")
    if tenant not in scope:
        raise NotVisible("no such agency", target=f"intel/{tenant}", owner=tenant)


@router.get("/lists", response_model=IntelListPage)
def list_lists(store: StoreDep, scope: TenantScope) -> IntelListPage:
    """The lists of the caller's agencies and the province-wide ones."""
    found = lists.lists(store, scope)
    return IntelListPage(items=[IntelListPublic.model_validate(item) for item in found])


def import_upload(
    store: Store, body: bytes, *, tenant: str, name: str, fmt: Format, value_type: str | None, actor: Actor
) -> lists.ImportReport:
    """Parse an uploaded file, create or update the list, audit it (the API's and the UI's path)."""
    with tempfile.TemporaryDirectory(prefix="canhgac-intel-") as directory:
        path = FilePath(directory) / f"upload{SUFFIX[fmt]}"
        path.write_bytes(body)
        try:
            parsed = parse_file(path, fmt, value_type=value_type)
        except ParseError as exc:
            raise ParseError(exc.message, where="upload", hint=exc.hint) from exc
        # name the upload, not the server's temporary file
        parsed.skipped = [Problem(p.where.replace(str(path), "upload"), p.reason) for p in parsed.skipped]
    report = lists.import_list(
        store, parsed, tenant=tenant, name=name, fmt=fmt, source="upload", actor=actor.principal.id
    )
    lists.record_change(
        store,
        action="intel.import",
        tenant=tenant,
        name=name,
        actor=actor.principal.id,
        after=report.to_dict(),
        request_id=actor.request_id,
        source_ip=actor.source_ip,
    )
    return report


def delete_audited(store: Store, *, tenant: str, name: str, actor: Actor) -> None:
    lists.delete_list(store, tenant=tenant, name=name)
    lists.record_change(
        store,
        action="intel.delete",
        tenant=tenant,
        name=name,
        actor=actor.principal.id,
        request_id=actor.request_id,
        source_ip=actor.source_ip,
    )


@router.post("/lists", response_model=IntelImportPublic, status_code=200)
async def upload_list(
    request: Request,
    store: StoreDep,
    scope: TenantScope,
    principal: CurrentPrincipal,
    tenant: Scope,
    name: ListName,
    fmt: Annotated[Literal["misp", "stix", "csv"], Query(alias="format")],
    value_type: Annotated[
        Literal["ip", "domain", "url", "md5", "sha1", "sha256", "hash"] | None, Query(alias="type")
    ] = None,
) -> IntelImportPublic:
    """Create the list, or replace its content; every skipped line or object with where and why."""
    check_writable(tenant, scope)
    body = await request.body()
    actor = actor_of(request, principal)
    report = await run_in_threadpool(
        import_upload, store, body, tenant=tenant, name=name, fmt=fmt, value_type=value_type, actor=actor
    )
    return IntelImportPublic(
        **report.to_dict(),
        problems=[IntelProblem(where=p.where, reason=p.reason) for p in report.skipped[:MAX_PROBLEMS]],
    )


@router.delete("/lists/{tenant}/{name}", status_code=204)
def delete_list(
    request: Request,
    store: StoreDep,
    scope: TenantScope,
    principal: CurrentPrincipal,
    tenant: Annotated[str, Path(min_length=1, max_length=40, pattern=SCOPE_PATTERN)],
    name: Annotated[str, Path(min_length=1, max_length=64, pattern=LIST_NAME.pattern)],
) -> Response:
    """Delete a list and its indicators; it stops matching at the engine's next reload."""
    check_writable(tenant, scope)
    delete_audited(store, tenant=tenant, name=name, actor=actor_of(request, principal))
    return Response(status_code=204)
