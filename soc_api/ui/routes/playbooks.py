"""Playbooks in the UI: the list (with the problems of broken files), a run's steps (refreshed
while it runs), the approvals waiting for the user (counted in the top bar), the "run playbook"
panel of alert and case pages and the active containment blocks.

The same services and scoping as the API (:mod:`soc_api.routes.playbooks`); every change is
audited there.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from playbooks.actions.contain import list_blocks
from playbooks.records import ACTIVE
from playbooks.service import approvals_for, cancel_run, decide, list_runs, may_approve, rerun, start_run, visible_run
from soc_api.client import client_address
from soc_api.deps import CurrentPrincipal, SettingsDep, StoreDep, TenantScope
from soc_api.routes.playbooks import library_of, problem_of, request_id_of, summary_of, unblock
from soc_api.ui.forms import FormDep
from soc_api.ui.render import render
from soc_core.errors import InvalidInput, PlaybookError
from soc_core.store import Doc, Store
from workflow.alerts import visible_alert
from workflow.cases import visible_case
from workflow.principals import Principal

router = APIRouter(include_in_schema=False)

ID = Annotated[str, Path(max_length=200)]
RECENT_RUNS = 20


def _run_view(doc: Doc, principal: Principal) -> dict[str, Any]:
    """A run for a template, each waiting step marked with whether this user may decide it."""
    body = doc.body
    steps = []
    for step in body.get("steps") or []:
        approval = step.get("approval") or {}
        waiting = step.get("status") == "waiting_approval" and not approval.get("decision")
        steps.append({**step, "may_decide": waiting and may_approve(principal, approval, str(body.get("tenant")))})
    return {**body, "id": doc.id, "steps": steps, "active": body.get("status") in ACTIVE}


# --- playbooks and runs ---------------------------------------------------------------------------
@router.get("/ui/playbooks", response_class=HTMLResponse)
def playbook_list(
    request: Request, store: StoreDep, settings: SettingsDep, scope: TenantScope, principal: CurrentPrincipal
) -> HTMLResponse:
    library = library_of(settings)
    runs = list_runs(store, scope=scope, size=RECENT_RUNS).items
    return render(
        request,
        "playbooks.html",
        playbooks=[summary_of(p, library.sources[name]) for name, p in sorted(library.playbooks.items())],
        problems=[problem_of(error) for error in library.errors],
        runs=[_run_view(doc, principal) for doc in runs],
    )


@router.get("/ui/playbooks/panel", response_class=HTMLResponse)
def run_panel(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    scope: TenantScope,
    principal: CurrentPrincipal,
    alert_id: Annotated[str, Query(max_length=200)] = "",
    case_id: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    """The "run playbook" panel of an alert or case page: its runs and the control."""
    if alert_id:
        visible_alert(store, alert_id, scope)
    elif case_id:
        visible_case(store, case_id, scope)
    else:
        raise InvalidInput("give alert_id or case_id")
    runs = list_runs(store, scope=scope, alert_id=alert_id or None, case_id=case_id or None, size=RECENT_RUNS).items
    return render(
        request,
        "_run_panel.html",
        alert_id=alert_id,
        case_id=case_id,
        names=sorted(library_of(settings).playbooks),
        runs=[_run_view(doc, principal) for doc in runs],
        may_run=principal.may("playbooks:run"),
    )


@router.post("/ui/playbooks/run", response_class=HTMLResponse)
def run_playbook(
    request: Request,
    form: FormDep,
    store: StoreDep,
    settings: SettingsDep,
    scope: TenantScope,
    principal: CurrentPrincipal,
) -> Response:
    """Start a run and go to its page. The dry-run box is ticked by default; unticked, gated
    (containment) steps act for real once approved."""
    doc = start_run(
        store,
        playbook=library_of(settings).get(form.get("playbook")),
        alert_id=form.get("alert_id") or None,
        case_id=form.get("case_id") or None,
        scope=scope,
        actor=principal.id,
        dry_run=form.get("dry_run") == "on",
        request_id=request_id_of(request),
    )
    return Response(status_code=204, headers={"HX-Redirect": f"/ui/playbook-runs/{doc.id}"})


@router.get("/ui/playbook-runs/{run_id}", response_class=HTMLResponse)
def run_page(
    run_id: ID, request: Request, store: StoreDep, scope: TenantScope, principal: CurrentPrincipal
) -> HTMLResponse:
    return render(request, "run.html", run=_run_view(visible_run(store, run_id, scope), principal))


@router.get("/ui/playbook-runs/{run_id}/steps", response_class=HTMLResponse)
def run_steps(
    run_id: ID, request: Request, store: StoreDep, scope: TenantScope, principal: CurrentPrincipal
) -> HTMLResponse:
    """The run's body alone: htmx polls it while the run is active."""
    return render(request, "_run_body.html", run=_run_view(visible_run(store, run_id, scope), principal))


