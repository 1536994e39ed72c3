"""Scheduled jobs for province-wide admins: each job's schedule, next and last run, its recent
runs, and "run now" — the same services as ``/api/jobs``, audited the same way."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from scheduling import runs
from scheduling.scheduler import overview
from soc_api.deps import CurrentPrincipal, SettingsDep, StoreDep, TenantScope
from soc_api.routes.jobs import JobId, province_only, run_audited
from soc_api.services.jobs import job_registry
from soc_api.ui.render import render
from soc_core.config import Settings
from soc_core.store import Store

router = APIRouter(prefix="/ui/jobs", include_in_schema=False)
RUNS_SHOWN = 20


def _context(store: Store, settings: Settings, job: str | None) -> dict[str, Any]:
    registry = job_registry(settings)
    selected = job if job in registry else None
    recent = runs.list_runs(store, selected, size=RUNS_SHOWN).items if selected else []
    return {
        "jobs": overview(store, registry),
        "selected": selected,
        "runs": [dict(doc.body, id=doc.id) for doc in recent],
        "done": None,
    }


@router.get("", response_class=HTMLResponse)
def job_list(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    scope: TenantScope,
    job: Annotated[str, Query(max_length=64)] = "",
) -> HTMLResponse:
    province_only(scope)
    return render(request, "jobs.html", **_context(store, settings, job or None))


@router.post("/{job_id}/run", response_class=HTMLResponse)
async def run_job(
    job_id: JobId,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    scope: TenantScope,
    principal: CurrentPrincipal,
) -> HTMLResponse:
    """Runs the job in this process and answers the jobs panel with the run's outcome."""
    province_only(scope)
    done = await run_audited(store, settings, job_id, request, principal)
    return render(request, "_jobs_body.html", **{**_context(store, settings, job_id), "done": done})


__all__ = ["router"]
