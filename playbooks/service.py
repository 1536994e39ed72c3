"""What people (the API, the UI, the CLI) do with playbook runs: start one on an alert, cancel,
rerun, approve or reject a gated step, list runs. Keyword-only functions over a store; the
runner (:mod:`playbooks.runner`) does the work of a run.

Scope: ``scope`` is the caller's agencies (None: province-wide). A run on an alert of another
agency does not exist for the caller (:class:`NotVisible`, answered as 404).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from playbooks.actions.base import ACTIONS
from playbooks.format import Playbook
from playbooks.records import (
    ACTIVE,
    FINAL,
    KIND,
    actor_of,
    audit_entry,
    auto_run_id,
    get_run,
    mutate,
    now_text,
    record_change,
    redact,
    step_record,
    timeline_entry,
    with_step,
)
from soc_core.auth import PROVINCE
from soc_core.errors import Conflict, NotVisible, PlaybookError
from soc_core.events import parse_timestamp, utcnow
from soc_core.store import Doc, Page, Store
from soc_core.store.base import DocWrite
from workflow.alerts import visible_alert
from workflow.cases import visible_case
from workflow.principals import Principal


class ApprovalRefused(PlaybookError):
    """The person may not decide this gate (role or agency, or an API key)."""


class NothingToDecide(ApprovalRefused):
    """The step is not waiting for a decision (never gated yet, decided already, or expired):
    the request conflicts with the run's state, not with who asks."""


def _new_run(
    playbook: Playbook,
    *,
    tenant: str,
    alert_id: str | None,
    case_id: str | None,
    trigger: str,
    started_by: str,
    inputs: Mapping[str, Any],
    dry_run: bool,
    live_gated: bool,
    rerun_of: str | None = None,
) -> dict[str, Any]:
    now = now_text()
    return {
        "tenant": tenant,
        "playbook": playbook.name,
        "playbook_version": playbook.version,
        "definition": playbook.model_dump(mode="json", by_alias=True),
        "trigger": trigger,
        "started_by": started_by,
        "alert_id": alert_id,
        "case_id": case_id,
        "rerun_of": rerun_of,
        "inputs": redact(dict(inputs)),
        "dry_run": dry_run,
        "live_gated": live_gated,
        "status": "pending",
        "error": None,
        "cancel_requested": False,
        "cancelled_by": None,
        "lease": None,
        "created_at": now,
        "updated_at": now,
        "started_at": None,
        "finished_at": None,
        "duration_ms": None,
        "steps": [
            {
                "id": step.id,
                "action": step.action,
                "status": "pending",
                "attempts": 0,
                "params": None,
                "output": None,
                "error": None,
                "started_at": None,
                "finished_at": None,
                "duration_ms": None,
                "approval": None,
            }
            for step in playbook.steps
        ],
    }


def start_run(
    store: Store,
    *,
    playbook: Playbook,
    alert_id: str | None = None,
    case_id: str | None = None,
    scope: tuple[str, ...] | None,
    actor: str,
    inputs: Mapping[str, Any] | None = None,
    dry_run: bool | None = None,
    request_id: str | None = None,
) -> Doc:
    """A person starts ``playbook`` on an alert (or a case) they can see: a pending run the
    runner picks up (or the caller executes at once). ``dry_run`` None takes the playbook's;
    only an explicit ``dry_run=False`` lets gated (containment) steps act for real."""
    if (alert_id is None) == (case_id is None):
        raise PlaybookError("start a run on one alert or one case", hint="give alert_id or case_id")
    if alert_id is not None:
        subject = visible_alert(store, alert_id, scope)
        case_id = subject.body.get("case_id")
    else:
        subject = visible_case(store, str(case_id), scope)
    body = _new_run(
        playbook,
        tenant=str(subject.body["tenant"]),
        alert_id=alert_id,
        case_id=case_id,
        trigger="manual",
        started_by=actor,
        inputs=playbook.resolve_inputs(inputs or {}),
        dry_run=playbook.dry_run if dry_run is None else dry_run,
        live_gated=dry_run is False,
    )
    run_id = uuid.uuid4().hex
    doc = store.create_doc(KIND, body, doc_id=run_id)
    record_change(
        store,
        body,
        run_id,
        actor=actor,
        action="playbook.run.start",
        text=f"{playbook.name}: started",
        request_id=request_id,
    )
    return doc


def start_auto_run(store: Store, *, playbook: Playbook, alert_id: str, alert: Mapping[str, Any]) -> Doc | None:
    """The run an alert-triggered playbook gets for a new alert, once: None if it exists
    already (another engine process, or this one before a restart, made it)."""
    return start_auto_runs(store, [(playbook, alert_id, alert)])[0]


