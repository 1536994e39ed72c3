"""The managers' pages: "Reports" (a week picker and an agency choice limited to the caller's
agencies; the stored report of that week shown in a sandboxed frame, its PDF to download, and
for managers and admins "generate") and the dashboard (open alerts by level, alerts per day,
MTTA/MTTR per week, top rules, sensor health — counted by the store, :mod:`reports.dashboard`).

The same services and checks as ``/api/reports``: an agency's report for its members, the
province's (``*``) for province-wide members, generation audited the same way.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from reports import stored
from reports.cli import last_week
from reports.dashboard import dashboard
from reports.render import CONTENT_TYPES
from reports.render import render as render_report
from soc_api.deps import CurrentPrincipal, SettingsDep, StoreDep, TenantScope
from soc_api.routes.reports import HTML_CSP, ReportId, generate_weekly
from soc_api.schemas import WeeklyReportRequest
from soc_api.ui import charts as charts_of
from soc_api.ui.forms import FormDep
from soc_api.ui.i18n import translator
from soc_api.ui.render import language_of, render
from soc_core.errors import InvalidInput, NotFound, NotVisible
from soc_core.store import Store
from soc_core.store.base import MAX_LIST_SIZE

router = APIRouter(prefix="/ui", include_in_schema=False)
Week = Annotated[str, Query(pattern=r"^(\d{4}-W\d{2})?$")]
Tenant = Annotated[str, Query(max_length=40)]
UPTIME_GOOD = 0.95  # below it a sensor's bar is drawn as a warning
UPTIME_ROWS = 12  # the dashboard charts the sensors of lowest uptime; the table lists them all
TITLES = {  # each chart's title (its text alternative starts with it)
    "open": "dashboard.open",
    "agencies": "dashboard.by_agency",
    "mtta": "dashboard.mtta",
    "mttr": "dashboard.mttr",
    "rules": "dashboard.rules",
    "uptime": "dashboard.uptime_chart",
}


def _choices(store: Store, scope: tuple[str, ...] | None) -> list[tuple[str, str]]:
    """(tenant, name) the caller may pick: the province first for province-wide callers."""
    names = {
        doc.id: str(doc.body.get("name") or doc.id) for doc in store.list_docs("tenants", size=MAX_LIST_SIZE).items
    }
    if scope is None:
        return [(stored.PROVINCE, ""), *sorted(names.items())]
    return [(tenant, names.get(tenant, tenant)) for tenant in scope]


def _pick(choices: list[tuple[str, str]], tenant: str) -> str:
    allowed = [value for value, _ in choices]
    if not tenant:
        return allowed[0]
    if tenant not in allowed:
        raise NotVisible("no such agency", target=f"reports/{tenant}", owner=None if tenant == "*" else tenant)
    return tenant


@router.get("/reports", response_class=HTMLResponse)
def reports_page(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    scope: TenantScope,
    principal: CurrentPrincipal,
    week: Week = "",
    tenant: Tenant = "",
) -> HTMLResponse:
    choices = _choices(store, scope)
    chosen_week = week or last_week(ZoneInfo(settings.reports.timezone))
    chosen = _pick(choices, tenant)
    report_id = stored.report_id(chosen, chosen_week)
    try:
        doc = stored.get(store, report_id, scope)
    except NotFound:
        doc = None
    writable = principal.tenants_for("reports:write")
    return render(
        request,
        "reports.html",
        choices=choices,
        week=chosen_week,
        tenant=chosen,
        doc=doc,
        report_id=report_id,
        may_generate=writable is None or (chosen != stored.PROVINCE and chosen in writable),
    )


@router.post("/reports", response_class=HTMLResponse)
async def generate_report(
    request: Request,
    form: FormDep,
    store: StoreDep,
    settings: SettingsDep,
    scope: TenantScope,
    principal: CurrentPrincipal,
) -> Response:
    """Generate (or replace) the week's report, then show it."""
    try:
        body = WeeklyReportRequest(week=form.get("week"), tenant=form.get("tenant") or "*")
    except ValidationError as exc:
        raise InvalidInput("not an ISO week or an agency", where="week", hint="pick a week such as 2026-W48") from exc
    await generate_weekly(body, request, store, settings, scope, principal)
    target = "/ui/reports?" + urlencode({"week": body.week, "tenant": body.tenant})
    return Response(status_code=204, headers={"HX-Redirect": target})


