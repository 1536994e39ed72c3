"""The alert queue and alert detail with triage actions."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any, cast

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from detections import lifecycle
from detections.loader import LoadedRule
from soc_api.deps import CurrentPrincipal, StoreDep, TenantScope
from soc_api.routes.alerts import actor_of, apply_bulk, to_public
from soc_api.schemas import AlertUpdate, BulkAlertUpdate, CommentCreate
from soc_api.ui.forms import Form, FormDep
from soc_api.ui.render import render
from soc_core.alert_status import ALERT_STATUSES, CLASSIFICATIONS, OPEN_STATUSES, SETTABLE_STATUSES
from soc_core.auth import PROVINCE
from soc_core.errors import Conflict, InvalidInput
from soc_core.events import parse_timestamp
from soc_core.store import Doc, Store
from soc_core.store.base import decode_cursor, encode_cursor
from workflow import alerts
from workflow.principals import Principal

router = APIRouter(prefix="/ui/alerts", include_in_schema=False)

LEVELS = ("critical", "high", "medium", "low", "informational")
PAGE_SIZE = 50
COUNT_CAP = 10_000  # the status counts scan at most this many alerts
ENTITY_COLUMNS = ("source.ip", "user.name", "host.name")
ALL = "all"  # the status filter's "any status" (no status parameter means the open ones)
EVENTS_PER_PAGE = 20
STRIP_EVENTS = 500  # matched events placed on the timeline strip
SIMILAR_SCAN = 500  # the agency's most recent alerts searched for a shared entity
SIMILAR_SHOWN = 10


def _checked(values: list[str], allowed: tuple[str, ...], what: str) -> list[str]:
    chosen = [v for v in values if v]
    unknown = sorted(set(chosen) - set(allowed))
    if unknown:
        raise InvalidInput(f"unknown {what} {unknown[0]!r}", hint=f"use one of {', '.join(allowed)}")
    return chosen


def status_counts(
    store: Store, tenants: tuple[str, ...] | None, filters: dict[str, Any]
) -> tuple[dict[str, int], bool]:
    """Alerts per status under the other filters; ``True`` when the scan hit the cap."""
    counts: dict[str, int] = dict.fromkeys(ALERT_STATUSES, 0)
    seen = 0
    cursor = None
    while seen < COUNT_CAP:
        page = store.list_docs("alerts", tenants=tenants, filters=filters, sort="last_seen", size=1000, cursor=cursor)
        for doc in page.items:
            status = str(doc.body.get("status", "new"))
            counts[status] = counts.get(status, 0) + 1
        seen += len(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return counts, False
    return counts, True


def agency_names(store: Store) -> dict[str, str]:
    """Agency id → name, for the queue's column and filter."""
    return {doc.id: str(doc.body.get("name") or doc.id) for doc in store.list_docs("tenants", size=1000).items}


def visible_agencies(names: dict[str, str], scope: tuple[str, ...] | None) -> list[str]:
    """The agencies whose alerts the user sees, by name (more than one: the queue shows and
    filters by agency)."""
    return sorted(
        (t for t in names if t != PROVINCE and (scope is None or t in scope)), key=lambda t: names[t].casefold()
    )


def by_level_then_time(
    store: Store, tenants: tuple[str, ...] | None, filters: dict[str, Any], levels: list[str], cursor: str
) -> tuple[list[Doc], str | None]:
    """One page of alerts, the most severe level first and the latest first within a level.

    The stores sort by one top-level field, so each level is read in turn; the page's cursor
    names the level it stopped in and the store's cursor within it."""
    order = [level for level in LEVELS if not levels or level in levels]
    start, inner = 0, cast(str | None, None)
    if cursor:
        try:
            level_at, inner_at = decode_cursor(cursor)
            start = order.index(str(level_at))
        except ValueError as exc:
            raise InvalidInput("this page link is no longer valid", where="cursor", hint="start again") from exc
        inner = None if inner_at is None else str(inner_at)
    items: list[Doc] = []
    for position in range(start, len(order)):
        level = order[position]
        page = store.list_docs(
            "alerts",
            tenants=tenants,
            filters={**filters, "rule.level": level},
            sort="last_seen",
            size=PAGE_SIZE - len(items),
            cursor=inner,
        )
        items.extend(page.items)
        inner = page.next_cursor
        if len(items) >= PAGE_SIZE:
            if inner is not None:
                return items, encode_cursor([level, inner])
            following = order[position + 1 : position + 2]
            return items, encode_cursor([following[0], None]) if following else None
    return items, None


