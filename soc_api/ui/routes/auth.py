"""Sign in and out, the language switch, the static assets."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from soc_api.deps import CurrentPrincipal, SettingsDep, StoreDep
from soc_api.services import accounts
from soc_api.ui.forms import FormDep
from soc_api.ui.i18n import LANGUAGES
from soc_api.ui.render import render
from soc_api.ui.session import CSRF_FIELD, LANG_COOKIE, LOGIN_CSRF_COOKIE, SESSION_COOKIE, same_token
from soc_core.errors import AuthError, NotFound

router = APIRouter(prefix="/ui", include_in_schema=False)

STATIC_DIR = Path(__file__).parent.parent / "static"
STATIC_FILES = {
    "htmx.min.js": "text/javascript",
    "app.js": "text/javascript",
    "app.css": "text/css",
    "logo.svg": "image/svg+xml",
}
HOME = "/ui/alerts"


def safe_next(target: str | None) -> str:
    """Only our own UI pages: no other host (``//x``, ``/\\x``), no scheme, no control chars."""
    if (
        target
        and target.startswith("/ui")
        and not target.startswith(("//", "/\\"))
        and "\\" not in target
        and all(32 < ord(c) < 127 for c in target)
        and len(target) <= 2000
    ):
        return target
    return HOME


def secure_cookies(request: Request) -> bool:
    return bool(request.app.state.ui_secure_cookies)


def redirect(request: Request, target: str) -> Response:
    """htmx follows ``HX-Redirect``; a plain form gets a 303."""
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


@router.get("")
def home() -> RedirectResponse:
    return RedirectResponse(HOME, status_code=303)


@router.get("/static/{name}")
def static(name: str) -> Response:
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise NotFound(f"no static file {name!r}")
    return FileResponse(STATIC_DIR / name, media_type=media_type, headers={"Cache-Control": "no-cache"})


@router.get("/lang")
def switch_language(request: Request, lang: str = "vi", next: str = HOME) -> RedirectResponse:
    response = RedirectResponse(safe_next(next), status_code=303)
    if lang in LANGUAGES:
        response.set_cookie(
            LANG_COOKIE, lang, max_age=365 * 24 * 3600, path="/ui", samesite="strict", secure=secure_cookies(request)
        )
    return response


def _login_page(request: Request, *, next_url: str, error: str = "", status: int = 200) -> HTMLResponse:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = render(request, "login.html", status_code=status, login_csrf=token, next_url=next_url, error=error)
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, path="/ui/login", httponly=True, samesite="strict", secure=secure_cookies(request)
    )
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = HOME) -> HTMLResponse:
    return _login_page(request, next_url=safe_next(next))


@router.post("/login", response_model=None)
def login(request: Request, form: FormDep, store: StoreDep, settings: SettingsDep) -> Response:
    """Same checks as ``POST /api/auth/login`` (throttle, TOTP, audit), plus a double-submit
    token against login CSRF; success sets the session cookie."""
    next_url = safe_next(form.get("next"))
    if not same_token(form.get(CSRF_FIELD), request.cookies.get(LOGIN_CSRF_COOKIE) or "\0"):
        return _login_page(request, next_url=next_url, error="login.expired", status=403)
    try:
        token, _expires = accounts.sign_in(
            store,
            request.app.state.login_throttle,
            username=form.get("username")[:100],
            password=form.get("password")[:1024],
            totp=form.get("totp")[:16] or None,
            lifetime=timedelta(minutes=settings.api.session_minutes),
            require_totp=settings.api.require_totp,
            request_id=request.state.request_id,
            source_ip=request.client.host if request.client else None,
        )
    except accounts.Throttled:
        return _login_page(request, next_url=next_url, error="login.throttled", status=429)
    except AuthError:
        return _login_page(request, next_url=next_url, error="login.failed", status=401)
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.api.session_minutes * 60,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/ui/login")
    return response


@router.post("/logout", response_model=None)
def logout(request: Request, principal: CurrentPrincipal, store: StoreDep) -> Response:
    accounts.sign_out(
        store,
        principal,
        request_id=request.state.request_id,
        source_ip=request.client.host if request.client else None,
    )
    response = redirect(request, "/ui/login")
    response.delete_cookie(SESSION_COOKIE, path="/ui", httponly=True, samesite="strict")
    return response
