"""Cases: one investigation over one or many alerts of the same agency.

A case collects its alerts, the observables found in them (IPs, domains, users, hosts, hashes —
extracted automatically from the alerts' entities and matched events), tasks, and a timeline
of everything that happened to it. Closing a case needs a classification.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from soc_core.alert_status import with_response_times
from soc_core.errors import Conflict, NotFound, NotVisible
from soc_core.events import format_timestamp, utcnow
from soc_core.store import Doc, Store
from workflow import audit
from workflow.alerts import WorkflowError, visible_alert
from workflow.principals import Actor

CASE_STATUSES = ("open", "in_progress", "closed")
CLASSIFICATIONS = ("true_positive", "false_positive", "benign", "duplicate", "inconclusive")
MAX_ALERTS = 500
MAX_OBSERVABLES = 1000
MAX_HUNTS = 100

OBSERVABLE_FIELDS: dict[str, str] = {
    "source.ip": "ip",
    "destination.ip": "ip",
    "client.ip": "ip",
    "server.ip": "ip",
    "related.ip": "ip",
    "url.domain": "domain",
    "dns.question.name": "domain",
    "tls.client.server_name": "domain",
    "destination.domain": "domain",
    "user.name": "user",
    "user.target.name": "user",
    "related.user": "user",
    "host.name": "host",
    "host.hostname": "host",
    "related.hosts": "host",
    "file.hash.md5": "hash",
    "file.hash.sha1": "hash",
    "file.hash.sha256": "hash",
    "process.hash.md5": "hash",
    "process.hash.sha1": "hash",
    "process.hash.sha256": "hash",
    "related.hash": "hash",
}


def _values(value: Any) -> Iterable[str]:
    if isinstance(value, list | tuple):
        for item in value:
            yield from _values(item)
    elif value not in (None, "", "-"):
        yield str(value)


def _valid(kind: str, value: str) -> bool:
    if kind == "ip":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return False
    return 0 < len(value) <= 512


def extract_observables(sources: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Pure: (type, value) pairs from flat events or alert ``entities`` maps, first seen first."""
    seen: dict[tuple[str, str], None] = {}
    for source in sources:
        for field, kind in OBSERVABLE_FIELDS.items():
            for value in _values(source.get(field)):
                if _valid(kind, value):
                    seen.setdefault((kind, value.lower() if kind in ("domain", "hash") else value), None)
    return [{"type": kind, "value": value} for kind, value in list(seen)[:MAX_OBSERVABLES]]


def _entry(actor: Actor, kind: str, text: str) -> dict[str, str]:
    return {"at": format_timestamp(utcnow()), "actor": actor.principal.id, "kind": kind, "text": text}


def create_case(
    store: Store,
    *,
    title: str,
    description: str,
    severity: str,
    alert_ids: Sequence[str],
    scope: tuple[str, ...] | None,
    actor: Actor,
) -> Doc:
    alert_docs = [visible_alert(store, alert_id, scope) for alert_id in dict.fromkeys(alert_ids)]
    if len(alert_docs) > MAX_ALERTS:
        raise WorkflowError(f"a case links at most {MAX_ALERTS} alerts")
    tenants = {doc.body.get("tenant") for doc in alert_docs}
    if len(tenants) != 1:
        raise WorkflowError("a case links alerts of one agency only")
    for doc in alert_docs:
        if doc.body.get("case_id"):
            raise WorkflowError(f"alert {doc.id} is already in case {doc.body['case_id']}")
    tenant = str(tenants.pop())
    events = store.get_events(
        [i for doc in alert_docs for i in (doc.body.get("event_ids") or [])][:1000], tenants=(tenant,)
    )
    now = format_timestamp(utcnow())
    case_id = uuid.uuid4().hex
    body = {
        "tenant": tenant,
        "title": title,
        "description": description,
        "severity": severity,
        "status": "open",
        "assignee": None,
        "classification": None,
        "alert_ids": [doc.id for doc in alert_docs],
        "observables": extract_observables([*(doc.body.get("entities") or {} for doc in alert_docs), *events]),
        "tasks": [],
        "timeline": [_entry(actor, "created", f"case opened from {len(alert_docs)} alert(s)")],
        "created_at": now,
        "updated_at": now,
        "created_by": actor.principal.id,
    }
    case = store.create_doc("cases", body, doc_id=case_id, refresh=audit.refreshing())
    for doc in alert_docs:
        _link_alert(store, doc.id, case_id)
    audit.record(
        store,
        actor=actor.principal.id,
        action="case.create",
        tenant=tenant,
        target=f"cases/{case_id}",
        after={"title": title, "alert_ids": body["alert_ids"]},
        request_id=actor.request_id,
        source_ip=actor.source_ip,
    )
    return case


