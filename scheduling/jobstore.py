"""APScheduler's job store over ``scheduler_jobs`` documents in the configured store.

Works on every store (SQLite and Elasticsearch alike) through the document interface. A job is
kept as JSON — its function's ``module:name``, its trigger as the configuration wrote it (and an
interval's start), its next run time — never as a pickle: anyone who can write the store could
otherwise make the scheduler run code of their choosing. A job is loaded only if its id is in the
registry and its function is the registered one; anything else is logged and left out.

Due jobs are found by reading every job document (a deployment has tens of jobs, not
thousands), so the store needs no range query on them.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore, ConflictingIdError, JobLookupError
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from scheduling.registry import JobRegistry, JobSpec
from soc_core.errors import Conflict, NotFound
from soc_core.events import utcnow
from soc_core.store import Doc, Store

KIND = "scheduler_jobs"
log = logging.getLogger("canhgac.scheduling")


def _stamp(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _moment(text: Any) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) else None


def job_body(job: Job, spec: JobSpec, timezone: str) -> dict[str, Any]:
    """The document of a job: JSON only."""
    start = job.trigger.start_date if isinstance(job.trigger, IntervalTrigger) else None
    return {
        "job": job.id,
        "function": job.func_ref,
        "schedule": spec.schedule_text(),
        "timezone": timezone,
        "interval_start": _stamp(start),
        "next_run_time": _stamp(job.next_run_time),
        "misfire_grace_time": job.misfire_grace_time,
        "coalesce": job.coalesce,
        "max_instances": job.max_instances,
        "created_at": utcnow().isoformat(),
    }


def make_job(spec: JobSpec, trigger: BaseTrigger, next_run_time: datetime | None, grace: Any = None) -> Job:
    """The APScheduler job of ``spec``. Built from its state, not ``Job(...)``: APScheduler
    would check that the function takes no arguments, and ours takes (store, settings, run),
    which the recording executor passes."""
    job = Job.__new__(Job)
    job.__setstate__(
        {
            "version": 1,
            "id": spec.id,
            "func": spec.function_ref,
            "trigger": trigger,
            "executor": "default",
            "args": (),
            "kwargs": {},
            "name": spec.id,
            "misfire_grace_time": grace,
            "coalesce": True,
            "max_instances": 1,
            "next_run_time": next_run_time,
        }
    )
    return job


class StoreJobStore(BaseJobStore):  # type: ignore[misc]  # APScheduler 3 ships no type hints
    def __init__(self, store: Store, registry: JobRegistry, timezone: str) -> None:
        super().__init__()
        self.store = store
        self.registry = registry
        self.timezone = timezone

    # reading -------------------------------------------------------------------------------
    def _job(self, doc: Doc) -> Job | None:
        body = doc.body
        if doc.id not in self.registry:
            return None  # a job this process does not run (left out of its configuration)
        spec = self.registry.get(doc.id)
        if body.get("function") != spec.function_ref:
            log.warning(
                "stored job refused: its function is not the registered one",
                extra={"job": doc.id, "stored": body.get("function"), "registered": spec.function_ref},
            )
            return None
        trigger = spec.build_trigger(str(body.get("timezone") or self.timezone))
        start = _moment(body.get("interval_start"))
        if isinstance(trigger, IntervalTrigger) and start is not None:
            trigger = IntervalTrigger(seconds=trigger.interval_length, start_date=start, timezone=trigger.timezone)
        job = make_job(spec, trigger, _moment(body.get("next_run_time")), body.get("misfire_grace_time"))
        job._scheduler = self._scheduler
        job._jobstore_alias = self._alias
        return job

    def _jobs(self) -> list[Job]:
        jobs = [job for job in map(self._job, all_docs(self.store)) if job is not None]
        return sorted(jobs, key=lambda job: (job.next_run_time is None, job.next_run_time or utcnow()))

    def stored_schedule(self, job_id: str) -> tuple[str, str] | None:
        """(schedule text, timezone) a stored job was made with, or None if there is none."""
        try:
            body = self.store.get_doc(KIND, job_id).body
        except NotFound:
            return None
        return str(body.get("schedule")), str(body.get("timezone"))

    def lookup_job(self, job_id: str) -> Job | None:
        try:
            return self._job(self.store.get_doc(KIND, job_id))
        except NotFound:
            return None

    def get_due_jobs(self, now: datetime) -> list[Job]:
        return [job for job in self._jobs() if job.next_run_time is not None and job.next_run_time <= now]

    def get_next_run_time(self) -> datetime | None:
        times = [job.next_run_time for job in self._jobs() if job.next_run_time is not None]
        return min(times) if times else None

    def get_all_jobs(self) -> list[Job]:
        jobs = self._jobs()
        self._fix_paused_jobs_sorting(jobs)
        return jobs

    # writing -------------------------------------------------------------------------------
    def add_job(self, job: Job) -> None:
        try:
            self.store.create_doc(KIND, job_body(job, self.registry.get(job.id), self.timezone), doc_id=job.id)
        except Conflict as exc:
            raise ConflictingIdError(job.id) from exc

    def update_job(self, job: Job) -> None:
        try:
            current = self.store.get_doc(KIND, job.id)
        except NotFound as exc:
            raise JobLookupError(job.id) from exc
        body = job_body(job, self.registry.get(job.id), self.timezone)
        body["created_at"] = current.body.get("created_at", body["created_at"])
        # unconditional: every scheduler that ran this fire time writes the same next run time
        self.store.put_doc(KIND, job.id, body)

    def remove_job(self, job_id: str) -> None:
        try:
            self.store.get_doc(KIND, job_id)
        except NotFound as exc:
            raise JobLookupError(job_id) from exc
        self.store.delete_doc(KIND, job_id)

    def remove_all_jobs(self) -> None:
        for doc in all_docs(self.store):
            self.store.delete_doc(KIND, doc.id)

    def __repr__(self) -> str:
        return f"<StoreJobStore ({self.store.location})>"


def all_docs(store: Store) -> list[Doc]:
    docs: list[Doc] = []
    cursor: str | None = None
    while True:
        page = store.list_docs(KIND, sort="job", descending=False, size=500, cursor=cursor)
        docs += page.items
        if page.next_cursor is None:
            return docs
        cursor = page.next_cursor


def stored_jobs(store: Store) -> dict[str, dict[str, Any]]:
    """Every stored job's document by id (for listing, in processes that run no scheduler)."""
    return {doc.id: doc.body for doc in all_docs(store)}


__all__ = ["KIND", "StoreJobStore", "job_body", "make_job", "stored_jobs"]