@router.get("/reports/{report_id}/document")
async def report_document(
    report_id: ReportId,
    store: StoreDep,
    scope: TenantScope,
    fmt: Annotated[Literal["pdf", "html"], Query(alias="format")] = "html",
    lang: Annotated[Literal["vi", "en"], Query()] = "vi",
    download: Annotated[bool, Query()] = False,
) -> Response:
    """The stored report as the page's frame shows it (HTML) or as a file (PDF)."""
    doc = stored.get(store, report_id, scope)
    data = await run_in_threadpool(render_report, stored.load(doc), fmt=fmt, lang=lang)
    disposition = "attachment" if download or fmt == "pdf" else "inline"
    headers = {"Content-Disposition": f'{disposition}; filename="canhgac-{doc.id}-{lang}.{fmt}"'}
    if fmt == "html":  # framed by the reports page only; its own style and data: charts, nothing else
        headers.update({"Content-Security-Policy": HTML_CSP, "X-Frame-Options": "SAMEORIGIN"})
    return Response(content=data, media_type=CONTENT_TYPES[fmt], headers=headers)


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard_page(
    request: Request, store: StoreDep, settings: SettingsDep, scope: TenantScope, tenant: Tenant = ""
) -> HTMLResponse:
    choices = _choices(store, scope)
    chosen = _pick(choices, tenant)
    tenants = None if chosen == stored.PROVINCE else (chosen,)
    board = dashboard(store, settings, tenants)
    t = translator(language_of(request))
    names = dict(choices)
    minutes, hours = t("dashboard.minutes"), t("dashboard.hours")

    def seconds_as(value: float | None, unit: float, suffix: str) -> str:
        return "—" if value is None else f"{value / unit:.1f} {suffix}"

    drawn: dict[str, charts_of.Bars | charts_of.Line] = {
        "open": charts_of.bars(
            [(t(f"level.{level}"), count, str(count), f"lvl-{level}") for level, count in board.open_by_level.items()]
        ),
        "agencies": charts_of.bars(
            [(names.get(key, key), count, str(count), "bar") for key, count in board.open_by_agency]
        ),
        "mtta": charts_of.line(
            [(row.week, row.mtta_seconds, seconds_as(row.mtta_seconds, 60, minutes)) for row in board.weeks],
            unit=60,
            suffix=minutes,
        ),
        "mttr": charts_of.line(
            [(row.week, row.mttr_seconds, seconds_as(row.mttr_seconds, 3600, hours)) for row in board.weeks],
            unit=3600,
            suffix=hours,
        ),
        "rules": charts_of.bars([(name, count, str(count), "bar") for name, count in board.top_rules]),
        "uptime": charts_of.bars(
            [
                (
                    row.name if tenants else f"{row.name} ({names.get(row.tenant, row.tenant)})",
                    row.uptime or 0.0,
                    "—" if row.uptime is None else f"{row.uptime * 100:.1f}%",
                    "bar-bad" if row.uptime is None or row.uptime < UPTIME_GOOD else "bar-good",
                )
                for row in board.sensors.by_sensor[:UPTIME_ROWS]
            ],
            scale=1.0,
        ),
    }
    busiest = max(board.days, key=lambda day: day[1])

    def listed(what: str, chart: charts_of.Bars | charts_of.Line) -> str:
        """The chart's text alternative: its title and every value it draws."""
        if isinstance(chart, charts_of.Bars):
            items = [f"{bar.full} {bar.value}" for bar in chart.bars]
        else:
            items = [f"{point.label} {point.shown}" for point in chart.points]
        return t("dashboard.list_summary", what=t(what), items=", ".join(items) or t("dashboard.no_data"))

    summaries = {key: listed(TITLES[key], chart) for key, chart in drawn.items()}
    summaries["days"] = t(
        "dashboard.days_summary", total=sum(count for _, count in board.days), day=busiest[0], count=busiest[1]
    )
    charts = {**drawn, "days": charts_of.columns(board.days)}
    return render(
        request, "dashboard.html", choices=choices, tenant=chosen, board=board, charts=charts, summaries=summaries
    )


__all__ = ["router"]
