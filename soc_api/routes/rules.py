"""Rules, for rule admins: list, view, validate, create/update custom rules, enable/disable,
exceptions, samples, backtests and ATT&CK coverage. Every change is versioned (author, reason)
and audited; the detection engine picks changes up on its next pass.

A caller sees the rules it can open (shipped, province-wide and its agencies' custom rules) and,
of each, only the exceptions and history entries of its agencies and province-wide ones — never
another agency's text, author or count, nor a version number their changes move."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from detections import lifecycle
from detections.backtest import backtest, backtest_change, backtest_correlation
from detections.loader import LoadedRule, RuleSet
from detections.samples import check_rule_samples
from soc_api.deps import CurrentPrincipal, StoreDep, TenantScope
from soc_api.errors import ApiProblem
from soc_api.routes.alerts import actor_of
from soc_api.schemas import (
    BacktestPublic,
    BacktestRequest,
    ExceptionCreate,
    ExceptionRevoke,
    RuleDetail,
    RulePage,
    RulePublic,
    RuleStateChange,
    RuleSubmit,
    RuleValidate,
    RuleValidation,
    SampleRun,
)
from soc_core.errors import NotFound, NotVisible, RuleError
from soc_core.store import Doc, Store
from workflow import audit

router = APIRouter(prefix="/api/rules", tags=["rules"])


def _rules(request: Request, store: Store) -> tuple[RuleSet, dict[str, Doc]]:
    ruleset, _ = lifecycle.effective_rules(store, request.app.state.rules_dirs)
    states = {doc.id: doc for doc in lifecycle.rule_states(store)}
    return ruleset, states


def _visible(state: Doc | None, scope: tuple[str, ...] | None) -> bool:
    owner = state.body.get("tenant") if state else None
    return owner is None or scope is None or owner in scope


def _public(loaded: LoadedRule, state: Doc | None, scope: tuple[str, ...] | None) -> dict[str, Any]:
    body = state.body if state else {}
    return {
        "id": loaded.id,
        "title": loaded.title,
        "level": loaded.level,
        "attack": loaded.attack_tags,
        "kind": "correlation" if loaded.is_correlation else "detection",
        "source": body.get("source", "shipped"),
        "enabled": loaded.enabled,
        "scope": body.get("scope"),
        "version": loaded.version,
        "state_version": lifecycle.revision(state) if state else None,
        "exceptions": len(lifecycle.visible_exceptions(body, scope)),
    }


def _find(
    request: Request, store: Store, rule_id: str, scope: tuple[str, ...] | None
) -> tuple[RuleSet, LoadedRule, Doc | None]:
    ruleset, states = _rules(request, store)
    loaded = ruleset.rules.get(rule_id)
    state = states.get(rule_id)
    if loaded is None:
        raise NotFound(f"no rule {rule_id!r}")
    if not _visible(state, scope):
        raise NotVisible(
            f"no rule {rule_id!r}", target=f"rules/{rule_id}", owner=state.body.get("tenant") if state else None
        )
    return ruleset, loaded, state


def _audit(
    request: Request, store: Store, principal: Any, action: str, rule_id: str, after: Any, *, tenant: str | None = None
) -> None:
    actor = actor_of(request, principal)
    audit.record(
        store,
        actor=principal.id,
        action=action,
        tenant=tenant,
        target=f"rules/{rule_id}",
        after=after,
        request_id=actor.request_id,
        source_ip=actor.source_ip,
    )


@router.get("", response_model=RulePage)
def list_rules(request: Request, store: StoreDep, scope: TenantScope) -> RulePage:
    ruleset, states = _rules(request, store)
    items = [
        RulePublic(**_public(loaded, states.get(loaded.id), scope))
        for loaded in sorted(ruleset, key=lambda r: r.title)
        if _visible(states.get(loaded.id), scope)
    ]
    return RulePage(items=items)


@router.get("/coverage", response_model=dict[str, list[str]])
def coverage(request: Request, store: StoreDep, scope: TenantScope) -> dict[str, list[str]]:
    """ATT&CK technique → enabled rules that detect it, of the rules the caller can open."""
    ruleset, states = _rules(request, store)
    openable = RuleSet(rules={k: v for k, v in ruleset.rules.items() if _visible(states.get(k), scope)})
    return lifecycle.attack_coverage(openable)


@router.post("/validate", response_model=RuleValidation)
def validate(body: RuleValidate) -> RuleValidation:
    try:
        lifecycle.validate_rule_text(body.yaml)
    except RuleError as exc:
        return RuleValidation(valid=False, errors=[exc.render()])
    return RuleValidation(valid=True, errors=[])


@router.get("/{rule_id}", response_model=RuleDetail)
def get_rule(rule_id: str, request: Request, store: StoreDep, scope: TenantScope) -> RuleDetail:
    _, loaded, state = _find(request, store, rule_id, scope)
    body = state.body if state else {}
    return RuleDetail(
        **_public(loaded, state, scope),
        yaml=loaded.text,
        where=loaded.where,
        history=lifecycle.visible_history(body, scope),
        active_exceptions=lifecycle.visible_exceptions(body, scope),
    )


@router.post("", response_model=RuleDetail, status_code=201)
def submit_rule(
    body: RuleSubmit, request: Request, store: StoreDep, scope: TenantScope, principal: CurrentPrincipal
) -> RuleDetail:
    """Create a custom rule, or change one (send its ``state_version``)."""
    ruleset, states = _rules(request, store)
    custom = {rule_id for rule_id, state in states.items() if state.body.get("source") == "custom"}
    shipped = RuleSet(rules={k: v for k, v in ruleset.rules.items() if k not in custom})
    doc = lifecycle.save_custom_rule(
        store,
        text=body.yaml,
        author=principal.id,
        reason=body.reason,
        scope=body.scope,
        allowed=scope,
        shipped=shipped,
        version=body.version,
    )
    after = {"scope": doc.body.get("scope"), "reason": body.reason}
    _audit(request, store, principal, "rule.save", doc.id, after, tenant=doc.body.get("tenant"))
    return get_rule(doc.id, request, store, scope)


@router.post("/{rule_id}/state", response_model=RulePublic)
def change_state(
    rule_id: str,
    body: RuleStateChange,
    request: Request,
    store: StoreDep,
    scope: TenantScope,
    principal: CurrentPrincipal,
) -> RulePublic:
    ruleset, loaded, state = _find(request, store, rule_id, scope)
    owner = state.body.get("tenant") if state else None
    if scope is not None and owner is None:
        raise ApiProblem(403, "Forbidden", "only province-wide rule admins switch rules every agency shares")
    doc = lifecycle.set_enabled(
        store,
        rule_id=rule_id,
        enabled=body.enabled,
        author=principal.id,
        reason=body.reason,
        shipped=ruleset,
        version=body.version,
    )
    action = "rule.enable" if body.enabled else "rule.disable"
    _audit(request, store, principal, action, rule_id, {"reason": body.reason}, tenant=owner)
    loaded.enabled = body.enabled
    return RulePublic(**_public(loaded, doc, scope))


@router.post("/{rule_id}/exceptions", response_model=RuleDetail, status_code=201)
def add_exception(
    rule_id: str,
    body: ExceptionCreate,
    request: Request,
    store: StoreDep,
    scope: TenantScope,
    principal: CurrentPrincipal,
) -> RuleDetail:
    """An exception for one agency (or, for province-wide admins, every agency)."""
    ruleset, _, _ = _find(request, store, rule_id, scope)
    tenant = body.tenant
    if scope is not None:
        if tenant is None and len(scope) == 1:
            tenant = scope[0]
        if tenant is None or tenant not in scope:
            raise NotVisible("no such tenant", target=f"tenants/{tenant}", owner=tenant)
    lifecycle.add_exception(
        store,
        rule_id=rule_id,
        conditions=body.conditions,
        reason=body.reason,
        author=principal.id,
        tenant=tenant,
        expires_at=body.expires_at,
        shipped=ruleset,
    )
    _audit(
        request,
        store,
        principal,
        "rule.exception_add",
        rule_id,
        {"conditions": body.conditions, "tenant": tenant},
        tenant=tenant,
    )
    return get_rule(rule_id, request, store, scope)


@router.post("/{rule_id}/exceptions/{exception_id}/revoke", response_model=RuleDetail)
def revoke_exception(
    rule_id: str,
    exception_id: str,
    body: ExceptionRevoke,
    request: Request,
    store: StoreDep,
    scope: TenantScope,
    principal: CurrentPrincipal,
) -> RuleDetail:
    ruleset, _, _ = _find(request, store, rule_id, scope)
    revoked = lifecycle.revoke_exception(
        store,
        rule_id=rule_id,
        exception_id=exception_id,
        reason=body.reason,
        author=principal.id,
        allowed=scope,
        shipped=ruleset,
    )
    _audit(
        request,
        store,
        principal,
        "rule.exception_revoke",
        rule_id,
        {"exception": exception_id},
        tenant=revoked.get("tenant"),
    )
    return get_rule(rule_id, request, store, scope)


@router.post("/{rule_id}/test", response_model=SampleRun)
def run_samples(rule_id: str, request: Request, store: StoreDep, scope: TenantScope) -> SampleRun:
    ruleset, loaded, _ = _find(request, store, rule_id, scope)
    result = check_rule_samples(ruleset, loaded)
    return SampleRun(rule_id=rule_id, checked=result.checked, passed=result.passed, failures=result.failures)


@router.post("/{rule_id}/backtest", response_model=BacktestPublic)
def run_backtest(
    rule_id: str, body: BacktestRequest, request: Request, store: StoreDep, scope: TenantScope
) -> BacktestPublic:
    """Hits per day over stored history (the caller's agencies only); with ``yaml``, what the
    changed version would add and remove."""
    ruleset, loaded, state = _find(request, store, rule_id, scope)
    rule_scope = state.body.get("scope") if state else None
    if loaded.is_correlation:
        if body.yaml:
            raise ApiProblem(
                422, "Not supported", "yaml: a changed correlation rule cannot be compared yet; test it with samples"
            )
        # the alerts it would have raised, with the streaming engine's windows
        alerts = backtest_correlation(
            store, ruleset, loaded, tenants=scope, scope=rule_scope, start=body.start, end=body.end
        )
        return BacktestPublic(
            rule_id=rule_id,
            version=alerts.version,
            total=alerts.total,
            truncated=alerts.truncated,
            per_day=alerts.per_day,
        )
    if body.yaml:
        candidate_set = lifecycle.validate_rule_text(body.yaml)
        candidate = next(iter(candidate_set))
        diff = backtest_change(
            store, loaded, candidate, tenants=scope, scope=rule_scope, start=body.start, end=body.end
        )
        return BacktestPublic(
            rule_id=rule_id,
            version=diff.current.version,
            total=diff.current.total,
            truncated=diff.current.truncated or diff.candidate.truncated,
            per_day=diff.current.per_day,
            candidate_version=diff.candidate.version,
            candidate_total=diff.candidate.total,
            candidate_per_day=diff.candidate.per_day,
            added=diff.added[:1000],
            removed=diff.removed[:1000],
        )
    result = backtest(store, loaded, tenants=scope, scope=rule_scope, start=body.start, end=body.end)
    return BacktestPublic(
        rule_id=rule_id, version=result.version, total=result.total, truncated=result.truncated, per_day=result.per_day
    )
