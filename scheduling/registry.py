"""What a scheduled job is, and the registry of them.

A job is an id, a trigger (:class:`~soc_core.config.JobTrigger`: a crontab line or an interval,
from the configuration) and a function of (store, settings, run context) that returns a short
outcome summary (a JSON-able mapping), stored in the run's record. The function must be a
module-level one: the persistent job store keeps a reference to it by name and refuses to load
any job whose function is not the registered one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from apscheduler.util import obj_to_ref

from soc_core.config import JobTrigger, Settings
from soc_core.errors import ConfigError, NotFound, SocError
from soc_core.store import Store

JOB_ID = r"^[a-z][a-z0-9_-]{0,63}$"
RunKind = Literal["schedule", "manual"]


@dataclass(frozen=True)
class RunContext:
    """One run of a job, handed to its function."""

    job_id: str
    run_id: str
    scheduled_for: datetime  # the fire time (a manual run: when it was asked for)
    kind: RunKind
    actor: str  # "scheduler", or who ran it by hand


class JobFailed(SocError):
    """A job that did part of its work and failed: ``output`` (what it did) is kept in the run
    record beside the error."""

    def __init__(self, message: str, *, output: Mapping[str, Any], where: str | None = None) -> None:
        super().__init__(message, where=where)
        self.output = dict(output)


JobFunction = Callable[[Store, Settings, RunContext], Mapping[str, Any]]


@dataclass(frozen=True)
class JobSpec:
    id: str
    trigger: JobTrigger
    function: JobFunction
    description: str

    @property
    def function_ref(self) -> str:
        """The function's ``module:name``, as the job store keeps it."""
        return str(obj_to_ref(self.function))

    def build_trigger(self, timezone: str) -> BaseTrigger:
        if self.trigger.cron is not None:
            return CronTrigger.from_crontab(self.trigger.cron, timezone=timezone)
        assert self.trigger.every_minutes is not None  # JobTrigger holds one of the two
        return IntervalTrigger(seconds=self.trigger.every_minutes * 60, timezone=timezone)

    def schedule_text(self) -> str:
        if self.trigger.cron is not None:
            return f"cron {self.trigger.cron}"
        return f"every {self.trigger.every_minutes:g} min"


class JobRegistry:
    """Jobs by id, in the order they were added; only enabled ones are added."""

    def __init__(self) -> None:
        self._jobs: dict[str, JobSpec] = {}

    def add(self, job_id: str, trigger: JobTrigger, function: JobFunction, description: str) -> None:
        if not re.match(JOB_ID, job_id):
            raise ConfigError(f"bad job id {job_id!r}", hint="lowercase letters, digits, '-' and '_'")
        if job_id in self._jobs:
            raise ConfigError(f"job {job_id!r} is registered twice", hint="give every job its own id")
        if trigger.enabled:
            self._jobs[job_id] = JobSpec(job_id, trigger, function, description)

    def get(self, job_id: str) -> JobSpec:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise NotFound(f"no job {job_id!r}", hint=f"jobs: {', '.join(self._jobs) or 'none'}") from None

    def __iter__(self) -> Iterator[JobSpec]:
        return iter(list(self._jobs.values()))

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def __len__(self) -> int:
        return len(self._jobs)


__all__ = ["JOB_ID", "JobFailed", "JobFunction", "JobRegistry", "JobSpec", "RunContext", "RunKind"]
