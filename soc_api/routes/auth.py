"""Sign in and out, TOTP enrolment at sign-in, changing and resetting a password."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request

from soc_api.client import client_address
from soc_api.deps import CurrentPrincipal, SettingsDep, StoreDep
from soc_api.errors import ApiProblem
from soc_api.schemas import (
    LoginRequest,
    MembershipPublic,
    MePublic,
    MeSettings,
    PasswordChange,
    PasswordReset,
    TokenPublic,
    TotpEnrolmentPublic,
    TotpEnrolRequest,
)
from soc_api.services import accounts
from soc_core.errors import AuthError
from soc_core.events import format_timestamp
from workflow.principals import Principal

router = APIRouter(prefix="/api/auth", tags=["auth"])


def too_many(exc: accounts.Throttled) -> ApiProblem:
    return ApiProblem(
        429,
        "Too many attempts",
        f"too many failed attempts from this address; wait {exc.retry_after} s and try again",
        headers={"Retry-After": str(exc.retry_after)},
    )


def token_public(signed_in: accounts.SignedIn) -> TokenPublic:
    return TokenPublic(
        access_token=signed_in.token,
        expires_at=format_timestamp(signed_in.expires),
        must_change_password=signed_in.must_change_password,
    )


@router.post("/login", response_model=TokenPublic | TotpEnrolmentPublic)
def login(
    body: LoginRequest, request: Request, store: StoreDep, settings: SettingsDep
) -> TokenPublic | TotpEnrolmentPublic:
    """A session token; or, for a person whose role needs TOTP and who has none yet, the
    enrolment step (``status: totp_enrolment_required``) to finish at ``POST /api/auth/totp``."""
    try:
        outcome = accounts.sign_in(
            store,
            request.app.state.login_throttle,
            username=body.username,
            password=body.password,
            totp=body.totp,
            lifetime=timedelta(minutes=settings.api.session_minutes),
            totp_required_roles=settings.auth.totp_required_roles,
            request_id=request.state.request_id,
            source_ip=client_address(request),
        )
    except accounts.Throttled as exc:
        raise too_many(exc) from exc
    except AuthError as exc:
        raise ApiProblem(401, "Unauthorized", "invalid username, password or code") from exc
    if isinstance(outcome, accounts.TotpEnrolment):
        return TotpEnrolmentPublic(
            username=outcome.username,
            enrolment_token=outcome.token,
            secret=outcome.secret,
            otpauth_uri=outcome.uri,
            expires_at=format_timestamp(outcome.expires),
        )
    return token_public(outcome)


@router.post("/totp", response_model=TokenPublic)
def enrol_totp(body: TotpEnrolRequest, request: Request, store: StoreDep, settings: SettingsDep) -> TokenPublic:
    """Finish the TOTP enrolment that sign-in asked for: a code from the new secret → a session."""
    try:
        signed_in = accounts.throttled(
            store,
            request.app.state.login_throttle,
            username=body.username,
            action="auth.totp_enrol",
            attempt=lambda: accounts.finish_totp_enrolment(
                store,
                username=body.username,
                token=body.enrolment_token,
                code=body.code,
                lifetime=timedelta(minutes=settings.api.session_minutes),
            ),
            request_id=request.state.request_id,
            source_ip=client_address(request),
        )
    except accounts.Throttled as exc:
        raise too_many(exc) from exc
    except AuthError as exc:
        raise ApiProblem(401, "Unauthorized", "invalid or expired enrolment, or wrong code; sign in again") from exc
    return token_public(signed_in)


@router.post("/password", status_code=204)
def change_password(body: PasswordChange, principal: CurrentPrincipal, request: Request, store: StoreDep) -> None:
    """Change your own password (the current one proves it is you); your other sessions end."""
    if principal.kind != "user":
        raise ApiProblem(403, "Forbidden", "only a person signed in with a password can change it")
    try:
        accounts.change_own_password(
            store,
            request.app.state.login_throttle,
            principal,
            current=body.current_password,
            new=body.new_password,
            request_id=request.state.request_id,
            source_ip=client_address(request),
        )
    except accounts.Throttled as exc:
        raise too_many(exc) from exc
    except AuthError as exc:
        raise ApiProblem(403, "Forbidden", "the current password is wrong") from exc


@router.post("/reset", status_code=204)
def reset_password(body: PasswordReset, request: Request, store: StoreDep) -> None:
    """Set a new password with the one-time code an admin issued (``POST /api/users/{username}/reset``)."""
    try:
        accounts.throttled(
            store,
            request.app.state.login_throttle,
            username=body.username,
            action="auth.password_reset",
            attempt=lambda: accounts.reset_with_code(
                store, username=body.username, code=body.code, new=body.new_password
            ),
            request_id=request.state.request_id,
            source_ip=client_address(request),
        )
    except accounts.Throttled as exc:
        raise too_many(exc) from exc
    except AuthError as exc:
        raise ApiProblem(401, "Unauthorized", "invalid or expired reset code; ask an admin for a new one") from exc


@router.post("/logout", status_code=204)
def logout(principal: CurrentPrincipal, request: Request, store: StoreDep) -> None:
    accounts.sign_out(store, principal, request_id=request.state.request_id, source_ip=client_address(request))


@router.get("/me", response_model=MePublic)
def me(principal: CurrentPrincipal) -> MePublic:
    return _me(principal, principal.timezone)


def _me(principal: Principal, timezone: str | None) -> MePublic:
    return MePublic(
        id=principal.id,
        name=principal.name,
        kind=principal.kind,
        memberships=[MembershipPublic(tenant=m.tenant, role=m.role) for m in principal.memberships],
        must_change_password=principal.must_change_password,
        timezone=timezone,
    )


@router.patch("/me", response_model=MePublic)
def update_me(body: MeSettings, request: Request, store: StoreDep, principal: CurrentPrincipal) -> MePublic:
    """Your own settings (a person's; an API key has none)."""
    zone = accounts.set_own_timezone(
        store, principal, body.timezone, request_id=request.state.request_id, source_ip=client_address(request)
    )
    return _me(principal, zone)
