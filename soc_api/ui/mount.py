"""Put the UI on an app: its routers, HTML error pages for ``/ui`` and its security headers.

Errors under ``/ui`` answer with a page (or, for htmx, a message swapped into ``#flash``);
everything else keeps the API's problem documents. An expired or missing session sends the
browser to the sign-in page.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from soc_api.deps import LoginRequired, PasswordChangeRequired
from soc_api.errors import ApiProblem, answer_for, note_cross_tenant
from soc_api.ui.render import render
from soc_api.ui.routes import account, alerts, auth, cases, hunt, intel, jobs, keys, playbooks, reports
from soc_api.ui.session import SESSION_COOKIE, is_ui_path, secure_cookies_default
from soc_core.errors import AuthError, NotVisible, SocError

ROUTERS = (
    auth.router,
    account.router,
    alerts.router,
    cases.router,
    hunt.router,
    intel.router,
    keys.router,
    playbooks.router,
    jobs.router,
    reports.router,
)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
}

Handler = Callable[[Request, Any], Response | Awaitable[Response]]


def _error_page(request: Request, status: int, message_id: str, detail: str = "") -> Response:
    if request.headers.get("hx-request"):
        return render(
            request,
            "_flash.html",
            status_code=status,
            headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"},
            message_id=message_id,
            detail=detail,
        )
    return render(request, "error.html", status_code=status, message_id=message_id, detail=detail)


def _to_password_page(request: Request) -> Response:
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": "/ui/password"})
    return RedirectResponse("/ui/password", status_code=303)


def _to_login(request: Request) -> Response:
    target = "/ui/login?next=" + quote(request.url.path, safe="/")
    response: Response
    if request.headers.get("hx-request"):
        response = Response(status_code=204, headers={"HX-Redirect": target})
    else:
        response = RedirectResponse(target, status_code=303)
    if SESSION_COOKIE in request.cookies:
        response.delete_cookie(SESSION_COOKIE, path="/ui", httponly=True, samesite="strict")
    return response


_PAGE_MESSAGES = {404: "error.not_found", 409: "error.conflict", 422: "error.refused"}


def ui_error(request: Request, exc: Exception) -> Response | None:
    """The UI's answer to an error raised under ``/ui``; ``None`` for anything unexpected."""
    if isinstance(exc, LoginRequired | AuthError):
        return _to_login(request)
    if isinstance(exc, PasswordChangeRequired):
        return _to_password_page(request)
    if isinstance(exc, ApiProblem):
        message = {403: "error.forbidden", 404: "error.not_found"}.get(exc.status, "error.request")
        return _error_page(request, exc.status, message, exc.detail)
    if isinstance(exc, SocError):
        answer = answer_for(exc)  # the API's table decides the status; the page only words it
        if answer.status >= 500:
            return None
        detail = exc.render() if answer.detail is None else ""
        return _error_page(request, answer.status, _PAGE_MESSAGES.get(answer.status, "error.request"), detail)
    if isinstance(exc, RequestValidationError):
        return _error_page(request, 400, "error.request")
    if isinstance(exc, StarletteHTTPException):
        return _error_page(request, exc.status_code, "error.not_found" if exc.status_code == 404 else "error.request")
    return None


async def _call(handler: Handler, request: Request, exc: Any) -> Response:
    response = handler(request, exc)
    return await response if inspect.isawaitable(response) else response


def _wrap(original: Handler) -> Handler:
    async def handler(request: Request, exc: Any) -> Response:
        if is_ui_path(request.url.path):
            if isinstance(exc, NotVisible):
                await note_cross_tenant(request, exc)
            answer = ui_error(request, exc)
            if answer is not None:
                return answer
            response = await _call(original, request, exc)  # logs it; the page shows the request id
            return _error_page(request, response.status_code, "error.internal", request.state.request_id)
        return await _call(original, request, exc)

    return handler


def ui_route_inventory() -> set[tuple[str, str]]:
    """(method, path template) of every UI page and action (they stay out of the OpenAPI)."""
    return {
        (method, route.path)
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }


def install_ui(app: FastAPI, *, secure_cookies: bool | None = None) -> None:
    """Add the UI routes and error pages; call after the API's error handlers are installed."""
    app.state.ui_secure_cookies = (
        secure_cookies_default(app.state.settings.api.host) if secure_cookies is None else secure_cookies
    )
    for router in ROUTERS:
        app.include_router(router)
    for exc_class in (ApiProblem, RequestValidationError, StarletteHTTPException, SocError, Exception):
        app.exception_handlers[exc_class] = _wrap(app.exception_handlers[exc_class])


__all__ = ["ROUTERS", "SECURITY_HEADERS", "install_ui", "ui_error", "ui_route_inventory"]
