"""Sign in and out."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request

from soc_api.deps import CurrentPrincipal, SettingsDep, StoreDep
from soc_api.errors import ApiProblem
from soc_api.schemas import LoginRequest, MembershipPublic, MePublic, TokenPublic
from soc_api.services import accounts, audit
from soc_api.services.throttle import LoginThrottle
from soc_core.errors import AuthError
from soc_core.events import format_timestamp

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/login", response_model=TokenPublic)
def login(body: LoginRequest, request: Request, store: StoreDep, settings: SettingsDep) -> TokenPublic:
    source_ip = request.client.host if request.client else None
    throttle: LoginThrottle = request.app.state.login_throttle
    context = {"request_id": request.state.request_id, "source_ip": source_ip}
    if throttle.blocked(body.username, source_ip):
        audit.record(store, actor=body.username[:100], action="auth.login", outcome="throttled", **context)
        raise ApiProblem(429, "Too many attempts", "too many failed sign-ins; wait and try again")
    try:
        token, expires = accounts.login(
            store,
            username=body.username,
            password=body.password,
            lifetime=timedelta(minutes=settings.api.session_minutes),
            totp=body.totp,
            require_totp=settings.api.require_totp,
        )
    except AuthError as exc:
        throttle.failed(body.username, source_ip)
        audit.record(store, actor=body.username[:100], action="auth.login", outcome="failure", **context)
        raise ApiProblem(401, "Unauthorized", "invalid username, password or code") from exc
    throttle.succeeded(body.username, source_ip)
    audit.record(store, actor=body.username.lower(), action="auth.login", **context)
    return TokenPublic(access_token=token, expires_at=format_timestamp(expires))


@router.post("/logout", status_code=204)
def logout(principal: CurrentPrincipal, request: Request, store: StoreDep) -> None:
    if principal.session_id:
        accounts.logout(store, principal.session_id)
    audit.record(
        store,
        actor=principal.id,
        action="auth.logout",
        request_id=request.state.request_id,
        source_ip=request.client.host if request.client else None,
    )


@router.get("/me", response_model=MePublic)
def me(principal: CurrentPrincipal) -> MePublic:
    return MePublic(
        id=principal.id,
        name=principal.name,
        kind=principal.kind,
        memberships=[MembershipPublic(tenant=m.tenant, role=m.role) for m in principal.memberships],
    )
