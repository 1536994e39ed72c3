"""The scheduled jobs of a deployment: those of ``scheduling`` plus the API's own (audit
anchoring, throttle purge) and the weekly report. The registry every process builds the same way
— the scheduler runs it; the API, UI and CLI list it and run its jobs by hand. A new job is one
more ``registry.add`` here: an id, a trigger from the configuration, a module-level function of
(store, settings, run context)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scheduling.jobs import builtin_jobs, weekly_report
from scheduling.registry import JobRegistry, RunContext
from soc_api.services import throttle
from soc_core.config import JobTrigger, Settings
from soc_core.store import Store
from workflow import audit


def anchor_audit(store: Store, settings: Settings, context: RunContext) -> Mapping[str, Any]:
    """Anchor the audit trail's head outside the store, if it moved since this process's last."""
    anchored = audit.anchor_head(store, if_moved=True)
    return {"anchored": anchored is not None, "seq": (anchored or {}).get("seq")}


def purge_throttle(store: Store, settings: Settings, context: RunContext) -> Mapping[str, Any]:
    """Forget sign-in throttle records that no longer hold anyone back."""
    return {"removed": throttle.purge_expired(store)}


def job_registry(settings: Settings) -> JobRegistry:
    registry = builtin_jobs(settings)
    registry.add(
        "audit-anchor",
        JobTrigger(every_minutes=settings.audit.anchor_every_minutes),
        anchor_audit,
        "anchor the audit trail's head outside the store",
    )
    registry.add(
        weekly_report.JOB,
        settings.scheduler.weekly_report,
        weekly_report.run,
        "store last week's reports and e-mail them to the managers",
    )
    for recipients in settings.scheduler.weekly_report.lists:
        registry.add(
            weekly_report.job_id(recipients.name),
            recipients,
            weekly_report.run,
            f"store last week's reports and e-mail them to the list {recipients.name!r}",
        )
    registry.add(
        "throttle-purge", settings.scheduler.throttle_purge, purge_throttle, "forget expired sign-in throttles"
    )
    return registry


__all__ = ["anchor_audit", "job_registry", "purge_throttle"]
