"""Dependencies: the store, the settings, and the policy check every request passes through."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.routing import APIRoute

from soc_api.client import client_address
from soc_api.errors import ApiProblem
from soc_api.policy import AUTHENTICATED, DOCS_ROUTES, PASSWORD_CHANGE_ROUTES, POLICY, PUBLIC, UI_POLICY
from soc_api.services import apikeys
from soc_api.services.accounts import principal_from_token
from soc_api.ui.session import CSRF_HEADER, SESSION_COOKIE, csrf_token_for, is_ui_path, same_token
from soc_core.config import Settings
from soc_core.errors import AuthError
from soc_core.store import Store
from workflow import audit
from workflow.principals import Principal

UNAUTHORIZED = ApiProblem(401, "Unauthorized", "authentication required", headers={"WWW-Authenticate": "Bearer"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class LoginRequired(ApiProblem):
    """A UI request without a valid session cookie; the UI answers with the sign-in page."""

    def __init__(self) -> None:
        super().__init__(401, "Unauthorized", "sign in first")


class PasswordChangeRequired(ApiProblem):
    """The session's password must be changed first; the UI answers with the change page."""

    def __init__(self) -> None:
        super().__init__(403, "Forbidden", "change your password first (POST /api/auth/password)")


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-key") or None


def enforce_policy(request: Request, store: StoreDep, settings: SettingsDep) -> None:
    """Runs before every route: look the route up in POLICY (UI_POLICY for /ui), authenticate,
    check permission. The API takes bearer tokens only; the UI takes the session cookie only and
    wants the session's CSRF token on every state-changing request."""
    route = request.scope.get("route")
    template = route.path if isinstance(route, APIRoute) else ""
    ui = is_ui_path(template)
    permission = (UI_POLICY if ui else POLICY).get((request.method, template))
    if permission is None:
        raise ApiProblem(403, "Forbidden", "this operation is not permitted")
    if permission == PUBLIC:
        return
    refused = LoginRequired() if ui else UNAUTHORIZED
    token = request.cookies.get(SESSION_COOKIE) if ui else _bearer(request)
    if not token:
        raise refused
    try:
        if apikeys.is_api_key(token):
            principal = apikeys.principal_from_api_key(store, token, source_ip=client_address(request))
        else:
            principal = principal_from_token(store, token, idle=timedelta(minutes=settings.api.idle_minutes))
    except AuthError as exc:
        raise refused from exc
    if ui:
        if principal.kind != "user":  # API keys are for integrations, not browsers
            raise refused
        request.state.csrf_token = csrf_token_for(token)
        if request.method not in SAFE_METHODS and not same_token(
            request.headers.get(CSRF_HEADER), request.state.csrf_token
        ):
            raise ApiProblem(403, "Forbidden", "missing or wrong CSRF token; reload the page")
    request.state.principal = principal
    request.state.permission = permission
    if principal.must_change_password and (request.method, template) not in PASSWORD_CHANGE_ROUTES:
        raise PasswordChangeRequired()
    if permission != AUTHENTICATED and not principal.may(permission):
        audit.record(
            store,
            actor=principal.id,
            action="authz.denied",
            outcome="failure",
            target=f"{request.method} {template}",
            request_id=getattr(request.state, "request_id", None),
            source_ip=client_address(request),
        )
        raise ApiProblem(403, "Forbidden", "your role does not allow this")


def get_principal(request: Request) -> Principal:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        raise UNAUTHORIZED
    return principal


def get_scope(request: Request) -> tuple[str, ...] | None:
    """The tenants the caller may act on for this route's permission (None = all)."""
    principal = get_principal(request)
    return principal.tenants_for(request.state.permission)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
TenantScope = Annotated[tuple[str, ...] | None, Depends(get_scope)]

__all__ = [
    "DOCS_ROUTES",
    "CurrentPrincipal",
    "LoginRequired",
    "PasswordChangeRequired",
    "SettingsDep",
    "StoreDep",
    "TenantScope",
    "enforce_policy",
    "get_principal",
]