@router.get("", response_class=HTMLResponse)
def queue(
    request: Request,
    store: StoreDep,
    scope: TenantScope,
    status: Annotated[list[str], Query(max_length=20)] = [],  # noqa: B006 - FastAPI copies defaults
    level: Annotated[list[str], Query(max_length=20)] = [],  # noqa: B006
    rule_id: Annotated[str, Query(max_length=200)] = "",
    assignee: Annotated[str, Query(max_length=100)] = "",
    tenant: Annotated[str, Query(max_length=40)] = "",
    cursor: Annotated[str, Query(max_length=2000)] = "",
) -> HTMLResponse:
    """Open alerts by default (``status=all`` for every status), by level then time."""
    chosen = [ALL] if ALL in status else _checked(status, ALERT_STATUSES, "status")
    statuses = [] if chosen == [ALL] else chosen or list(OPEN_STATUSES)
    levels = _checked(level, LEVELS, "level")
    names = agency_names(store)
    agencies = visible_agencies(names, scope)
    tenants = scope
    if tenant:
        if tenant not in agencies:
            raise InvalidInput(f"unknown agency {tenant!r}", where="tenant", hint="pick one from the list")
        tenants = (tenant,)
    filters: dict[str, Any] = {}
    if levels:
        filters["rule.level"] = levels
    if rule_id.strip():
        filters["rule.id"] = rule_id.strip()
    if assignee.strip():
        filters["assignee"] = assignee.strip()
    counts, capped = status_counts(store, tenants, filters)
    if statuses:
        filters["status"] = statuses
    items, next_cursor = by_level_then_time(store, tenants, filters, levels, cursor)
    params = {
        "status": chosen,
        "level": levels,
        "rule_id": rule_id.strip(),
        "assignee": assignee.strip(),
        "tenant": tenant,
    }
    return render(
        request,
        "alerts.html",
        alerts=[to_public(doc) for doc in items],
        next_cursor=next_cursor,
        first_page=not cursor,
        params=params,
        counts=counts,
        counts_capped=capped,
        statuses=ALERT_STATUSES,
        settable=SETTABLE_STATUSES,
        classifications=CLASSIFICATIONS,
        levels=LEVELS,
        show_tenant=len(agencies) > 1,
        agency_choices=[(t, names[t]) for t in agencies],
        agency_names=names,
        entity_columns=ENTITY_COLUMNS,
    )


_BULK_ACTIONS = ("assign_me", "assign", "status", "tag", "close_fp")


def _bulk_change(form: Form, principal: Principal) -> dict[str, Any]:
    action = form.get("bulk")
    if action == "assign_me":
        return {"assignee": principal.id}
    if action == "assign":
        return {"assignee": form.get("assignee")}
    if action == "status":
        chosen = form.get("status")
        classification = form.get("classification") or None
        return {"status": chosen or None, "classification": classification, "note": form.get("note") or None}
    if action == "tag":
        return {"add_tags": form.getlist("tag")}
    if action == "close_fp":
        return {"classification": "false_positive", "note": form.get("note") or None}
    raise InvalidInput(
        f"unknown bulk action {action[:40]!r}", where="bulk", hint=f"use one of {', '.join(_BULK_ACTIONS)}"
    )


@router.post("/bulk", response_class=HTMLResponse)
def bulk(
    request: Request, form: FormDep, store: StoreDep, scope: TenantScope, principal: CurrentPrincipal
) -> HTMLResponse:
    """The queue's bulk bar, through the same code as ``POST /api/alerts/bulk``: each selected
    alert on its current version, agency-scoped and audited; answers with a summary and the
    changed rows."""
    ids = form.getlist("alert_id")
    try:
        change = BulkAlertUpdate(ids=ids, **_bulk_change(form, principal))
    except ValidationError as exc:
        problem = exc.errors()[0]
        message = "bulk.none_selected" if problem["loc"] == ("ids",) else "bulk.invalid"
        detail = "" if problem["loc"] == ("ids",) else str(problem["msg"]).removeprefix("Value error, ")
        return render(request, "_bulk_result.html", status_code=422, error=message, detail=detail, results=[], rows=[])
    results = apply_bulk(request, store, scope, principal, change)
    tally = Counter(item.status for item in results)
    updated = [alerts.visible_alert(store, item.id, scope) for item in results if item.status == "updated"]
    names = agency_names(store)
    return render(
        request,
        "_bulk_result.html",
        error="",
        detail="",
        results=results,
        tally=tally,
        rows=[to_public(doc) for doc in updated],
        show_tenant=len(visible_agencies(names, scope)) > 1,
        agency_names=names,
        entity_columns=ENTITY_COLUMNS,
    )


