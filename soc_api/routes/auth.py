"""Sign in and out."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from soc_api.deps import CurrentPrincipal, SettingsDep, StoreDep
from soc_api.errors import ApiProblem
from soc_api.schemas import LoginRequest, MembershipPublic, MePublic, TokenPublic
from soc_api.services import accounts
from soc_core.errors import AuthError
from soc_core.events import format_timestamp

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/login", response_model=TokenPublic)
def login(body: LoginRequest, store: StoreDep, settings: SettingsDep) -> TokenPublic:
    try:
        token, expires = accounts.login(
            store,
            username=body.username,
            password=body.password,
            lifetime=timedelta(minutes=settings.api.session_minutes),
        )
    except AuthError as exc:
        raise ApiProblem(401, "Unauthorized", "invalid username or password") from exc
    return TokenPublic(access_token=token, expires_at=format_timestamp(expires))


@router.post("/logout", status_code=204)
def logout(principal: CurrentPrincipal, store: StoreDep) -> None:
    if principal.session_id:
        accounts.logout(store, principal.session_id)


@router.get("/me", response_model=MePublic)
def me(principal: CurrentPrincipal) -> MePublic:
    return MePublic(
        id=principal.id,
        name=principal.name,
        kind=principal.kind,
        memberships=[MembershipPublic(tenant=m.tenant, role=m.role) for m in principal.memberships],
    )