def start_auto_runs(store: Store, starts: Sequence[tuple[Playbook, str, Mapping[str, Any]]]) -> list[Doc | None]:
    """:func:`start_auto_run` for many (playbook, alert id, alert) at once — one bulk write
    (one refresh) for the runs of a page of new alerts; per start the run, or None if it exists
    already. A playbook whose inputs cannot be resolved raises before anything is written."""
    made: list[tuple[str, dict[str, Any]]] = []
    for playbook, alert_id, alert in starts:
        body = _new_run(
            playbook,
            tenant=str(alert["tenant"]),
            alert_id=alert_id,
            case_id=alert.get("case_id"),
            trigger="alert",
            started_by=f"playbook:{playbook.name}",
            inputs=playbook.resolve_inputs({}),
            dry_run=playbook.dry_run,
            live_gated=False,
        )
        run_id = auto_run_id(playbook.name, alert_id)
        # the runner that made it drives it and copies its outbox to the alert's timeline then
        body["timeline_outbox"] = [
            timeline_entry(body, run_id, actor=actor_of(body), text=f"{playbook.name}: started by alert")
        ]
        # its audit record too: appended with the run's first drive, in the batch of its records
        body["audit_outbox"] = [audit_entry(body, run_id, actor=actor_of(body), action="playbook.run.start")]
        body["unflushed"] = True
        made.append((run_id, body))
    if not made:
        return []
    written = store.write_docs(KIND, [DocWrite(run_id, body) for run_id, body in made])
    return [None if isinstance(result, Conflict) else result for result in written]  # a Conflict: made already


def visible_run(store: Store, run_id: str, scope: tuple[str, ...] | None) -> Doc:
    doc = get_run(store, run_id)
    if scope is not None and doc.body.get("tenant") not in scope:
        raise NotVisible("no such playbook run", target=f"{KIND}/{run_id}", owner=doc.body.get("tenant"))
    return doc


def list_runs(
    store: Store,
    *,
    scope: tuple[str, ...] | None,
    alert_id: str | None = None,
    case_id: str | None = None,
    playbook: str | None = None,
    status: list[str] | None = None,
    size: int = 50,
    cursor: str | None = None,
) -> Page[Doc]:
    """Runs newest first, filtered by alert, case, playbook name and status."""
    filters: dict[str, Any] = {}
    if alert_id:
        filters["alert_id"] = alert_id
    if case_id:
        filters["case_id"] = case_id
    if playbook:
        filters["playbook"] = playbook
    if status:
        filters["status"] = status
    return store.list_docs(KIND, tenants=scope, filters=filters, size=size, cursor=cursor)


def cancel_run(
    store: Store, *, run_id: str, scope: tuple[str, ...] | None, actor: str, request_id: str | None = None
) -> Doc:
    """Stop a run: one not executing (pending, waiting for an approval) is cancelled at once;
    one executing stops before its next step (a step already running finishes)."""
    visible_run(store, run_id, scope)

    def change(body: dict[str, Any]) -> dict[str, Any]:
        if body.get("status") in FINAL:
            raise PlaybookError(f"run {run_id} is {body.get('status')} already")
        body.update(cancel_requested=True, cancelled_by=actor)
        if body.get("status") in ("pending", "waiting_approval"):
            finished = now_text()
            body.update(status="cancelled", finished_at=finished, lease=None)
            body["steps"] = [
                {**step, "status": "cancelled", "finished_at": finished}
                if step.get("status") in ("pending", "waiting_approval")
                else step
                for step in body.get("steps") or []
            ]
        return body

    doc = mutate(store, run_id, change)
    assert doc is not None  # change never declines
    record_change(
        store,
        doc.body,
        run_id,
        actor=actor,
        action="playbook.run.cancel",
        text=f"{doc.body.get('playbook')}: cancel asked",
        request_id=request_id,
    )
    return doc


def rerun(
    store: Store, *, run_id: str, scope: tuple[str, ...] | None, actor: str, request_id: str | None = None
) -> Doc:
    """A new run of the same playbook (as it was then) on the same alert and inputs, linked to
    the old one by ``rerun_of``."""
    old = visible_run(store, run_id, scope).body
    playbook = Playbook.model_validate(old["definition"])
    body = _new_run(
        playbook,
        tenant=str(old["tenant"]),
        alert_id=old.get("alert_id"),
        case_id=old.get("case_id"),
        trigger="rerun",
        started_by=actor,
        inputs=old.get("inputs") or {},
        dry_run=bool(old.get("dry_run")),
        live_gated=bool(old.get("live_gated")),
        rerun_of=run_id,
    )
    new_id = uuid.uuid4().hex
    doc = store.create_doc(KIND, body, doc_id=new_id)
    record_change(
        store,
        body,
        new_id,
        actor=actor,
        action="playbook.run.rerun",
        text=f"{playbook.name}: rerun of {run_id}",
        request_id=request_id,
    )
    return doc


