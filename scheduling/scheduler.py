"""The scheduler a process runs, and the job overview and manual runs every process can do.

APScheduler 3 (``BackgroundScheduler``) with one job store (:class:`StoreJobStore`, in the
configured store) and one executor that records every run (:mod:`scheduling.runs`): it claims
the run of (job, scheduled fire time) before running it, so any number of schedulers on one
store run each fire time once. Jobs coalesce: a job due several times while no scheduler ran
runs once, for its last fire time, unless that is older than ``scheduler.misfire_grace_minutes``
(then the run is recorded as ``missed``).

At start the configured jobs are written to the job store; a stored job whose schedule is
unchanged keeps its next run time, so a run that fell due during a restart still happens.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError
from apscheduler.schedulers.background import BackgroundScheduler

from scheduling import runs
from scheduling.jobstore import KIND, StoreJobStore, make_job, stored_jobs
from scheduling.registry import JobRegistry
from soc_core.config import Settings
from soc_core.errors import Conflict
from soc_core.store import Store

log = logging.getLogger("canhgac.scheduling")


class RecordingExecutor(BaseExecutor):  # type: ignore[misc]  # APScheduler 3 ships no type hints
    """Runs each due fire time through :meth:`JobScheduler.fire` in a small thread pool."""

    def __init__(self, owner: JobScheduler, workers: int = 4) -> None:
        super().__init__()
        self.owner = owner
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="canhgac-job")

    def _do_submit_job(self, job: Job, run_times: Sequence[datetime]) -> None:
        future = self.pool.submit(self.owner.fire, job.id, list(run_times))

        def done(finished: Future[None]) -> None:
            error = finished.exception()
            if error is None:
                self._run_job_success(job.id, [])
            else:
                self._run_job_error(job.id, error, error.__traceback__)

        future.add_done_callback(done)

    def shutdown(self, wait: bool = True) -> None:
        self.pool.shutdown(wait=wait)


class JobScheduler:
    def __init__(self, store: Store, settings: Settings, registry: JobRegistry) -> None:
        self.store = store
        self.settings = settings
        self.registry = registry
        self.timezone = settings.scheduler.timezone
        self.grace = timedelta(minutes=settings.scheduler.misfire_grace_minutes)
        self.jobstore = StoreJobStore(store, registry, self.timezone)
        self.scheduler = BackgroundScheduler(
            timezone=self.timezone,
            jobstores={"default": self.jobstore},
            executors={"default": RecordingExecutor(self)},
            # the executor judges misfires itself (and records them); APScheduler's own check is off
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    def start(self) -> None:
        self.scheduler.start(paused=True)
        self._sync_jobs()
        self.scheduler.resume()  # wakes up and reads the job store
        log.info("scheduler started", extra={"jobs": [spec.id for spec in self.registry]})

    def _sync_jobs(self) -> None:
        for spec in self.registry:
            if self.jobstore.stored_schedule(spec.id) == (spec.schedule_text(), self.timezone):
                continue  # unchanged: keep its next run time (a run due during a restart happens)
            trigger = spec.build_trigger(self.timezone)
            job = make_job(spec, trigger, trigger.get_next_fire_time(None, datetime.now(UTC)))
            try:
                self.jobstore.add_job(job)
            except ConflictingIdError:  # there with another schedule, or another scheduler just added it
                self.jobstore.update_job(job)
            log.info("job scheduled", extra={"job": spec.id, "schedule": spec.schedule_text()})
        for job_id in stored_jobs(self.store):
            if job_id not in self.registry:  # switched off in the configuration
                self.store.delete_doc(KIND, job_id)
                log.info("job removed", extra={"job": job_id})

    def fire(self, job_id: str, run_times: list[datetime]) -> None:
        spec = self.registry.get(job_id)
        for when in run_times:
            late = datetime.now(UTC) - when
            if late > self.grace:
                log.warning(
                    "job run missed", extra={"job": job_id, "scheduled_for": when.isoformat(), "late": str(late)}
                )
                runs.record_missed(self.store, spec, when)
                continue
            runs.execute(self.store, self.settings, spec, scheduled_for=when)

    def shutdown(self) -> None:
        self.scheduler.shutdown(wait=True)  # a running job finishes and records its end


def overview(store: Store, registry: JobRegistry) -> list[dict[str, Any]]:
    """Every configured job: its schedule, next run (from the job store) and last run."""
    stored = stored_jobs(store)
    return [
        {
            "id": spec.id,
            "description": spec.description,
            "schedule": spec.schedule_text(),
            "next_run_time": stored.get(spec.id, {}).get("next_run_time"),
            "last_run": runs.last_run(store, spec.id),
        }
        for spec in registry
    ]


def run_now(store: Store, settings: Settings, registry: JobRegistry, job_id: str, *, actor: str) -> dict[str, Any]:
    """Run a job at once in this process, recorded as a ``manual`` run."""
    spec = registry.get(job_id)
    done = runs.execute(store, settings, spec, scheduled_for=datetime.now(UTC), kind="manual", actor=actor)
    if done is None:  # the id of a manual run is its own microsecond: only a second call in it collides
        raise Conflict(f"job {job_id} was started twice at the same moment", hint="look at its runs")
    return done


__all__ = ["JobScheduler", "RecordingExecutor", "overview", "run_now"]
