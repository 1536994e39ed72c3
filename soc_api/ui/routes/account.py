"""Your own password, and the people page for admins (enable, disable, one-time reset code)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from zoneinfo import available_timezones

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from soc_api.client import client_address
from soc_api.deps import CurrentPrincipal, SettingsDep, StoreDep, TenantScope
from soc_api.routes.users import user_public
from soc_api.services import accounts
from soc_api.ui.forms import FormDep
from soc_api.ui.render import render
from soc_api.ui.routes.auth import HOME, redirect
from soc_core.errors import AuthError, InvalidInput
from soc_core.events import format_timestamp, utcnow
from workflow.principals import Principal

router = APIRouter(prefix="/ui", include_in_schema=False)


def _password_page(
    request: Request, principal: Principal, *, error: str = "", detail: str = "", status: int = 200
) -> HTMLResponse:
    return render(
        request,
        "password.html",
        status_code=status,
        error=error,
        detail=detail,
        forced=principal.must_change_password,
    )


@router.get("/password", response_class=HTMLResponse)
def password_page(request: Request, principal: CurrentPrincipal) -> HTMLResponse:
    return _password_page(request, principal)


@router.post("/password", response_model=None)
def change_password(request: Request, form: FormDep, store: StoreDep, principal: CurrentPrincipal) -> Response:
    """Same checks as ``POST /api/auth/password``; afterwards on to the alert queue."""
    new = form.get("new_password")[:1024]
    if new != form.get("new_password2")[:1024]:
        return _password_page(request, principal, error="password.mismatch", status=400)
    try:
        accounts.change_own_password(
            store,
            request.app.state.login_throttle,
            principal,
            current=form.get("current_password")[:1024],
            new=new,
            request_id=request.state.request_id,
            source_ip=client_address(request),
        )
    except accounts.Throttled:
        return _password_page(request, principal, error="login.throttled", status=429)
    except AuthError:
        return _password_page(request, principal, error="password.wrong_current", status=403)
    except InvalidInput as exc:
        return _password_page(request, principal, error="password.refused", detail=exc.message, status=400)
    return redirect(request, HOME)


@router.get("/settings", response_class=HTMLResponse)
def settings_page(
    request: Request, principal: CurrentPrincipal, saved: Annotated[str, Query(max_length=10)] = ""
) -> HTMLResponse:
    """Your own settings: the time zone the UI shows times in (UTC stays on hover)."""
    return _settings_page(request, principal, notice="settings.saved" if saved else "")


def _settings_page(
    request: Request, principal: Principal, *, notice: str = "", error: str = "", status: int = 200
) -> HTMLResponse:
    return render(
        request,
        "settings.html",
        status_code=status,
        zones=sorted(available_timezones()),
        current=principal.timezone or request.app.state.settings.reports.timezone,
        default_zone=request.app.state.settings.reports.timezone,
        now=format_timestamp(utcnow()),
        notice=notice,
        error=error,
    )


@router.post("/settings", response_model=None)
def save_settings(request: Request, form: FormDep, store: StoreDep, principal: CurrentPrincipal) -> Response:
    try:
        accounts.set_own_timezone(
            store,
            principal,
            form.get("timezone")[:100],
            request_id=request.state.request_id,
            source_ip=client_address(request),
        )
    except InvalidInput:
        return _settings_page(request, principal, error="settings.bad_zone", status=400)
    return redirect(request, "/ui/settings?saved=1")


def _users_page(
    request: Request,
    store: StoreDep,
    scope: TenantScope,
    *,
    template: str = "_users.html",
    notice: str = "",
    reset: dict[str, str] | None = None,
) -> HTMLResponse:
    users = [user_public(doc) for doc in accounts.list_users(store, scope)]
    return render(request, template, users=users, notice=notice, reset=reset)


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, store: StoreDep, scope: TenantScope) -> HTMLResponse:
    return _users_page(request, store, scope, template="users.html")


@router.post("/users/{username}", response_class=HTMLResponse)
def user_action(
    username: str,
    request: Request,
    form: FormDep,
    store: StoreDep,
    settings: SettingsDep,
    scope: TenantScope,
    principal: CurrentPrincipal,
) -> HTMLResponse:
    """``action`` = enable, disable or reset (the code is shown once, on this page)."""
    doc = accounts.managed_user(store, username, scope)
    action = form.get("action")
    if action == "enable":
        accounts.enable_user(store, doc.id, actor=principal.id)
        return _users_page(request, store, scope, notice="users.enabled")
    if action == "disable":
        if doc.id == principal.id:
            raise InvalidInput("you cannot disable yourself; ask another admin")
        accounts.disable_user(store, doc.id, actor=principal.id)
        return _users_page(request, store, scope, notice="users.now_disabled")
    if action == "reset":
        code, _expires = accounts.issue_reset(
            store, doc.id, lifetime=timedelta(minutes=settings.auth.reset_code_minutes), actor=principal.id
        )
        shown = {"username": doc.body["username"], "code": code, "minutes": str(settings.auth.reset_code_minutes)}
        return _users_page(request, store, scope, reset=shown)
    raise InvalidInput(f"unknown action {action[:40]!r}", hint="use enable, disable or reset")