def may_approve(principal: Principal, approval: Mapping[str, Any], tenant: str) -> bool:
    """A gate's ``roles`` held in the run's agency (``own``; province staff too) or
    province-wide (``province``)."""
    roles = set(approval.get("roles") or [])
    places = {PROVINCE} if approval.get("agency") == "province" else {PROVINCE, tenant}
    return any(m.role in roles and m.tenant in places for m in principal.memberships)


def decide(
    store: Store,
    *,
    run_id: str,
    step_id: str,
    principal: Principal,
    approve: bool,
    comment: str = "",
    request_id: str | None = None,
    source_ip: str | None = None,
) -> Doc:
    """A person approves or rejects the gate a step waits at; the runner acts on it at its
    next poll. Refused (:class:`ApprovalRefused`) unless the person holds one of the gate's
    roles in the right agency; :class:`NothingToDecide` unless the step is still waiting and not
    expired."""
    if principal.kind != "user":
        raise ApprovalRefused("approvals are given by people, not by API keys", hint="sign in as yourself")
    agencies = {m.tenant for m in principal.memberships}
    visible_run(store, run_id, None if PROVINCE in agencies else tuple(sorted(agencies)))

    def change(body: dict[str, Any]) -> dict[str, Any]:
        step = step_record(body, step_id)
        approval = step.get("approval")
        if not approval:
            raise NothingToDecide(f"step {step_id} of run {run_id} is not waiting for an approval")
        # who asks first: a person who may not decide this gate hears so whatever its state
        if not may_approve(principal, approval, str(body["tenant"])):
            where = "province-wide" if approval.get("agency") == "province" else f"in agency {body['tenant']}"
            raise ApprovalRefused(
                f"{principal.id} may not decide step {step_id}",
                hint=f"it needs one of the roles {approval.get('roles')} {where}",
            )
        decision = approval.get("decision")
        if step.get("status") != "waiting_approval" or decision:
            raise NothingToDecide(
                f"step {step_id} of run {run_id} is not waiting for an approval",
                hint=f"it was {decision} by {approval.get('decided_by')}" if decision else None,
            )
        if parse_timestamp(str(approval["expires_at"])) <= utcnow():
            raise NothingToDecide(f"the approval of step {step_id} expired at {approval['expires_at']}")
        decided = {
            **approval,
            "decision": "approved" if approve else "rejected",
            "decided_by": principal.id,
            "decided_at": now_text(),
            "comment": comment[:2000],
        }
        return with_step(body, step_id, approval=decided)

    updated = mutate(store, run_id, change)
    assert updated is not None
    verb = "approved" if approve else "rejected"
    record_change(
        store,
        updated.body,
        run_id,
        actor=principal.id,
        action=f"playbook.approval.{verb}",
        text=f"{updated.body.get('playbook')}: step {step_id} {verb}" + (f": {comment}" if comment else ""),
        details={"step": step_id, "decision": verb},
        request_id=request_id,
        source_ip=source_ip,
    )
    return updated


def approvals_for(store: Store, principal: Principal, *, limit: int = 200) -> list[tuple[Doc, dict[str, Any]]]:
    """The gates waiting for a decision this person may give (run, step), oldest first: the
    runs of their agencies (every agency for province staff), steps not decided nor expired."""
    agencies = {m.tenant for m in principal.memberships}
    tenants = None if PROVINCE in agencies else tuple(sorted(agencies))
    if principal.kind != "user" or tenants == ():
        return []
    now = utcnow()
    found: list[tuple[Doc, dict[str, Any]]] = []
    cursor: str | None = None
    while len(found) < limit:
        page = store.list_docs(
            KIND, tenants=tenants, filters={"status": "waiting_approval"}, descending=False, size=200, cursor=cursor
        )
        for doc in page.items:
            for step in doc.body.get("steps") or []:
                approval = step.get("approval") or {}
                if (
                    step.get("status") == "waiting_approval"
                    and not approval.get("decision")
                    and parse_timestamp(str(approval.get("expires_at"))) > now
                    and may_approve(principal, approval, str(doc.body.get("tenant")))
                ):
                    found.append((doc, step))
        cursor = page.next_cursor
        if cursor is None:
            break
    return found[:limit]


def approval_expiry(playbook: Playbook, step_id: str, default_minutes: float) -> timedelta:
    gate = playbook.step(step_id).approval
    seconds = gate.expires if gate and gate.expires else default_minutes * 60
    return timedelta(seconds=seconds)


def is_gated(action: str) -> bool:
    return action in ACTIONS and ACTIONS[action].gated


__all__ = [
    "ACTIVE",
    "ApprovalRefused",
    "NothingToDecide",
    "approval_expiry",
    "approvals_for",
    "cancel_run",
    "decide",
    "is_gated",
    "list_runs",
    "may_approve",
    "rerun",
    "start_auto_run",
    "start_auto_runs",
    "start_run",
    "visible_run",
]
