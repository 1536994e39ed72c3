"""The run record: one ``playbook_runs`` document per run, its steps inside it.

::

    {"tenant", "playbook", "playbook_version", "definition" (the playbook as it was started),
     "trigger": "alert" | "manual" | "rerun", "started_by", "alert_id", "case_id", "rerun_of",
     "inputs" (secrets redacted), "dry_run", "live_gated", "status", "error",
     "cancel_requested", "cancelled_by", "lease": {"holder", "until"} | None,
     "timeline_outbox": [timeline entries not yet copied to the alert and case],
     "audit_outbox": [audit records (workflow.audit.entry) not yet appended to the trail],
     "unflushed": true while either outbox holds something (a final run's leftovers are found by it),
     "created_at", "updated_at", "started_at", "finished_at", "duration_ms",
     "steps": [{"id", "action", "status", "attempts", "params" (rendered, redacted), "output",
                "error", "started_at", "finished_at", "duration_ms",
                "approval": {"roles", "agency", "requested_at", "expires_at",
                             "decision", "decided_by", "decided_at", "comment"} | None}]}

Every write is a conditional update (:func:`mutate`): the runner holding the run's lease writes
the steps, people write a cancel request or an approval decision, and whoever loses a race reads
again and re-applies. Each status change is written to the audit trail (actor
``playbook:<name>`` or the person) and to the ``timeline`` of the run's alert and case.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, SecretStr

from playbooks.format import SECRET_NAME
from soc_core.config import Settings
from soc_core.errors import Conflict, NotFound, PlaybookError
from soc_core.events import format_timestamp, utcnow
from soc_core.store import Doc, Store
from workflow import audit
from workflow.principals import Actor, Principal

KIND = "playbook_runs"
RunStatus = Literal["pending", "running", "waiting_approval", "succeeded", "failed", "cancelled", "interrupted"]
StepStatus = Literal[
    "pending", "running", "waiting_approval", "succeeded", "failed", "skipped", "cancelled", "interrupted"
]
ACTIVE: tuple[RunStatus, ...] = ("pending", "running", "waiting_approval")
FINAL: tuple[RunStatus, ...] = ("succeeded", "failed", "cancelled", "interrupted")
STEP_DONE: tuple[StepStatus, ...] = ("succeeded", "failed", "skipped", "cancelled", "interrupted")
REDACTED = "***"
MAX_TIMELINE = 2000


def now_text() -> str:
    return format_timestamp(utcnow())


def auto_run_id(playbook: str, alert_id: str) -> str:
    """The one run an alert-triggered playbook gets for an alert: every engine process, before
    and after a restart, computes the same id, and creating it twice is a Conflict."""
    return "auto-" + hashlib.sha256(f"{playbook}\0{alert_id}".encode()).hexdigest()[:40]


# --- secrets ---------------------------------------------------------------------------------


def config_secrets(settings: Settings) -> dict[str, str]:
    """Every secret of the configuration (``SecretStr`` values, and text under secret-looking
    keys: passwords, tokens, keys), by dotted key: handed to actions as ``ctx.secrets`` and
    blanked out of every record."""
    found: dict[str, str] = {}

    def walk(value: Any, path: str, named_secret: bool) -> None:
        if isinstance(value, SecretStr):
            if value.get_secret_value():
                found[path] = value.get_secret_value()
        elif isinstance(value, BaseModel):
            for key in type(value).model_fields:
                child = f"{path}.{key}" if path else key
                walk(getattr(value, key), child, bool(SECRET_NAME.search(key)))
        elif isinstance(value, Mapping):
            for key, item in value.items():
                walk(item, f"{path}.{key}", bool(SECRET_NAME.search(str(key))))
        elif named_secret and isinstance(value, str) and value:
            found[path] = value

    walk(settings, "", False)
    return found


def redact(value: Any, secrets: Mapping[str, str] | None = None) -> Any:
    """``value`` with secret-named keys and every known secret value blanked out."""
    known = [secret for secret in (secrets or {}).values() if len(secret) >= 4]

    def clean(item: Any) -> Any:
        if isinstance(item, Mapping):
            return {
                str(key): REDACTED
                if SECRET_NAME.search(str(key)) and item_value not in (None, "")
                else clean(item_value)
                for key, item_value in item.items()
            }
        if isinstance(item, list | tuple):
            return [clean(part) for part in item]
        if isinstance(item, str):
            for secret in known:
                item = item.replace(secret, REDACTED)
        return item

    return clean(value)


# --- reading and writing runs ------------------------------------------------------------------


def get_run(store: Store, run_id: str) -> Doc:
    try:
        return store.get_doc(KIND, run_id)
    except NotFound:
        raise NotFound(f"no playbook run {run_id!r}") from None


def step_record(body: Mapping[str, Any], step_id: str) -> dict[str, Any]:
    for step in body.get("steps") or []:
        if step.get("id") == step_id:
            return dict(step)
    raise PlaybookError(f"run has no step {step_id!r}")


def with_step(body: dict[str, Any], step_id: str, **changes: Any) -> dict[str, Any]:
    """``body`` with the changes applied to one step (a new steps list: bodies are shared)."""
    body["steps"] = [{**step, **changes} if step.get("id") == step_id else step for step in body.get("steps") or []]
    return body


def mutate(
    store: Store,
    run_id: str,
    change: Callable[[dict[str, Any]], dict[str, Any] | None],
    *,
    current: Doc | None = None,
    refresh: bool = True,
) -> Doc | None:
    """Apply ``change`` to the run's current body and write it if still current; on a race read
    again and apply again. ``change`` returns None to write nothing (then None is returned).
    ``current``: the document as the caller last wrote or read it (the runner holding the
    lease), tried first without reading it again. ``refresh`` as for ``Store.update_doc``."""
    doc = current
    for _ in range(50):
        if doc is None:
            doc = get_run(store, run_id)
        body = change(dict(doc.body))
        if body is None:
            return None
        body["updated_at"] = now_text()
        try:
            return store.update_doc(KIND, run_id, body, version=doc.version, refresh=refresh)
        except Conflict:
            doc = None
            continue
    raise Conflict(f"playbook run {run_id} kept changing; try again")


# --- audit and timelines ---------------------------------------------------------------------


def record_change(
    store: Store,
    body: Mapping[str, Any],
    run_id: str,
    *,
    actor: str,
    action: str,
    text: str,
    details: Mapping[str, Any] | None = None,
    request_id: str | None = None,
    source_ip: str | None = None,
) -> None:
    """One run or step change in the audit trail and on the alert's and case's timelines."""
    audit_change(
        store, body, run_id, actor=actor, action=action, details=details, request_id=request_id, source_ip=source_ip
    )
    entry = {"at": now_text(), "actor": actor, "kind": "playbook", "text": text, "run_id": run_id}
    for kind, key in (("alerts", "alert_id"), ("cases", "case_id")):
        if body.get(key):
            append_timeline(store, kind, str(body[key]), entry)


def audit_change(
    store: Store,
    body: Mapping[str, Any],
    run_id: str,
    *,
    actor: str,
    action: str,
    details: Mapping[str, Any] | None = None,
    request_id: str | None = None,
    source_ip: str | None = None,
    refresh: bool = True,
) -> None:
    """The audit record of one run or step change (``body``: the run after it)."""
    audit.record(
        store,
        actor=actor,
        action=action,
        tenant=body.get("tenant"),
        target=f"{KIND}/{run_id}",
        after={"status": body.get("status"), **(details or {})},
        request_id=request_id,
        source_ip=source_ip,
        details={"playbook": body.get("playbook")},
        refresh=refresh,
    )


def audit_entry(
    body: Mapping[str, Any], run_id: str, *, actor: str, action: str, details: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """:func:`audit_change`'s record, made now and kept in the run's ``audit_outbox`` (written
    with the change itself) until :func:`flush_audit` appends the outbox as one batch."""
    return audit.entry(
        actor=actor,
        action=action,
        tenant=body.get("tenant"),
        target=f"{KIND}/{run_id}",
        after={"status": body.get("status"), **(details or {})},
        details={"playbook": body.get("playbook")},
        entry_id=f"{run_id}:{uuid.uuid4().hex}",
    )


def add_audit_entry(body: dict[str, Any], entry: Mapping[str, Any]) -> None:
    body["audit_outbox"] = [*(body.get("audit_outbox") or []), dict(entry)]
    body["unflushed"] = True


def flush_audit(
    store: Store, entries: Sequence[Mapping[str, Any]], *, maybe_appended: bool, refresh: bool = False
) -> list[str]:
    """Append a run's outbox records to the audit trail as one batch; the entry ids handled, to
    drop from the outbox. ``maybe_appended``: the outbox was left by an earlier drive, which
    may have appended it and stopped before emptying it — those already in the trail are
    looked up (one search) and not appended twice."""
    present = audit.appended_entries(store, [str(e["entry_id"]) for e in entries]) if maybe_appended else set()
    audit.record_batch(store, [e for e in entries if e["entry_id"] not in present], refresh=refresh)
    return [str(e["entry_id"]) for e in entries]


def append_timeline(store: Store, kind: str, doc_id: str, entry: Mapping[str, Any]) -> None:
    """Append to an alert's or case's ``timeline`` (re-reading on a race with triage)."""
    for _ in range(20):
        try:
            doc = store.get_doc(kind, doc_id)
        except NotFound:
            return  # deleted meanwhile: the audit trail still has the change
        timeline = [*(doc.body.get("timeline") or []), dict(entry)][-MAX_TIMELINE:]
        try:
            store.update_doc(kind, doc_id, {**doc.body, "timeline": timeline}, version=doc.version)
        except Conflict:
            continue
        return
    raise Conflict(f"{kind}/{doc_id} kept changing; its timeline misses a playbook entry")


def timeline_entry(body: Mapping[str, Any], run_id: str, *, actor: str, text: str) -> dict[str, Any]:
    """A timeline entry for the run's alert and case (those it has now), kept in the run's
    ``timeline_outbox`` until :func:`flush_timelines` copies it there: the runner writes the
    entries of a whole drive in one update per alert and case, and an entry written with its
    change survives a crash before the copy."""
    targets = [[kind, str(body[key])] for kind, key in (("alerts", "alert_id"), ("cases", "case_id")) if body.get(key)]
    return {
        "id": uuid.uuid4().hex,
        "at": now_text(),
        "actor": actor,
        "kind": "playbook",
        "text": text,
        "run_id": run_id,
        "targets": targets,
    }


def flush_timelines(store: Store, entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """Append outbox entries to their alerts' and cases' timelines, one update per document;
    entries already there (by id: a copy cut short by a crash) are not added twice. The ids
    handled, to drop from the outbox."""
    by_target: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for entry in entries:
        shown = {k: v for k, v in entry.items() if k != "targets"}
        for kind, doc_id in entry.get("targets") or []:
            by_target.setdefault((str(kind), str(doc_id)), []).append(shown)
    for (kind, doc_id), new in by_target.items():
        for _ in range(20):
            try:
                doc = store.get_doc(kind, doc_id)
            except NotFound:
                break  # deleted meanwhile: the audit trail still has the changes
            timeline = list(doc.body.get("timeline") or [])
            present = {item.get("id") for item in timeline if isinstance(item, Mapping)}
            missing = [item for item in new if item["id"] not in present]
            if not missing:
                break
            try:  # a timeline is read by id, never searched: no refresh needed
                store.update_doc(
                    kind,
                    doc_id,
                    {**doc.body, "timeline": [*timeline, *missing][-MAX_TIMELINE:]},
                    version=doc.version,
                    refresh=False,
                )
            except Conflict:
                continue
            break
        else:
            raise Conflict(f"{kind}/{doc_id} kept changing; its timeline misses playbook entries")
    return [str(entry["id"]) for entry in entries]


def actor_of(body: Mapping[str, Any]) -> str:
    return f"playbook:{body.get('playbook')}"


@dataclass(frozen=True)
class Subject:
    """What a step acts on: its run's playbook, agency, alert and case (read fresh: an earlier
    step may have opened the case)."""

    playbook: str
    tenant: str
    alert_id: str | None
    case_id: str | None

    @property
    def actor(self) -> Actor:
        """Who the services record as acting: the playbook, with no rights of its own (the
        services are called with the run's agency as scope)."""
        return Actor(principal=Principal(id=f"playbook:{self.playbook}", name=self.playbook, kind="playbook"))

    @property
    def scope(self) -> tuple[str, ...]:
        return (self.tenant,)


def subject(store: Store, run_id: str, tenant: str) -> Subject:
    """The subject of a step of ``run_id``; the run must belong to ``tenant`` (the context's)."""
    body = get_run(store, run_id).body
    if body.get("tenant") != tenant:
        raise PlaybookError(f"run {run_id} does not act for agency {tenant}")
    alert_id, case_id = body.get("alert_id"), body.get("case_id")
    if alert_id and not case_id:  # a case opened for the alert outside this run
        case_id = store.get_doc("alerts", str(alert_id)).body.get("case_id")
    return Subject(str(body.get("playbook")), tenant, alert_id, case_id)


__all__ = [
    "ACTIVE",
    "FINAL",
    "KIND",
    "REDACTED",
    "STEP_DONE",
    "RunStatus",
    "StepStatus",
    "Subject",
    "actor_of",
    "add_audit_entry",
    "append_timeline",
    "audit_change",
    "audit_entry",
    "auto_run_id",
    "config_secrets",
    "flush_audit",
    "flush_timelines",
    "get_run",
    "mutate",
    "now_text",
    "record_change",
    "redact",
    "step_record",
    "subject",
    "timeline_entry",
    "with_step",
]