def _link_alert(store: Store, alert_id: str, case_id: str) -> None:
    for _ in range(10):
        doc = store.get_doc("alerts", alert_id)
        status = doc.body.get("status", "new")
        body = {**doc.body, "case_id": case_id, "updated_at": format_timestamp(utcnow())}
        if status == "new":
            body["status"] = "in_progress"
            body.setdefault("acknowledged_at", body["updated_at"])
        body = with_response_times(body)
        try:
            store.update_doc("alerts", alert_id, body, version=doc.version, refresh=audit.refreshing())
        except Conflict:
            continue
        return
    raise WorkflowError(f"alert {alert_id} kept changing; link it again")


def visible_case(store: Store, case_id: str, scope: tuple[str, ...] | None) -> Doc:
    doc = store.get_doc("cases", case_id)
    if scope is not None and doc.body.get("tenant") not in scope:
        raise NotVisible("no such case", target=f"cases/{case_id}", owner=doc.body.get("tenant"))
    return doc


def update_case(
    store: Store,
    *,
    case_id: str,
    version: str,
    scope: tuple[str, ...] | None,
    actor: Actor,
    status: str | None = None,
    assignee: str | None = None,
    classification: str | None = None,
    add_task: str | None = None,
    complete_task: str | None = None,
    comment: str | None = None,
) -> Doc:
    doc = visible_case(store, case_id, scope)
    body = dict(doc.body)
    timeline = list(body.get("timeline") or [])
    if status is not None and status != body.get("status"):
        if status == "closed" and not (classification or body.get("classification")):
            raise WorkflowError("closing a case needs a classification")
        timeline.append(_entry(actor, "status", f"{body.get('status')} → {status}"))
        body["status"] = status
        if status == "closed":
            body["closed_at"] = format_timestamp(utcnow())
    if classification is not None:
        body["classification"] = classification
        timeline.append(_entry(actor, "classification", classification))
    if assignee is not None:
        body["assignee"] = assignee
        timeline.append(_entry(actor, "assignee", assignee))
    tasks = [dict(task) for task in body.get("tasks") or []]
    if add_task:
        tasks.append({"id": uuid.uuid4().hex[:12], "title": add_task, "done": False})
        timeline.append(_entry(actor, "task", f"added: {add_task}"))
    if complete_task:
        matching = [task for task in tasks if task["id"] == complete_task]
        if not matching:
            raise NotFound(f"no task {complete_task!r} in this case")
        matching[0]["done"] = True
        timeline.append(_entry(actor, "task", f"done: {matching[0]['title']}"))
    if comment:
        timeline.append(_entry(actor, "comment", comment))
    body.update(tasks=tasks, timeline=timeline[-2000:], updated_at=format_timestamp(utcnow()))
    updated = store.update_doc("cases", case_id, body, version=version, refresh=audit.refreshing())
    audit.record(
        store,
        actor=actor.principal.id,
        action="case.update",
        tenant=body.get("tenant"),
        target=f"cases/{case_id}",
        before={k: doc.body.get(k) for k in ("status", "assignee", "classification")},
        after={k: body.get(k) for k in ("status", "assignee", "classification")},
        request_id=actor.request_id,
        source_ip=actor.source_ip,
    )
    return updated


def _change_case(
    store: Store,
    case_id: str,
    scope: tuple[str, ...] | None,
    change: Callable[[dict[str, Any]], dict[str, Any]],
) -> tuple[Doc, Doc]:
    """Apply ``change`` to the case's current body, re-reading on a race (changes made without
    the caller's version: appends that cannot lose anyone's edit). (before, after)."""
    for _ in range(10):
        doc = visible_case(store, case_id, scope)
        body = change(dict(doc.body))
        body["updated_at"] = format_timestamp(utcnow())
        try:
            return doc, store.update_doc("cases", case_id, body, version=doc.version, refresh=audit.refreshing())
        except Conflict:
            continue
    raise WorkflowError(f"case {case_id} kept changing; try again")