def rule_facts(loaded: LoadedRule | None) -> dict[str, Any] | None:
    """What an analyst needs of the rule: description, threshold and window, false positives."""
    if loaded is None:
        return None
    rule: Any = loaded.rule
    condition = getattr(rule, "condition", None)
    timespan = getattr(rule, "timespan", None)
    threshold = None
    if condition is not None:
        symbol = {"LT": "<", "LTE": "≤", "GT": ">", "GTE": "≥", "EQ": "="}.get(condition.op.name, condition.op.name)
        threshold = f"{symbol} {condition.count}"
    return {
        "title": loaded.title,
        "description": (rule.description or "").strip(),
        "threshold": threshold,
        "window": timespan.spec if timespan is not None else None,
        "group_by": list(getattr(rule, "group_by", None) or []),
        "falsepositives": [str(item) for item in (rule.falsepositives or [])],
        "references": [str(item) for item in (rule.references or [])],
    }


def _rule_of(request: Request, store: Store, rule_id: str | None) -> LoadedRule | None:
    if not rule_id:
        return None
    ruleset, _ = lifecycle.effective_rules(store, request.app.state.rules_dirs)
    return ruleset.get(rule_id) if rule_id in ruleset else None


def timeline_strip(stamps: list[str], first: str | None, last: str | None) -> list[float]:
    """Where each matched event falls between the alert's first and last sighting, 0-100 (%)."""
    moments = [parse_timestamp(stamp) for stamp in stamps if stamp]
    if not moments:
        return []
    start = parse_timestamp(first) if first else min(moments)
    end = parse_timestamp(last) if last else max(moments)
    start, end = min(start, *moments), max(end, *moments)
    span = (end - start).total_seconds()
    return sorted(round((m - start).total_seconds() / span * 100, 2) if span else 50.0 for m in moments)


def similar_alerts(store: Store, doc: Doc) -> list[Doc]:
    """Other alerts of the same agency sharing an entity value with this one (recent ones first;
    the stores filter on top-level fields only, so the agency's latest alerts are searched)."""
    wanted = {(field, str(v)) for field, values in (doc.body.get("entities") or {}).items() for v in values or []}
    if not wanted:
        return []
    tenant = str(doc.body.get("tenant"))
    page = store.list_docs("alerts", tenants=(tenant,), sort="last_seen", size=SIMILAR_SCAN)
    found = []
    for other in page.items:
        entities = other.body.get("entities") or {}
        shared = {(field, str(v)) for field, values in entities.items() for v in values or []}
        if other.id != doc.id and wanted & shared:
            found.append(other)
        if len(found) == SIMILAR_SHOWN:
            break
    return found


