"""Stored weekly reports (:mod:`reports.stored`): generate one, list them, read one, download
one as PDF, HTML or JSON in Vietnamese or English.

Reading needs ``reports:read`` (analysts, managers, admins) in the report's agency; the
province's report (tenant ``*``) a province-wide membership. Generating needs ``reports:write``
(managers, admins) the same way, and is audited. Another agency's report is answered 404, as a
missing one; the province's report asked by an agency member too (it is not theirs to know of),
but generating it is a 403 that says why.

A downloaded HTML report carries its own Content-Security-Policy: its style sheet is inline and
its charts are ``data:`` images, and nothing else may load or run (no script, no network).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from reports import stored
from reports.render import CONTENT_TYPES, render
from soc_api.deps import CurrentPrincipal, SettingsDep, StoreDep, TenantScope
from soc_api.errors import ApiProblem
from soc_api.routes.alerts import actor_of
from soc_api.schemas import ReportPage, ReportPublic, ReportSummary, WeeklyReportRequest
from soc_core.errors import NotVisible
from soc_core.store.base import Doc
from workflow import audit

router = APIRouter(prefix="/api/reports", tags=["reports"])
ReportId = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^weekly-\d{4}-W\d{2}(-[a-z][a-z0-9_]{1,39})?$")]
# the report's own inline style and data: charts; no script, no fetch, no form, no framing by others
HTML_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox"
)


def summary(doc: Doc) -> ReportSummary:
    return ReportSummary.model_validate({**{k: v for k, v in doc.body.items() if k != "report"}, "id": doc.id})


@router.post("/weekly", response_model=ReportSummary, status_code=201)
async def generate_weekly(
    body: WeeklyReportRequest,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    scope: TenantScope,
    principal: CurrentPrincipal,
) -> ReportSummary:
    """Count the week for the agency (or the province, ``*``) and store it, replacing an
    earlier report of the same week and agency."""
    if scope is not None and body.tenant == stored.PROVINCE:
        raise ApiProblem(403, "Forbidden", "only province-wide managers and admins generate the province's report")
    if scope is not None and body.tenant not in scope:
        raise NotVisible("no such agency", target=f"reports/{body.tenant}", owner=body.tenant)
    actor = actor_of(request, principal)
    doc = await run_in_threadpool(
        stored.generate, store, settings, week=body.week, tenant=body.tenant, generated_by=principal.id
    )
    audit.record(
        store,
        actor=principal.id,
        action="report.generate",
        tenant=None if body.tenant == stored.PROVINCE else body.tenant,
        target=f"reports/{doc.id}",
        after={"week": body.week, "tenant": body.tenant, "generated_at": doc.body["generated_at"]},
        request_id=actor.request_id,
        source_ip=actor.source_ip,
    )
    return summary(doc)


@router.get("", response_model=ReportPage)
def list_reports(
    store: StoreDep,
    scope: TenantScope,
    week: Annotated[str | None, Query(pattern=r"^\d{4}-W\d{2}$")] = None,
    tenant: Annotated[str | None, Query(min_length=1, max_length=40)] = None,
    size: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> ReportPage:
    """The stored reports the caller may read, newest first."""
    page = stored.listing(store, scope, week=week, tenant=tenant, size=size, cursor=cursor)
    return ReportPage(items=[summary(doc) for doc in page.items], next_cursor=page.next_cursor)


@router.get("/{report_id}", response_model=ReportPublic)
def get_report(report_id: ReportId, store: StoreDep, scope: TenantScope) -> ReportPublic:
    """The stored report with its numbers (the JSON of the weekly report)."""
    doc = stored.get(store, report_id, scope)
    return ReportPublic.model_validate({**summary(doc).model_dump(), "report": stored.load(doc)})


@router.get(
    "/{report_id}/download",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}, "text/html": {}, "application/json": {}}}},
)
async def download_report(
    report_id: ReportId,
    store: StoreDep,
    scope: TenantScope,
    fmt: Annotated[Literal["pdf", "html", "json"], Query(alias="format")] = "pdf",
    lang: Annotated[Literal["vi", "en"], Query()] = "vi",
) -> Response:
    """The report as a file to save: PDF, HTML or JSON, in Vietnamese or English."""
    doc = stored.get(store, report_id, scope)
    data = await run_in_threadpool(render, stored.load(doc), fmt=fmt, lang=lang)
    headers = {"Content-Disposition": f'attachment; filename="canhgac-{doc.id}-{lang}.{fmt}"'}
    if fmt == "html":
        headers["Content-Security-Policy"] = HTML_CSP
    return Response(content=data, media_type=CONTENT_TYPES[fmt], headers=headers)