def add_observables(
    store: Store, *, case_id: str, observables: Sequence[Mapping[str, str]], scope: tuple[str, ...] | None, actor: Actor
) -> tuple[Doc, list[dict[str, str]]]:
    """Add observables the case does not hold yet; the case and those added."""
    added: list[dict[str, str]] = []

    def change(body: dict[str, Any]) -> dict[str, Any]:
        held = {(o.get("type"), o.get("value")) for o in body.get("observables") or []}
        added[:] = [
            {"type": str(o["type"]), "value": str(o["value"])}
            for o in observables
            if (o["type"], o["value"]) not in held
        ]
        room = MAX_OBSERVABLES - len(held)
        del added[max(room, 0) :]
        body["observables"] = [*(body.get("observables") or []), *added]
        if added:
            text = ", ".join(f"{o['type']} {o['value']}" for o in added[:20])
            body["timeline"] = [*(body.get("timeline") or []), _entry(actor, "observables", f"added: {text}")][-2000:]
        return body

    _, updated = _change_case(store, case_id, scope, change)
    if added:
        audit.record(
            store,
            actor=actor.principal.id,
            action="case.observables",
            tenant=updated.body.get("tenant"),
            target=f"cases/{case_id}",
            after={"added": added},
            request_id=actor.request_id,
            source_ip=actor.source_ip,
        )
    return updated, added


def link_alerts(
    store: Store, *, case_id: str, alert_ids: Sequence[str], scope: tuple[str, ...] | None, actor: Actor
) -> tuple[Doc, list[str]]:
    """Link more alerts of the case's agency that are in no case yet; the case and those linked."""
    case = visible_case(store, case_id, scope)
    tenant = case.body.get("tenant")
    wanted = []
    for alert_id in dict.fromkeys(alert_ids):
        doc = visible_alert(store, alert_id, scope)
        if doc.body.get("tenant") != tenant:
            raise WorkflowError("a case links alerts of one agency only")
        if doc.body.get("case_id") not in (None, case_id):
            raise WorkflowError(f"alert {alert_id} is already in case {doc.body['case_id']}")
        if alert_id not in (case.body.get("alert_ids") or []):
            wanted.append(alert_id)
    if len(case.body.get("alert_ids") or []) + len(wanted) > MAX_ALERTS:
        raise WorkflowError(f"a case links at most {MAX_ALERTS} alerts")

    def change(body: dict[str, Any]) -> dict[str, Any]:
        current = list(body.get("alert_ids") or [])
        body["alert_ids"] = current + [a for a in wanted if a not in current]
        if wanted:
            text = f"linked {len(wanted)} related alert(s): {', '.join(wanted[:20])}"
            body["timeline"] = [*(body.get("timeline") or []), _entry(actor, "alerts", text)][-2000:]
        return body

    _, updated = _change_case(store, case_id, scope, change)
    for alert_id in wanted:
        _link_alert(store, alert_id, case_id)
    if wanted:
        audit.record(
            store,
            actor=actor.principal.id,
            action="case.link",
            tenant=tenant,
            target=f"cases/{case_id}",
            after={"alert_ids": wanted},
            request_id=actor.request_id,
            source_ip=actor.source_ip,
        )
    return updated, wanted


def attach_hunt(
    store: Store, *, case_id: str, hunt: Mapping[str, Any], scope: tuple[str, ...] | None, actor: Actor
) -> Doc:
    """Keep a hunt's results (query, ids, summary) on the case; one per ``hunt["key"]``."""

    def change(body: dict[str, Any]) -> dict[str, Any]:
        hunts = [h for h in body.get("hunts") or [] if h.get("key") != hunt.get("key")]
        body["hunts"] = [*hunts, dict(hunt)][-MAX_HUNTS:]
        text = f"hunt {hunt.get('query')!r}: {hunt.get('count')} event(s)"
        body["timeline"] = [*(body.get("timeline") or []), _entry(actor, "hunt", text)][-2000:]
        return body

    _, updated = _change_case(store, case_id, scope, change)
    audit.record(
        store,
        actor=actor.principal.id,
        action="case.hunt",
        tenant=updated.body.get("tenant"),
        target=f"cases/{case_id}",
        after={"query": hunt.get("query"), "count": hunt.get("count")},
        request_id=actor.request_id,
        source_ip=actor.source_ip,
    )
    return updated


__all__ = [
    "CASE_STATUSES",
    "CLASSIFICATIONS",
    "add_observables",
    "attach_hunt",
    "create_case",
    "extract_observables",
    "link_alerts",
    "update_case",
    "visible_case",
]
