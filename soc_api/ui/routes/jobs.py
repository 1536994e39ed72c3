"""Scheduled jobs for province-wide admins: each job's schedule, next and last run, its recent
runs, and "run now" — the same services as ``/api/jobs``, audited the same way."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from scheduling import runs
from scheduling.scheduler import overview, run_now
from soc_api.deps import CurrentPrincipal, SettingsDep, StoreDep, TenantScope
from soc_api.routes.alerts import actor_of
from soc_api.routes.jobs import JobId, known_job, province_only
from soc_api.services.jobs import job_registry
from soc_api.ui.render import render
from soc_core.config import Settings
from soc_core.store import Store
from workflow import audit

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
    registry = job_registry(settings)
    known_job(registry, job_id)
    actor = actor_of(request, principal)
    done = await run_in_threadpool(run_now, store, settings, registry, job_id, actor=principal.id)
    audit.record(
        store,
        actor=principal.id,
        action="job.run",
        target=f"jobs/{job_id}",
        outcome="success" if done["status"] == "succeeded" else "failure",
        after={"run": done["id"], "status": done["status"]},
        request_id=actor.request_id,
        source_ip=actor.source_ip,
    )
    return render(request, "_jobs_body.html", **{**_context(store, settings, job_id), "done": done})


__all__ = ["router"]
