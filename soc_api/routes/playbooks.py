"""Playbooks: read and validate them, run them on an alert or a case, follow and steer runs
(approve or reject a gate, cancel, rerun), and lift containment blocks.

Playbooks are files (``playbooks.dirs``), deployed like rules: the API reads and validates them
and never writes them, so no route changes a playbook. Runs belong to the agency of the alert or
case they act on: another agency's run, alert, case or block answers 404 as everywhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from playbooks.actions.contain import DOC_KIND as BLOCK_KIND
from playbooks.actions.contain import list_blocks, unblock_block
from playbooks.format import Library, Playbook, check_text, configured_library
from playbooks.records import RunStatus
from playbooks.service import approvals_for, cancel_run, decide, is_gated, list_runs, rerun, start_run, visible_run
from soc_api.client import client_address
from soc_api.deps import CurrentPrincipal, SettingsDep, StoreDep, TenantScope
from soc_api.errors import ApiProblem
from soc_core.config import Settings
from soc_core.errors import PlaybookError
from soc_core.store import Doc, Store
from workflow import audit
from workflow.principals import Principal

router = APIRouter(tags=["playbooks"])


# --- shapes --------------------------------------------------------------------------------------
class PlaybookProblem(BaseModel):
    message: str
    where: str | None = None
    line: int | None = None
    hint: str | None = None


class PlaybookSummary(BaseModel):
    name: str
    description: str
    version: int
    trigger: dict[str, Any]
    dry_run: bool
    file: str
    steps: list[dict[str, Any]]


class PlaybookList(BaseModel):
    items: list[PlaybookSummary]
    errors: list[PlaybookProblem]


class PlaybookDetail(PlaybookSummary):
    source: str
    definition: dict[str, Any]


class ValidateResult(BaseModel):
    valid: bool
    errors: list[PlaybookProblem]
    playbook: dict[str, Any] | None = None


class RunRequest(BaseModel):
    alert_id: str | None = Field(None, min_length=1, max_length=200)
    case_id: str | None = Field(None, min_length=1, max_length=200)
    inputs: dict[str, Any] = Field(default_factory=dict, max_length=100)
    # None: the playbook's own dry_run; gated (containment) steps act only with an explicit false
    dry_run: bool | None = None


class RunPublic(BaseModel):
    id: str
    version: str
    tenant: str
    playbook: str
    playbook_version: int | None = None
    trigger: str
    started_by: str
    alert_id: str | None = None
    case_id: str | None = None
    rerun_of: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    dry_run: bool
    status: str
    error: str | None = None
    cancelled_by: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_ms: int | None = None
    steps: list[dict[str, Any]] = Field(default_factory=list)


class RunPage(BaseModel):
    items: list[RunPublic]
    next_cursor: str | None = None


class Decision(BaseModel):
    comment: str = Field("", max_length=2000)


class WaitingApproval(BaseModel):
    run: RunPublic
    step: dict[str, Any]


class ApprovalList(BaseModel):
    items: list[WaitingApproval]


class BlockPublic(BaseModel):
    id: str
    tenant: str
    body: dict[str, Any]


class BlockList(BaseModel):
    items: list[BlockPublic]


# --- helpers the UI shares ------------------------------------------------------------------------
def library_of(settings: Settings) -> Library:
    """The playbooks of ``playbooks.dirs`` and the shipped library, as they are on disk now (a
    deploy needs no restart) — the same set the runner loads."""
    return configured_library(settings.playbooks.dirs, shipped=settings.playbooks.library)


def problem_of(error: PlaybookError) -> PlaybookProblem:
    """A problem with its place shown by file name only (the server's folders stay private)."""
    where, line = error.where, None
    if where:
        place, _, number = where.rpartition(":")
        if number.isdigit() and place:
            where, line = f"{Path(place).name}:{number}", int(number)
        else:
            where = Path(where).name
    return PlaybookProblem(message=error.message, where=where, line=line, hint=error.hint)


def summary_of(playbook: Playbook, source: str) -> PlaybookSummary:
    return PlaybookSummary(
        name=playbook.name,
        description=playbook.description,
        version=playbook.version,
        trigger=playbook.trigger.model_dump(mode="json"),
        dry_run=playbook.dry_run,
        file=Path(source).name,
        steps=[
            {
                "id": step.id,
                "action": step.action,
                "gated": is_gated(step.action),
                "approval": step.approval.model_dump(mode="json") if step.approval else None,
            }
            for step in playbook.steps
        ],
    )


def run_public(doc: Doc) -> RunPublic:
    body = doc.body
    return RunPublic(
        id=doc.id,
        version=doc.version,
        **{key: body.get(key) for key in RunPublic.model_fields if key not in ("id", "version") and key in body},
    )


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


# --- playbooks -------------------------------------------------------------------------------------
@router.get("/api/playbooks", response_model=PlaybookList)
def list_playbooks(settings: SettingsDep) -> PlaybookList:
    """Every valid playbook of the configured folders, and every problem of the broken files."""
    library = library_of(settings)
    return PlaybookList(
        items=[summary_of(p, library.sources[name]) for name, p in sorted(library.playbooks.items())],
        errors=[problem_of(error) for error in library.errors],
    )


@router.post("/api/playbooks/validate", response_model=ValidateResult)
async def validate_playbook(request: Request) -> ValidateResult:
    """Check a playbook sent as the body (YAML text): every problem, each with its line."""
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiProblem(400, "Bad request", "send the playbook as UTF-8 YAML text") from exc
    checked = check_text(text, source="body")
    return ValidateResult(
        valid=checked.playbook is not None,
        errors=[problem_of(error) for error in checked.errors],
        playbook=checked.playbook.model_dump(mode="json", by_alias=True) if checked.playbook else None,
    )


@router.get("/api/playbooks/{name}", response_model=PlaybookDetail)
def get_playbook(name: str, settings: SettingsDep) -> PlaybookDetail:
    library = library_of(settings)
    playbook = library.get(name)
    source = library.sources[name]
    return PlaybookDetail(
        **summary_of(playbook, source).model_dump(),
        source=Path(source).read_text(encoding="utf-8"),
        definition=playbook.model_dump(mode="json", by_alias=True),
    )


@router.post("/api/playbooks/{name}/run", response_model=RunPublic, status_code=201)
def run_playbook(
    name: str,
    body: RunRequest,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    scope: TenantScope,
    principal: CurrentPrincipal,
) -> RunPublic:
    """Start a run on an alert or a case the caller can see; the engine's runner drives it."""
    doc = start_run(
        store,
        playbook=library_of(settings).get(name),
        alert_id=body.alert_id,
        case_id=body.case_id,
        scope=scope,
        actor=principal.id,
        inputs=body.inputs,
        dry_run=body.dry_run,
        request_id=request_id_of(request),
    )
    return run_public(doc)


# --- runs ------------------------------------------------------------------------------------------
@router.get("/api/playbook-runs", response_model=RunPage)
def list_playbook_runs(
    store: StoreDep,
    scope: TenantScope,
    alert_id: Annotated[str | None, Query(max_length=200)] = None,
    case_id: Annotated[str | None, Query(max_length=200)] = None,
    playbook: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[list[RunStatus] | None, Query()] = None,
    size: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> RunPage:
    """Runs newest first, filtered by alert, case, playbook and status, paged."""
    page = list_runs(
        store,
        scope=scope,
        alert_id=alert_id,
        case_id=case_id,
        playbook=playbook,
        status=list(status) if status else None,
        size=size,
        cursor=cursor,
    )
    return RunPage(items=[run_public(doc) for doc in page.items], next_cursor=page.next_cursor)


@router.get("/api/playbook-runs/{run_id}", response_model=RunPublic)
def get_playbook_run(run_id: str, store: StoreDep, scope: TenantScope) -> RunPublic:
    return run_public(visible_run(store, run_id, scope))


@router.post("/api/playbook-runs/{run_id}/cancel", response_model=RunPublic)
def cancel_playbook_run(
    run_id: str, request: Request, store: StoreDep, scope: TenantScope, principal: CurrentPrincipal
) -> RunPublic:
    """Stop a run: at once if it waits; before its next step if a step is executing."""
    return run_public(
        cancel_run(store, run_id=run_id, scope=scope, actor=principal.id, request_id=request_id_of(request))
    )


@router.post("/api/playbook-runs/{run_id}/rerun", response_model=RunPublic, status_code=201)
def rerun_playbook_run(
    run_id: str, request: Request, store: StoreDep, scope: TenantScope, principal: CurrentPrincipal
) -> RunPublic:
    """A new run of the playbook as it was, on the same alert or case and inputs."""
    return run_public(rerun(store, run_id=run_id, scope=scope, actor=principal.id, request_id=request_id_of(request)))


def _decide(
    request: Request, store: Store, principal: Principal, run_id: str, step_id: str, approve: bool, comment: str
) -> Doc:
    return decide(
        store,
        run_id=run_id,
        step_id=step_id,
        principal=principal,
        approve=approve,
        comment=comment,
        request_id=request_id_of(request),
        source_ip=client_address(request),
    )


@router.post("/api/playbook-runs/{run_id}/steps/{step_id}/approve", response_model=RunPublic)
def approve_step(
    run_id: str, step_id: str, body: Decision, request: Request, store: StoreDep, principal: CurrentPrincipal
) -> RunPublic:
    """Approve the gate a step waits at: only a person with one of the gate's roles in its
    agency (the approver is recorded)."""
    return run_public(_decide(request, store, principal, run_id, step_id, True, body.comment))


@router.post("/api/playbook-runs/{run_id}/steps/{step_id}/reject", response_model=RunPublic)
def reject_step(
    run_id: str, step_id: str, body: Decision, request: Request, store: StoreDep, principal: CurrentPrincipal
) -> RunPublic:
    """Reject the gate a step waits at (the step and the run stop)."""
    return run_public(_decide(request, store, principal, run_id, step_id, False, body.comment))


@router.get("/api/approvals", response_model=ApprovalList)
def waiting_approvals(store: StoreDep, principal: CurrentPrincipal) -> ApprovalList:
    """The gates waiting for a decision the caller may give, oldest first."""
    return ApprovalList(
        items=[WaitingApproval(run=run_public(doc), step=step) for doc, step in approvals_for(store, principal)]
    )


# --- containment -----------------------------------------------------------------------------------
@router.get("/api/containment/blocks", response_model=BlockList)
def active_blocks(store: StoreDep, scope: TenantScope) -> BlockList:
    """Addresses blocked now (not lifted, not expired), newest first."""
    return BlockList(
        items=[
            BlockPublic(id=d.id, tenant=str(d.body.get("tenant")), body=d.body)
            for d in list_blocks(store, tenants=scope)
        ]
    )


@router.post("/api/containment/blocks/{block_id}/unblock", response_model=BlockPublic)
def unblock(
    block_id: str,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    scope: TenantScope,
    principal: CurrentPrincipal,
) -> BlockPublic:
    """Lift a block where it was applied and mark it removed."""
    doc = unblock_block(store, settings, block_id, tenants=scope, actor=principal.id)
    audit.record(
        store,
        actor=principal.id,
        action="containment.unblock",
        tenant=str(doc.body.get("tenant")),
        target=f"{BLOCK_KIND}/{block_id}",
        before={"status": "active"},
        after={"status": doc.body.get("status"), "address": doc.body.get("address")},
        request_id=request_id_of(request),
        source_ip=client_address(request),
    )
    return BlockPublic(id=doc.id, tenant=str(doc.body.get("tenant")), body=doc.body)


__all__ = [
    "PlaybookProblem",
    "library_of",
    "problem_of",
    "request_id_of",
    "router",
    "run_public",
    "summary_of",
    "unblock",
]