def _detail_context(request: Request, store: Store, doc: Doc, event_page: int) -> dict[str, Any]:
    tenant = str(doc.body.get("tenant"))
    ids = list(doc.body.get("event_ids") or [])
    pages = max(1, -(-len(ids) // EVENTS_PER_PAGE))
    if not 1 <= event_page <= pages:
        raise InvalidInput(f"no page {event_page} of matched events", where="events", hint=f"pages run 1-{pages}")
    shown = ids[(event_page - 1) * EVENTS_PER_PAGE : event_page * EVENTS_PER_PAGE]
    events = store.get_events(shown, tenants=(tenant,))
    strip_events = store.get_events(ids[:STRIP_EVENTS], tenants=(tenant,))
    public = to_public(doc)
    names = agency_names(store)
    return {
        "alert": public,
        "seen": alerts.triage_view(doc.body),
        "agency_name": names.get(tenant, tenant),
        "events": events,
        "event_page": event_page,
        "event_pages": pages,
        "event_total": len(ids),
        "strip": timeline_strip(
            [str(e.get("@timestamp") or "") for e in strip_events], public["first_seen"], public["last_seen"]
        ),
        "rule": rule_facts(_rule_of(request, store, public["rule_id"])),
        "similar": [to_public(other) for other in similar_alerts(store, doc)],
        "comments": doc.body.get("comments") or [],
        "timeline": doc.body.get("timeline") or [],  # playbook runs' entries (playbooks.records)
    }


@router.get("/{alert_id}", response_class=HTMLResponse)
def detail(
    alert_id: str,
    request: Request,
    store: StoreDep,
    scope: TenantScope,
    events: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    doc = alerts.visible_alert(store, alert_id, scope)
    return render(
        request,
        "alert.html",
        statuses=ALERT_STATUSES,
        classifications=CLASSIFICATIONS,
        **_detail_context(request, store, doc, events),
    )


def _triage(
    request: Request, doc: Doc, *, message: str = "", error: str = "", detail: str = "", status: int = 200
) -> HTMLResponse:
    return render(
        request,
        "_triage.html",
        status_code=status,
        alert=to_public(doc),
        seen=alerts.triage_view(doc.body),
        statuses=ALERT_STATUSES,
        classifications=CLASSIFICATIONS,
        message=message,
        error=error,
        detail=detail,
    )


@router.post("/{alert_id}", response_class=HTMLResponse)
def triage(
    alert_id: str, request: Request, form: FormDep, store: StoreDep, scope: TenantScope, principal: CurrentPrincipal
) -> HTMLResponse:
    """One triage action from the panel; answers with the panel re-rendered (fresh version).

    The form carries the version and the triage fields it was rendered with (``seen``): when
    the alert moved on only by comments or timeline entries (the user's own comment, a
    playbook's note), the change applies to the current version instead of failing."""
    action = form.get("action")
    value = form.get("value")
    change: dict[str, Any] = {"version": form.get("version")}
    if action == "status":
        change["status"] = value
    elif action == "close":
        change["classification"] = value or None
        change["note"] = form.get("note") or None
    elif action == "assign":
        change["assignee"] = value or principal.id
    elif action == "unassign":
        change["unassign"] = True
    elif action == "tag":
        change["add_tags"] = [value]
    elif action == "untag":
        change["remove_tags"] = [value]
    else:
        raise InvalidInput(f"unknown action {action!r}")
    current = alerts.visible_alert(store, alert_id, scope)  # 404 before anything else
    try:
        update = AlertUpdate(**change)
    except ValidationError as exc:
        detail = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        return _triage(request, current, error="triage.invalid", detail=detail, status=422)
    version = update.version
    for _ in range(5):
        try:
            doc = alerts.update_alert(
                store,
                alert_id=alert_id,
                version=version,
                scope=scope,
                actor=actor_of(request, principal),
                status=update.status,
                assignee=update.assignee,
                unassign=update.unassign,
                add_tags=update.add_tags,
                remove_tags=update.remove_tags,
                classification=update.classification,
                note=update.note,
            )
        except Conflict:
            fresh = alerts.visible_alert(store, alert_id, scope)
            if alerts.triage_view(fresh.body) != form.get("seen"):
                return _triage(request, fresh, error="triage.conflict", status=409)
            version = fresh.version  # nothing this form shows has changed: apply it on top
        except alerts.WorkflowError:
            return _triage(request, current, error="triage.refused", status=422)
        else:
            return _triage(request, doc, message="triage.saved")
    fresh = alerts.visible_alert(store, alert_id, scope)
    return _triage(request, fresh, error="triage.conflict", status=409)


@router.post("/{alert_id}/comments", response_class=HTMLResponse)
def comment(
    alert_id: str, request: Request, form: FormDep, store: StoreDep, scope: TenantScope, principal: CurrentPrincipal
) -> HTMLResponse:
    try:
        text = CommentCreate(text=form.get("text")).text
    except ValidationError:
        doc = alerts.visible_alert(store, alert_id, scope)
        return render(
            request,
            "_comments.html",
            status_code=422,
            alert=to_public(doc),
            comments=doc.body.get("comments") or [],
            error="comment.invalid",
        )
    doc = alerts.add_comment(store, alert_id=alert_id, scope=scope, actor=actor_of(request, principal), text=text)
    # the comment moved the alert's version: the triage panel comes along (out of band) so its
    # forms carry the new one
    return render(
        request,
        "_comments.html",
        alert=to_public(doc),
        comments=doc.body.get("comments") or [],
        error="",
        triage_oob=True,
        seen=alerts.triage_view(doc.body),
        statuses=ALERT_STATUSES,
        classifications=CLASSIFICATIONS,
    )


__all__ = ["LEVELS", "agency_names", "by_level_then_time", "router", "similar_alerts", "status_counts"]
