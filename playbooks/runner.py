"""The playbook runner: starts alert-triggered runs and drives runs step by step.

It runs in the engine role (``soc up --role engine|all``, :class:`RunnerThread`) and polls the
store every ``playbooks.poll_seconds``:

1. **new alerts** since its checkpoint (``checkpoints/playbooks-alerts``: a creation time and
   the ids seen near it) are matched against every alert-triggered playbook; a match creates
   the run under a deterministic id (:func:`playbooks.records.auto_run_id`) with
   create-if-absent, so an alert starts a playbook once — across restarts (the checkpoint may
   lag; the id does not) and across several engine processes (the loser gets a Conflict);
2. **active runs** (pending, running, waiting for an approval that was decided or expired)
   are handed to a pool of ``playbooks.max_concurrent_runs`` threads.

A run is driven by whoever holds its **lease** (``{holder, until}``, taken by a conditional
update; it covers the running step's timeout), so two processes never drive one run. A
process that dies leaves the lease to expire; the next runner finds the step it was running:
an ``idempotent`` action runs again, any other is marked ``interrupted`` and never repeated.

Per step: ``if:`` (false: skipped), the approval gate (waits as ``waiting_approval`` until a
person decides through :func:`playbooks.service.decide`; rejected or expired: cancelled), the
rendered parameters checked against the action's Params, then the action in its own thread
with the step's ``timeout``, retried ``retries`` times with doubling backoff (a timed-out
attempt of a non-idempotent action is not retried: it may have acted). ``on_error: stop`` ends
the run at a step that failed, was cancelled or interrupted; ``continue`` goes on.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from playbooks.actions.base import ACTIONS, ActionContext, ActionResult
from playbooks.format import Library, Playbook, Step
from playbooks.records import (
    FINAL,
    STEP_DONE,
    actor_of,
    add_audit_entry,
    audit_entry,
    config_secrets,
    flush_audit,
    flush_timelines,
    get_run,
    mutate,
    now_text,
    redact,
    step_record,
    timeline_entry,
    with_step,
)
from playbooks.service import approval_expiry, start_auto_runs
from playbooks.templating import evaluate, render
from soc_core.config import AgencyContact, Settings
from soc_core.errors import NotFound, PlaybookError, SocError, StoreUnavailable
from soc_core.events import format_timestamp, parse_timestamp, utcnow
from soc_core.store import Doc, Store
from soc_core.store.base import encode_cursor
from workflow import audit

log = logging.getLogger("canhgac.playbooks")
CHECKPOINT_KIND = "checkpoints"
CHECKPOINT_ID = "playbooks-alerts"
# How far back each poll looks again for alerts stored out of creation order (their run ids
# are remembered in the checkpoint, so looking twice starts nothing twice).
LATE_ALERT_MARGIN = timedelta(minutes=2)
LATE_SWEEP_POLLS = 30
MAX_BACKOFF = 300.0
DISPATCH_PAGES = 5  # of 200 runs per status group and poll
MIN_REDISPATCH_SECONDS = 0.02  # the shortest pause between two hand-outs woken by finished runs
ALERTS_PER_POLL = 1000  # new alerts matched per poll; the rest wait for the next


@dataclass
class _Call:
    result: ActionResult | None = None
    error: str | None = None
    timed_out: bool = False


def _ms(start: str | None) -> int | None:
    return None if not start else int((utcnow() - parse_timestamp(start)).total_seconds() * 1000)


Change = Callable[[dict[str, Any]], "dict[str, Any] | None"]


@dataclass(frozen=True)
class _Note:
    """A change's audit record and timeline entry."""

    action: str
    text: str
    details: dict[str, Any] | None = None


@dataclass
class _Drive:
    """A run being driven here. ``doc``: the run as this runner last wrote it (it holds the
    lease, so only people write meanwhile — a cancel request, an approval — and then the next
    conditional write reads it again); ``deferred``: changes to write with the next one;
    ``view``: ``doc`` with them applied, what the next step reads."""

    run_id: str
    doc: Doc
    deferred: list[tuple[Change | None, list[_Note], bool]] = field(default_factory=list)
    view: dict[str, Any] = field(default_factory=dict)
    # audit entries in the outbox when the drive began (an earlier drive's: maybe appended)
    inherited: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.view = dict(self.doc.body)


