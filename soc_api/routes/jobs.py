"""Scheduled jobs, for province-wide admins: the jobs with their next and last runs, a job's
runs, and running a job now (in this API process, recorded as a ``manual`` run and audited).
Jobs act on every agency (retention, the digest), so an agency admin gets 403."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from scheduling import runs
from scheduling.registry import JobRegistry
from scheduling.scheduler import overview, run_now
from soc_api.deps import CurrentPrincipal, SettingsDep, StoreDep, TenantScope
from soc_api.errors import ApiProblem
from soc_api.routes.alerts import actor_of
from soc_api.schemas import JobPage, JobPublic, JobRunPage, JobRunPublic
from soc_api.services.jobs import job_registry
from soc_core.config import Settings
from soc_core.store import Store
from workflow import audit
from workflow.principals import Principal

router = APIRouter(prefix="/api/jobs", tags=["jobs"])
JobId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_-]{0,63}$")]


def province_only(scope: tuple[str, ...] | None) -> None:
    if scope is not None:
        raise ApiProblem(403, "Forbidden", "only province-wide admins see and run scheduled jobs")


def known_job(registry: JobRegistry, job_id: str) -> None:
    """Jobs are configuration, not agency data: an unknown id is answered with the known ones."""
    if job_id not in registry:
        raise ApiProblem(404, "Not found", f"no job {job_id!r}; configured jobs: {', '.join(s.id for s in registry)}")


@router.get("", response_model=JobPage)
def list_jobs(store: StoreDep, settings: SettingsDep, scope: TenantScope) -> JobPage:
    """Every configured job: schedule, next run (from the job store) and last run."""
    province_only(scope)
    return JobPage(items=[JobPublic.model_validate(job) for job in overview(store, job_registry(settings))])


@router.get("/{job_id}/runs", response_model=JobRunPage)
def list_job_runs(
    job_id: JobId,
    store: StoreDep,
    settings: SettingsDep,
    scope: TenantScope,
    size: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> JobRunPage:
    """The job's recorded runs, newest first."""
    province_only(scope)
    known_job(job_registry(settings), job_id)
    page = runs.list_runs(store, job_id, size=size, cursor=cursor)
    items = [JobRunPublic.model_validate(dict(doc.body, id=doc.id)) for doc in page.items]
    return JobRunPage(items=items, next_cursor=page.next_cursor)


async def run_audited(
    store: Store, settings: Settings, job_id: str, request: Request, principal: Principal
) -> dict[str, Any]:
    """Run a known job now, by hand, in a worker thread, and audit it (API and UI alike)."""
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
    return done


@router.post("/{job_id}/run", response_model=JobRunPublic)
async def run_job(
    job_id: JobId,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    scope: TenantScope,
    principal: CurrentPrincipal,
) -> JobRunPublic:
    """Run the job now and answer its run record (``failed`` with the error if it failed)."""
    province_only(scope)
    done = await run_audited(store, settings, job_id, request, principal)
    return JobRunPublic.model_validate(done)
