"""Sign in and out."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request

from soc_api.deps import CurrentPrincipal, SettingsDep, StoreDep
from soc_api.errors import ApiProblem
from soc_api.schemas import LoginRequest, MembershipPublic, MePublic, TokenPublic
from soc_api.services import accounts
from soc_core.errors import AuthError
from soc_core.events import format_timestamp

router = APIRouter(prefix="/api/auth", tags=["auth"])


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


@router.post("/login", response_model=TokenPublic)
def login(body: LoginRequest, request: Request, store: StoreDep, settings: SettingsDep) -> TokenPublic:
    try:
        token, expires = accounts.sign_in(
            store,
            request.app.state.login_throttle,
            username=body.username,
            password=body.password,
            totp=body.totp,
            lifetime=timedelta(minutes=settings.api.session_minutes),
            require_totp=settings.api.require_totp,
            request_id=request.state.request_id,
            source_ip=client_ip(request),
        )
    except accounts.Throttled as exc:
        raise ApiProblem(429, "Too many attempts", "too many failed sign-ins; wait and try again") from exc
    except AuthError as exc:
        raise ApiProblem(401, "Unauthorized", "invalid username, password or code") from exc
    return TokenPublic(access_token=token, expires_at=format_timestamp(expires))


@router.post("/logout", status_code=204)
def logout(principal: CurrentPrincipal, request: Request, store: StoreDep) -> None:
    accounts.sign_out(store, principal, request_id=request.state.request_id, source_ip=client_ip(request))


@router.get("/me", response_model=MePublic)
def me(principal: CurrentPrincipal) -> MePublic:
    return MePublic(
        id=principal.id,
        name=principal.name,
        kind=principal.kind,
        memberships=[MembershipPublic(tenant=m.tenant, role=m.role) for m in principal.memberships],
    )