def _step_change(
    step_id: str, *, lease: dict[str, str] | None = None, run_status: str | None = None, **changes: Any
) -> Change:
    def change(body: dict[str, Any]) -> dict[str, Any]:
        if lease is not None:
            body["lease"] = lease
        if run_status is not None:
            body["status"] = run_status
        return with_step(body, step_id, **changes)

    return change


def _add_entry(body: dict[str, Any], run_id: str, text: str) -> None:
    entry = timeline_entry(body, run_id, actor=actor_of(body), text=text)
    body["timeline_outbox"] = [*(body.get("timeline_outbox") or []), entry]
    body["unflushed"] = True


class Runner:
    """Starts and drives playbook runs on one store. Any number may run against one store."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        library: Library,
        *,
        holder: str | None = None,
        lease_seconds: float = 30.0,
    ) -> None:
        self.store = store
        self.settings = settings
        self.library = library
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = lease_seconds
        self.secrets = config_secrets(settings)
        self.stop_event = threading.Event()
        # set when a run gives its slot back while other runs were left waiting for one (or on
        # close): the loop hands out work again at once instead of at the next poll
        self._wake = threading.Event()
        self._saturated = False
        self._active: set[str] = set()
        self._kept: collections.deque[Doc] = collections.deque()  # listed, not handed out yet (dispatch)
        self._polls = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(
            max_workers=settings.playbooks.max_concurrent_runs, thread_name_prefix="playbook-run"
        )

    # --- the loop ------------------------------------------------------------------------------
    def poll_once(self) -> list[Future[str]]:
        """Start runs for new alerts, then hand active runs to the pool; the futures started."""
        self.trigger_new_alerts()
        started = self.dispatch()
        if self._polls % LATE_SWEEP_POLLS == 1:  # now and then: what stopped drives left
            started += self.dispatch_leftovers()
        return started

    def dispatch_leftovers(self) -> list[Future[str]]:
        """Hand out final runs and runs waiting for a person whose outboxes a drive that stopped
        (a crash, the store gone) did not empty, once their lease expired: their audit records
        and timeline entries are appended then, those already there left out."""
        statuses = [*FINAL, "waiting_approval"]
        page = self.store.list_docs(
            "playbook_runs", filters={"unflushed": True, "status": statuses}, sort="created_at", size=200
        )
        return self._hand_out(collections.deque(page.items), utcnow(), leftovers=True)

    def run_forever(self) -> None:
        backoff = self.settings.playbooks.poll_seconds
        while not self.stop_event.is_set():
            try:
                self.poll_once()
            except StoreUnavailable as exc:
                log.warning("playbooks paused: store unavailable", extra={"error": exc.render()})
                backoff = min(backoff * 2, 30.0)
                self.stop_event.wait(backoff)
                continue
            except SocError as exc:  # one bad poll (a run that kept conflicting): log it, poll again
                log.error("playbook poll failed", extra={"error": exc.render()})
            backoff = self.settings.playbooks.poll_seconds
            if self._wake.wait(backoff):
                self._wake.clear()
                self.stop_event.wait(MIN_REDISPATCH_SECONDS)  # a floor: never a busy loop

    def close(self, *, wait: bool = True) -> None:
        """Stop taking work; runs being driven stop at their next step (their lease is left to
        expire, so another process resumes them)."""
        self.stop_event.set()
        self._wake.set()
        self._pool.shutdown(wait=wait, cancel_futures=True)

    # --- new alerts -------------------------------------------------------------------------
    def trigger_new_alerts(self) -> int:
        """Create the runs new alerts start; how many were created here.

        Alerts are read in (created_at, id) order after the checkpoint; every
        :data:`LATE_SWEEP_POLLS`-th poll reads again from :data:`LATE_ALERT_MARGIN` before it, for
        alerts stored after newer ones (the ids seen in that margin are in the checkpoint)."""
        automatic = [p for p in self.library.playbooks.values() if p.trigger.type == "alert"]
        if not automatic:
            return 0
        try:
            checkpoint = self.store.get_doc(CHECKPOINT_KIND, CHECKPOINT_ID).body
            saved = True
        except NotFound:  # first start: alerts from now on (and the margin), not the history
            checkpoint, saved = {"since": now_text(), "last_id": "", "seen": []}, False
        self._polls += 1
        last = (str(checkpoint["since"]), str(checkpoint.get("last_id") or ""))
        seen = set(checkpoint.get("seen") or [])
        if self._polls % LATE_SWEEP_POLLS == 1:
            cursor: str | None = encode_cursor([format_timestamp(parse_timestamp(last[0]) - LATE_ALERT_MARGIN), ""])
        else:
            cursor = encode_cursor(list(last))
        recent = dict.fromkeys(seen, last[0])
        created = handled = 0
        while cursor and handled < ALERTS_PER_POLL:
            page = self.store.list_docs("alerts", sort="created_at", descending=False, size=200, cursor=cursor)
            starts: list[tuple[Playbook, str, Mapping[str, Any]]] = []
            for alert in page.items:
                stamp = str(alert.body.get("created_at") or "")
                last = max(last, (stamp, alert.id))
                if alert.id in seen:
                    continue
                handled += 1
                recent[alert.id] = stamp
                starts += [(p, alert.id, alert.body) for p in automatic if p.trigger.matches(alert.body)]
            created += self._start(starts)
            cursor = page.next_cursor
            if cursor and self._free_slot():  # a backlog of alerts: runs start between its pages
                self.dispatch()
        keep = format_timestamp(parse_timestamp(last[0]) - LATE_ALERT_MARGIN)
        body = {"since": last[0], "last_id": last[1], "seen": sorted(i for i, at in recent.items() if at >= keep)}
        if body != checkpoint or not saved:
            self.store.put_doc(CHECKPOINT_KIND, CHECKPOINT_ID, body)
        return created

    def _start(self, starts: list[tuple[Playbook, str, Mapping[str, Any]]]) -> int:
        """Create the runs of a page of alerts in one write; how many were new."""
        startable = []
        for start in starts:
            try:
                start[0].resolve_inputs({})
            except PlaybookError as exc:  # e.g. an input without default: reported, the others still start
                log.error(
                    "playbook not started", extra={"playbook": start[0].name, "alert": start[1], "error": exc.render()}
                )
                continue
            startable.append(start)
        return sum(doc is not None for doc in start_auto_runs(self.store, startable))

    # --- handing runs out ---------------------------------------------------------------------
    def dispatch(self) -> list[Future[str]]:
        """Hand due runs to the pool, oldest first, up to the concurrency limit: pending and
        running ones, then those whose approval was decided or expired (read apart, so that runs
        waiting for people never crowd out the others).

        The runs of the last page read that found no free slot are kept, in order, and handed
        out first next time; the runs are listed again only when those are used up. A backlog of
        10,000 pending runs made each listing a search of them all (seconds on a loaded SQLite
        store), and a run finishing every few hundred ms asked for one each time: the loop then
        did little else. A kept run that changed meanwhile (another process took it, a person
        cancelled it) is found out by its claim, which reads it."""
        now = utcnow()
        self._saturated = False
        started = self._hand_out(self._kept, now)
        if self._saturated or self.stop_event.is_set():
            return started
        for statuses in (["pending", "running"], ["waiting_approval"]):
            cursor: str | None = None
            for _ in range(DISPATCH_PAGES):
                page = self.store.list_docs(
                    "playbook_runs",
                    filters={"status": statuses},
                    sort="created_at",
                    descending=False,
                    size=200,
                    cursor=cursor,
                )
                self._kept = collections.deque(page.items)
                started += self._hand_out(self._kept, now)
                if self._saturated or self.stop_event.is_set():
                    return started
                cursor = page.next_cursor
                if cursor is None:
                    break
        return started

    def _hand_out(self, docs: collections.deque[Doc], now: datetime, *, leftovers: bool = False) -> list[Future[str]]:
        """Submit the due runs from the front of ``docs`` while slots are free (sets
        ``_saturated`` when none is left); those not reached stay in ``docs``."""
        started: list[Future[str]] = []
        while docs:
            doc = docs[0]
            with self._lock:
                if len(self._active) >= self.settings.playbooks.max_concurrent_runs:
                    self._saturated = True
                    return started
                docs.popleft()
                if doc.id in self._active or not self._due(doc.body, now, leftovers=leftovers):
                    continue
                self._active.add(doc.id)
            try:
                started.append(self._pool.submit(self._execute_then_release, doc.id))
            except RuntimeError:  # the pool shut down meanwhile
                with self._lock:
                    self._active.discard(doc.id)
                return started
        return started

    def _free_slot(self) -> bool:
        with self._lock:
            return len(self._active) < self.settings.playbooks.max_concurrent_runs

    def _due(self, body: Mapping[str, Any], now: datetime, *, leftovers: bool = False) -> bool:
        """Whether to hand the run out now: no other live holder, and (waiting for a person)
        decided or expired — or, ``leftovers``, its outboxes to empty."""
        lease = body.get("lease")
        if lease and lease.get("holder") != self.holder and parse_timestamp(str(lease["until"])) > now:
            return False
        if body.get("status") != "waiting_approval" or leftovers:
            return True
        for step in body.get("steps") or []:
            approval = step.get("approval") or {}
            if step.get("status") == "waiting_approval":
                return bool(approval.get("decision")) or parse_timestamp(str(approval["expires_at"])) <= now
        return True

    def _execute_then_release(self, run_id: str) -> str:
        try:
            return self.execute(run_id)
        except SocError as exc:
            log.error("playbook run stopped by an error", extra={"run": run_id, "error": exc.render()})
            return "error"
        except Exception:  # nobody reads the loop's futures: say it here, with the traceback
            log.exception("playbook run crashed", extra={"run": run_id})
            raise
        finally:
            with self._lock:
                self._active.discard(run_id)
                if self._saturated:
                    self._wake.set()

    # --- driving one run ----------------------------------------------------------------------
    def _lease(self, seconds: float) -> dict[str, str]:
        return {"holder": self.holder, "until": format_timestamp(utcnow() + timedelta(seconds=seconds))}

    def _claim(self, run_id: str) -> _Drive | None:
        """Take the run's lease (and start a pending run) in one write; None if another live
        process holds it, or it is final with nothing left in its outboxes (a final run with
        something left — a drive that stopped before emptying them — is taken to empty them)."""
        claimed: list[str] = []

        def change(body: dict[str, Any]) -> dict[str, Any] | None:
            claimed.clear()
            if body.get("status") in FINAL and not body.get("unflushed"):
                return None
            lease = body.get("lease")
            if lease and lease.get("holder") != self.holder and parse_timestamp(str(lease["until"])) > utcnow():
                return None
            claimed.append(str(body.get("status")))
            body["lease"] = self._lease(self.lease_seconds)
            if body.get("status") == "pending":
                body.update(status="running", started_at=now_text())
                _add_entry(body, run_id, f"{body.get('playbook')}: running")
                add_audit_entry(body, audit_entry(body, run_id, actor=actor_of(body), action="playbook.run.running"))
            return body

        # no refresh: pending and running runs are listed together (dispatch), and the run's end
        # refreshes; by id it is read at once
        doc = mutate(self.store, run_id, change, refresh=False)
        if doc is None:
            return None
        # an earlier drive may have appended what it left in the outbox (a pending run was never
        # driven: its outbox holds only its start)
        left = doc.body.get("audit_outbox") or [] if claimed[0] != "pending" else []
        return _Drive(run_id, doc, inherited={str(e.get("entry_id")) for e in left})

    def _release(self, drive: _Drive) -> None:
        """Write what is left; append the drive's audit records to the trail (one batch) and copy
        its timeline entries to the alert and case (one update each); then give the lease back
        and empty both outboxes in one write. A crash before that last write leaves the outboxes
        to the next drive, which appends only the records the trail lacks."""
        self._commit(drive)
        records = list(drive.doc.body.get("audit_outbox") or [])
        entries = list(drive.doc.body.get("timeline_outbox") or [])
        maybe_appended = any(str(e.get("entry_id")) in drive.inherited for e in records)
        appended = set(flush_audit(self.store, records, maybe_appended=maybe_appended)) if records else set()
        copied = set(flush_timelines(self.store, entries)) if entries else set()

        def change(body: dict[str, Any]) -> dict[str, Any] | None:
            if (body.get("lease") or {}).get("holder") != self.holder:
                return None
            body["lease"] = None
            body["timeline_outbox"] = [e for e in body.get("timeline_outbox") or [] if e.get("id") not in copied]
            body["audit_outbox"] = [e for e in body.get("audit_outbox") or [] if e.get("entry_id") not in appended]
            body["unflushed"] = bool(body["timeline_outbox"] or body["audit_outbox"])
            return body

        mutate(self.store, drive.run_id, change, current=drive.doc, refresh=False)

    def _commit(
        self,
        drive: _Drive,
        change: Change | None = None,
        notes: Sequence[_Note] = (),
        *,
        cancellable: bool = False,
        refresh: bool = False,
    ) -> bool:
        """Write the deferred changes and ``change`` in one conditional write, with their timeline
        entries and audit records in the run's outboxes (appended when the drive ends). False when
        ``change`` was not applied: it declined (returned None), or, ``cancellable``, a person
        asked to cancel the run meanwhile (the deferred changes are written all the same).

        ``refresh``: make the run searchable at once — for changes of the run's status, which
        lists filter on; a step's progress is read by id only."""
        parts = [*drive.deferred, (change, list(notes), cancellable)] if change or notes else list(drive.deferred)
        if not parts:
            return True
        applied: list[bool] = []

        def apply(body: dict[str, Any]) -> dict[str, Any] | None:
            applied.clear()
            before = dict(body)
            for part, part_notes, stops_on_cancel in parts:
                if stops_on_cancel and (body.get("cancel_requested") or body.get("status") in FINAL):
                    continue
                if part is not None:
                    changed = part(body)
                    if changed is None:
                        continue
                    body = changed
                for note in part_notes:
                    _add_entry(body, drive.run_id, note.text)
                    add_audit_entry(
                        body,
                        audit_entry(body, drive.run_id, actor=actor_of(body), action=note.action, details=note.details),
                    )
                if part is change:
                    applied.append(True)
            return None if body == before else body

        doc = mutate(self.store, drive.run_id, apply, current=drive.doc, refresh=refresh)
        drive.deferred.clear()
        if doc is not None:
            drive.doc = doc
        drive.view = dict(drive.doc.body)
        return bool(applied) or change is None

    def _defer(self, drive: _Drive, change: Change, notes: Sequence[_Note] = ()) -> None:
        """A change written with the next one (a step that ended is written with the next step
        starting, or the run finishing); seen at once in ``drive.view``."""
        drive.deferred.append((change, list(notes), False))
        drive.view = change(dict(drive.view)) or drive.view

    def execute(self, run_id: str) -> str:
        """Drive a run as far as it goes now (to its end, or to a gate waiting for a person);
        its status then. A run another live process holds is left alone."""
        drive = self._claim(run_id)
        if drive is None:
            return str(get_run(self.store, run_id).body.get("status"))
        try:
            if drive.view.get("status") in FINAL:  # taken only to empty its outboxes
                return str(drive.view["status"])
            return self._drive(drive)
        finally:
            self._release(drive)

    def _drive(self, drive: _Drive) -> str:
        playbook = Playbook.model_validate(drive.view["definition"])
        for step in playbook.steps:
            if self.stop_event.is_set():
                self._commit(drive)
                return str(drive.view.get("status"))
            if drive.view.get("cancel_requested"):
                return self._finish(drive, "cancelled", f"cancelled by {drive.view.get('cancelled_by')}")
            outcome = str(step_record(drive.view, step.id)["status"])
            if outcome == "running":
                outcome = self._recover(drive, step)
            if outcome in ("pending", "waiting_approval"):
                outcome = self._run_step(drive, playbook, step)
            if outcome == "cancel_requested":
                return self._finish(drive, "cancelled", f"cancelled by {drive.view.get('cancelled_by')}")
            if outcome in ("waiting", "paused"):
                self._commit(drive)
                return str(drive.view.get("status"))
            if outcome in ("failed", "cancelled", "interrupted") and step.on_error == "stop":
                return self._finish(drive, outcome, f"step {step.id} {outcome}")
        return self._finish(drive, "succeeded", None)

    def _recover(self, drive: _Drive, step: Step) -> str:
        """A step left ``running`` by a process that stopped: run it again only if its action
        is idempotent."""
        name = drive.view.get("playbook")
        action = ACTIONS.get(step.action)
        if action is not None and action.idempotent:
            self._defer(
                drive,
                _step_change(step.id, status="pending"),
                [_Note("playbook.step.resumed", f"{name}: step {step.id} resumed after a restart", {"step": step.id})],
            )
            return "pending"
        self._defer(
            drive,
            _step_change(
                step.id,
                status="interrupted",
                finished_at=now_text(),
                error="the process running this step stopped; not repeated because the action is not idempotent"
                " — check by hand what it did",
            ),
            [
                _Note(
                    "playbook.step.interrupted", f"{name}: step {step.id} interrupted (not repeated)", {"step": step.id}
                )
            ],
        )
        return "interrupted"

    def _context(self, body: Mapping[str, Any]) -> dict[str, Any]:
        alert: dict[str, Any] = {}
        case: dict[str, Any] = {}
        if body.get("alert_id"):
            alert = {**self.store.get_doc("alerts", str(body["alert_id"])).body, "id": body["alert_id"]}
        if body.get("case_id"):
            try:
                case = {**self.store.get_doc("cases", str(body["case_id"])).body, "id": body["case_id"]}
            except NotFound:
                case = {}
        steps = {
            s["id"]: {"output": s.get("output") or {}, "status": s.get("status")}
            for s in body.get("steps") or []
            if s.get("status") in STEP_DONE
        }
        run = {
            k: body.get(k) for k in ("playbook", "tenant", "dry_run", "trigger", "started_by", "alert_id", "case_id")
        }
        # the agency's contacts (playbooks.agencies): whom notify steps tell; none configured
        # gives empty ones, so a step guarded by `if: agency.email` is skipped, not failed
        contact = self.settings.playbooks.agencies.get(str(body.get("tenant")))
        agency = {"id": body.get("tenant"), **(contact or AgencyContact()).model_dump(mode="json")}
        return {
            "alert": alert,
            "case": case,
            "inputs": dict(body.get("inputs") or {}),
            "steps": steps,
            "run": run,
            "agency": agency,
        }

    def _step_failed(self, drive: _Drive, step_id: str, error: str, *, status: str = "failed") -> str:
        self._defer(
            drive,
            _step_change(step_id, status=status, error=error, finished_at=now_text()),
            [
                _Note(
                    f"playbook.step.{status}",
                    f"{drive.view.get('playbook')}: step {step_id} {status}: {error}",
                    {"step": step_id, "error": error},
                )
            ],
        )
        return status

    def _run_step(self, drive: _Drive, playbook: Playbook, step: Step) -> str:
        record = step_record(drive.view, step.id)
        context = self._context(drive.view)
        action_cls = ACTIONS.get(step.action)
        if action_cls is None:
            return self._step_failed(drive, step.id, f"no action {step.action!r} is registered in this process")
        approval = record.get("approval")
        if approval is None:  # the condition is decided once, before anyone is asked to approve
            if step.if_ is not None:
                try:
                    wanted = evaluate(step.if_, context, what=f"step {step.id} if")
                except PlaybookError as exc:
                    return self._step_failed(drive, step.id, exc.render())
                if not wanted:
                    self._defer(
                        drive,
                        _step_change(step.id, status="skipped", finished_at=now_text()),
                        [
                            _Note(
                                "playbook.step.skipped",
                                f"{playbook.name}: step {step.id} skipped (if: false)",
                                {"step": step.id},
                            )
                        ],
                    )
                    return "skipped"
            if step.approval is not None or action_cls.gated:
                return self._ask_approval(drive, playbook, step)
        elif approval.get("decision") == "rejected":
            return self._step_failed(drive, step.id, f"rejected by {approval.get('decided_by')}", status="cancelled")
        elif approval.get("decision") != "approved":
            if parse_timestamp(str(approval["expires_at"])) <= utcnow():
                return self._step_failed(
                    drive, step.id, f"the approval expired at {approval['expires_at']}", status="cancelled"
                )
            return "waiting"
        return self._attempts(drive, step, context)

    def _ask_approval(self, drive: _Drive, playbook: Playbook, step: Step) -> str:
        gate = step.approval
        requested = utcnow()
        expires = requested + approval_expiry(playbook, step.id, self.settings.playbooks.approval_expiry_minutes)
        roles: list[str] = list(gate.roles) if gate else ["admin"]
        approval = {
            "roles": roles,
            "agency": gate.agency if gate else "own",
            "requested_at": format_timestamp(requested),
            "expires_at": format_timestamp(expires),
            "decision": None,
            "decided_by": None,
            "decided_at": None,
            "comment": None,
        }

        def change(body: dict[str, Any]) -> dict[str, Any]:
            body["status"] = "waiting_approval"
            return with_step(body, step.id, status="waiting_approval", approval=approval)

        note = _Note(
            "playbook.step.waiting_approval",
            f"{playbook.name}: step {step.id} waits for approval by {', '.join(roles)} until {approval['expires_at']}",
            {"step": step.id},
        )
        if not self._commit(drive, change, [note], cancellable=True, refresh=True):
            return "cancel_requested"
        return "waiting"

    def _attempts(self, drive: _Drive, step: Step, context: Mapping[str, Any]) -> str:
        action_cls = ACTIONS[step.action]
        body = drive.view
        try:
            rendered = render(step.with_, context, what=f"step {step.id} with")
            params = action_cls.Params.model_validate(rendered)
        except PlaybookError as exc:
            return self._step_failed(drive, step.id, exc.render())
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(params)'}: {e['msg']}" for e in exc.errors()
            )
            return self._step_failed(drive, step.id, f"parameters of {step.action} are not valid: {problems}")
        dry_run = bool(body.get("dry_run")) or (action_cls.gated and not body.get("live_gated"))
        ctx = ActionContext(
            run_id=drive.run_id,
            step_id=step.id,
            tenant=str(body["tenant"]),
            dry_run=dry_run,
            settings=self.settings,
            store=self.store,
            secrets=self.secrets,
        )
        shown = redact(rendered, self.secrets)
        attempts = int(step_record(body, step.id).get("attempts") or 0)
        while True:
            attempts += 1
            started = step_record(drive.view, step.id).get("started_at") or now_text()
            resumed = drive.view.get("status") == "waiting_approval"  # an approved step: the run goes on
            running = _step_change(
                step.id,
                lease=self._lease(step.timeout + self.lease_seconds),
                run_status="running",
                status="running",
                attempts=attempts,
                params=shown,
                started_at=started,
                error=None,
            )
            note = _Note(
                "playbook.step.running",
                f"{drive.view.get('playbook')}: step {step.id} running (attempt {attempts})"
                + (" — dry run" if dry_run else ""),
                {"step": step.id, "attempt": attempts, "dry_run": dry_run},
            )
            # written before the action acts, so a restart knows it may have acted
            if not self._commit(drive, running, [note], cancellable=True, refresh=resumed):
                return "cancel_requested"
            call = self._call(action_cls(), ctx, params, step.timeout)
            if call.result is not None:
                return self._succeeded(drive, step, call.result, started)
            error = call.error or "failed"
            retry = attempts <= step.retries and (action_cls.idempotent or not call.timed_out)
            if retry and not get_run(self.store, drive.run_id).body.get("cancel_requested"):
                delay = min(self.settings.playbooks.retry_backoff_seconds * 2 ** (attempts - 1), MAX_BACKOFF)
                # pending while waiting: a restart now runs the retry that was due anyway
                self._commit(
                    drive,
                    _step_change(
                        step.id,
                        lease=self._lease(delay + self.lease_seconds),
                        status="pending",
                        error=f"attempt {attempts}: {error}; retrying in {delay:g} s",
                    ),
                )
                if self.stop_event.wait(delay):
                    return "paused"
                continue
            if call.timed_out and not action_cls.idempotent and attempts <= step.retries:
                error += " (not retried: the action is not idempotent and may have acted)"
            return self._step_failed(drive, step.id, f"attempt {attempts}: {error}")

    def _call(self, action: Any, ctx: ActionContext, params: Any, timeout: float) -> _Call:
        """The action in a thread of its own, waited for ``timeout`` seconds. A thread that
        overruns cannot be killed: it is left behind (daemon) and its result ignored."""
        call = _Call()

        def target() -> None:
            audit.IMMEDIATE_REFRESH.set(False)  # this thread's own context: the action's writes
            try:
                result = action.run(ctx, params)
                if not isinstance(result, ActionResult):
                    raise PlaybookError(
                        f"action {type(action).name} returned {type(result).__name__}, not ActionResult"
                    )
                call.result = result
            except SocError as exc:
                call.error = exc.render()
            except Exception as exc:  # an action's bug becomes the step's error, logged in full
                log.exception("playbook action crashed", extra={"run": ctx.run_id, "step": ctx.step_id})
                call.error = f"internal error in action {type(action).name}: {type(exc).__name__}: {exc}"

        thread = threading.Thread(target=target, name=f"playbook-step-{ctx.run_id[:12]}-{ctx.step_id}", daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            return _Call(error=f"timed out after {timeout:g} s", timed_out=True)
        return call

    def _succeeded(self, drive: _Drive, step: Step, result: ActionResult, started: str) -> str:
        output = redact(dict(result.output), self.secrets)
        case_id = output.get("case_id") if isinstance(output.get("case_id"), str) else None
        finished = now_text()
        duration = _ms(started)

        def change(body: dict[str, Any]) -> dict[str, Any]:
            if case_id and not body.get("case_id"):
                body["case_id"] = case_id  # a case the step opened: later steps and the timeline see it
            return with_step(
                body,
                step.id,
                status="succeeded",
                output=output,
                changed=result.changed,
                error=None,
                finished_at=finished,
                duration_ms=duration,
            )

        text = f"{drive.view.get('playbook')}: step {step.id} succeeded" + ("" if result.changed else " (no change)")
        # written with the next step's start or the run's end: one write per transition
        self._defer(
            drive, change, [_Note("playbook.step.succeeded", text, {"step": step.id, "changed": result.changed})]
        )
        return "succeeded"

    def _finish(self, drive: _Drive, status: str, error: str | None) -> str:
        finished = now_text()
        left = "cancelled" if status == "cancelled" else "skipped"

        def change(body: dict[str, Any]) -> dict[str, Any] | None:
            if body.get("status") in FINAL:
                return None
            body.update(status=status, error=error, finished_at=finished, duration_ms=_ms(body.get("started_at")))
            body["steps"] = [
                {**s, "status": left, "finished_at": finished}
                if s.get("status") in ("pending", "waiting_approval")
                else s
                for s in body.get("steps") or []
            ]
            return body

        note = _Note(
            f"playbook.run.{status}",
            f"{drive.view.get('playbook')}: run {status}" + (f" ({error})" if error else ""),
            {"error": error} if error else None,
        )
        if not self._commit(drive, change, [note], refresh=True):  # someone else ended it
            return str(get_run(self.store, drive.run_id).body.get("status"))
        return str(drive.view.get("status"))


class RunnerThread(threading.Thread):
    """The runner's poll loop in the engine process (``soc up --role engine|all``)."""

    def __init__(self, runner: Runner) -> None:
        super().__init__(name="playbook-runner", daemon=True)
        self.runner = runner
        self.stop_event = runner.stop_event

    def run(self) -> None:
        try:
            self.runner.run_forever()
        finally:
            self.runner.close(wait=False)


__all__ = ["CHECKPOINT_ID", "LATE_SWEEP_POLLS", "Runner", "RunnerThread"]