@router.post("/ui/playbook-runs/{run_id}/cancel", response_class=HTMLResponse)
def cancel(
    run_id: ID, request: Request, store: StoreDep, scope: TenantScope, principal: CurrentPrincipal
) -> HTMLResponse:
    doc = cancel_run(store, run_id=run_id, scope=scope, actor=principal.id, request_id=request_id_of(request))
    return render(request, "_run_body.html", run=_run_view(doc, principal))


@router.post("/ui/playbook-runs/{run_id}/rerun", response_class=HTMLResponse)
def rerun_run(
    run_id: ID, request: Request, store: StoreDep, scope: TenantScope, principal: CurrentPrincipal
) -> Response:
    doc = rerun(store, run_id=run_id, scope=scope, actor=principal.id, request_id=request_id_of(request))
    return Response(status_code=204, headers={"HX-Redirect": f"/ui/playbook-runs/{doc.id}"})


@router.post("/ui/playbook-runs/{run_id}/steps/{step_id}", response_class=HTMLResponse)
def decide_step(
    run_id: ID,
    step_id: Annotated[str, Path(max_length=40)],
    request: Request,
    form: FormDep,
    store: StoreDep,
    principal: CurrentPrincipal,
) -> HTMLResponse:
    """Approve or reject a gate, from the run page or the approvals page (``back``)."""
    decision = form.get("decision")
    if decision not in ("approve", "reject"):
        raise InvalidInput(f"unknown decision {decision!r}", hint="approve or reject")
    doc = decide(
        store,
        run_id=run_id,
        step_id=step_id,
        principal=principal,
        approve=decision == "approve",
        comment=form.get("comment"),
        request_id=request_id_of(request),
        source_ip=client_address(request),
    )
    if form.get("back") == "approvals":
        return render(
            request, "_approvals_body.html", waiting=_waiting(store, principal), notice=f"approvals.done_{decision}"
        )
    return render(request, "_run_body.html", run=_run_view(doc, principal))


# --- approvals ------------------------------------------------------------------------------------
def _waiting(store: Store, principal: Principal) -> list[dict[str, Any]]:
    return [{"run": _run_view(doc, principal), "step": step} for doc, step in approvals_for(store, principal)]


@router.get("/ui/approvals", response_class=HTMLResponse)
def approvals(request: Request, store: StoreDep, principal: CurrentPrincipal) -> HTMLResponse:
    return render(request, "approvals.html", waiting=_waiting(store, principal), notice="")


@router.get("/ui/approvals/count", response_class=HTMLResponse)
def approvals_count(request: Request, store: StoreDep, principal: CurrentPrincipal) -> HTMLResponse:
    """The top bar's badge: how many gates wait for this user."""
    return render(request, "_approvals_count.html", count=len(approvals_for(store, principal)))


# --- containment ----------------------------------------------------------------------------------
def _blocks(store: Store, scope: tuple[str, ...] | None) -> list[dict[str, Any]]:
    return [{**doc.body, "id": doc.id} for doc in list_blocks(store, tenants=scope)]


@router.get("/ui/blocks", response_class=HTMLResponse)
def blocks(request: Request, store: StoreDep, scope: TenantScope) -> HTMLResponse:
    return render(request, "blocks.html", blocks=_blocks(store, scope), notice="", error="")


@router.post("/ui/blocks/{block_id}/unblock", response_class=HTMLResponse)
def unblock_one(
    block_id: ID,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    scope: TenantScope,
    principal: CurrentPrincipal,
) -> HTMLResponse:
    try:
        unblock(block_id, request, store, settings, scope, principal)
    except PlaybookError as exc:  # the gateway or nftables refused: the block stays, the page says why
        return render(
            request, "_blocks_body.html", status_code=502, blocks=_blocks(store, scope), notice="", error=exc.render()
        )
    return render(request, "_blocks_body.html", blocks=_blocks(store, scope), notice="blocks.lifted", error="")


__all__ = ["router"]
