"""Job runs: one ``job_runs`` record per run, created before the job runs.

A scheduled run's id is a hash of (job id, scheduled fire time), so every scheduler that fires
the same run computes the same id; creating the record is the claim — the store's
create-if-absent lets exactly one of them win, and the others get a Conflict and skip. A
manual run's fire time is the moment it was asked for. The record holds the status
(``running``, ``succeeded``, ``failed``, or ``missed`` for a run past the misfire grace time),
start, end, duration, error, the job's outcome summary (``output``) and the host and pid that
ran it. A process killed mid-run leaves its record ``running``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from scheduling.registry import JobFailed, JobSpec, RunContext, RunKind
from soc_core.config import Settings
from soc_core.errors import Conflict, SocError
from soc_core.events import format_timestamp, utcnow
from soc_core.store import Doc, Page, Store

KIND = "job_runs"
log = logging.getLogger("canhgac.scheduling")


def run_id(job_id: str, scheduled_for: datetime) -> str:
    """The same for every scheduler that fires ``job_id`` at ``scheduled_for``."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(job_id.encode() + b"\x00" + scheduled_for.astimezone(UTC).isoformat().encode())
    return digest.hexdigest()


def _precise(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _claim(
    store: Store, spec: JobSpec, scheduled_for: datetime, *, kind: RunKind, actor: str, status: str
) -> Doc | None:
    now = utcnow()
    body: dict[str, Any] = {
        "job": spec.id,
        "scheduled_for": _precise(scheduled_for),
        "kind": kind,
        "actor": actor,
        "status": status,
        "created_at": _precise(now),
        "started_at": format_timestamp(now),
        "ended_at": None,
        "duration_seconds": None,
        "error": None,
        "output": {},
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    try:
        return store.create_doc(KIND, body, doc_id=run_id(spec.id, scheduled_for))
    except Conflict:
        log.info("job run claimed by another scheduler", extra={"job": spec.id, "scheduled_for": body["scheduled_for"]})
        return None


def record_missed(store: Store, spec: JobSpec, scheduled_for: datetime) -> Doc | None:
    """A run past the misfire grace time: recorded (once) as ``missed``, not run."""
    return _claim(store, spec, scheduled_for, kind="schedule", actor="scheduler", status="missed")


def execute(
    store: Store,
    settings: Settings,
    spec: JobSpec,
    *,
    scheduled_for: datetime,
    kind: RunKind = "schedule",
    actor: str = "scheduler",
) -> dict[str, Any] | None:
    """Claim the run, run the job, record how it ended; ``None`` if another scheduler claimed it.

    A failing job is recorded as ``failed`` with the error and logged; it never stops the
    scheduler."""
    claimed = _claim(store, spec, scheduled_for, kind=kind, actor=actor, status="running")
    if claimed is None:
        return None
    context = RunContext(spec.id, claimed.id, scheduled_for, kind, actor)
    started = time.monotonic()
    output: Mapping[str, Any] = {}
    error: str | None = None
    try:
        output = spec.function(store, settings, context)
    except JobFailed as exc:
        error, output = exc.render(), exc.output
        log.error("job failed", extra={"job": spec.id, "run": claimed.id, "error": error})
    except SocError as exc:
        error = exc.render()
        log.error("job failed", extra={"job": spec.id, "run": claimed.id, "error": error})
    except Exception as exc:  # a job's bug must not stop the scheduler: recorded and logged with its traceback
        error = f"{type(exc).__name__}: {exc}"
        log.exception("job failed", extra={"job": spec.id, "run": claimed.id})
    finished = {
        **claimed.body,
        "id": claimed.id,
        "status": "failed" if error else "succeeded",
        "ended_at": format_timestamp(utcnow()),
        "duration_seconds": round(time.monotonic() - started, 3),
        "error": error,
        "output": dict(output),
    }
    try:
        store.update_doc(KIND, claimed.id, {k: v for k, v in finished.items() if k != "id"}, version=claimed.version)
    except SocError as exc:  # the job ran; only its record stays `running`
        log.error("job run not recorded", extra={"job": spec.id, "run": claimed.id, "error": exc.render()})
    log.info("job run", extra={"job": spec.id, "run": claimed.id, "status": finished["status"]})
    return finished


def list_runs(store: Store, job_id: str, *, size: int = 50, cursor: str | None = None) -> Page[Doc]:
    """Newest first."""
    return store.list_docs(KIND, filters={"job": job_id}, sort="created_at", size=size, cursor=cursor)


def last_run(store: Store, job_id: str) -> dict[str, Any] | None:
    page = list_runs(store, job_id, size=1)
    return dict(page.items[0].body, id=page.items[0].id) if page.items else None


def purge_runs(store: Store, *, days: int) -> int:
    """Delete run records created more than ``days`` ago; returns how many."""
    horizon = _precise(utcnow() - timedelta(days=days))
    removed = 0
    while True:
        page = store.list_docs(KIND, sort="created_at", descending=False, size=500)
        old = [doc for doc in page.items if str(doc.body.get("created_at", "")) < horizon]
        for doc in old:
            store.delete_doc(KIND, doc.id)
        removed += len(old)
        if len(old) < len(page.items) or not page.next_cursor:
            return removed


__all__ = ["KIND", "execute", "last_run", "list_runs", "purge_runs", "record_missed", "run_id"]
