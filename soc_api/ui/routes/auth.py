"""Sign in (with TOTP enrolment where a role needs it) and out, password reset with a code,
the language switch, the static assets."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import segno
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from soc_api.client import client_address
from soc_api.deps import CurrentPrincipal, SettingsDep, StoreDep
from soc_api.services import accounts
from soc_api.ui.forms import Form, FormDep
from soc_api.ui.i18n import LANGUAGES
from soc_api.ui.render import render
from soc_api.ui.session import CSRF_FIELD, LANG_COOKIE, LOGIN_CSRF_COOKIE, SESSION_COOKIE, same_token
from soc_core.config import Settings
from soc_core.errors import AuthError, InvalidInput, NotFound

router = APIRouter(prefix="/ui", include_in_schema=False)

STATIC_DIR = Path(__file__).parent.parent / "static"
STATIC_FILES = {
    "htmx.min.js": "text/javascript",
    "app.js": "text/javascript",
    "app.css": "text/css",
    "logo.svg": "image/svg+xml",
}
HOME = "/ui/alerts"
PASSWORD_PAGE = "/ui/password"  # noqa: S105 - a page path, not a secret


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


def _login_page(
    request: Request, *, next_url: str, error: str = "", notice: str = "", status: int = 200
) -> HTMLResponse:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = render(
        request, "login.html", status_code=status, login_csrf=token, next_url=next_url, error=error, notice=notice
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, path="/ui/login", httponly=True, samesite="strict", secure=secure_cookies(request)
    )
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = HOME) -> HTMLResponse:
    return _login_page(request, next_url=safe_next(next))


def _signed_in(request: Request, settings: Settings, signed_in: accounts.SignedIn, next_url: str) -> Response:
    """Set the session cookie and go on: to the password page first if it must change."""
    response = RedirectResponse(PASSWORD_PAGE if signed_in.must_change_password else next_url, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        signed_in.token,
        max_age=settings.api.session_minutes * 60,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/ui/login")
    return response


def _login_csrf_ok(request: Request, form: Form) -> bool:
    return same_token(form.get(CSRF_FIELD), request.cookies.get(LOGIN_CSRF_COOKIE) or "\0")


def _enrol_page(
    request: Request, enrolment: accounts.TotpEnrolment, *, next_url: str, error: str = "", status: int = 200
) -> HTMLResponse:
    qr = segno.make(enrolment.uri, error="m")
    return render(
        request,
        "totp_enrol.html",
        status_code=status,
        login_csrf=request.cookies.get(LOGIN_CSRF_COOKIE) or "",
        next_url=next_url,
        error=error,
        enrolment=enrolment,
        qr_data_uri=qr.svg_data_uri(scale=4, dark="#1d2733"),
    )


@router.post("/login", response_model=None)
def login(request: Request, form: FormDep, store: StoreDep, settings: SettingsDep) -> Response:
    """Same checks as ``POST /api/auth/login`` (throttle, TOTP, audit), plus a double-submit
    token against login CSRF; success sets the session cookie, or shows the TOTP enrolment a
    role that requires TOTP must finish first."""
    next_url = safe_next(form.get("next"))
    if not _login_csrf_ok(request, form):
        return _login_page(request, next_url=next_url, error="login.expired", status=403)
    try:
        outcome = accounts.sign_in(
            store,
            request.app.state.login_throttle,
            username=form.get("username")[:100],
            password=form.get("password")[:1024],
            totp=form.get("totp")[:16].replace(" ", "") or None,
            lifetime=timedelta(minutes=settings.api.session_minutes),
            totp_required_roles=settings.auth.totp_required_roles,
            request_id=request.state.request_id,
            source_ip=client_address(request),
        )
    except accounts.Throttled:
        return _login_page(request, next_url=next_url, error="login.throttled", status=429)
    except AuthError:
        return _login_page(request, next_url=next_url, error="login.failed", status=401)
    if isinstance(outcome, accounts.TotpEnrolment):
        return _enrol_page(request, outcome, next_url=next_url)
    return _signed_in(request, settings, outcome, next_url)


@router.post("/login/totp", response_model=None)
def enrol_totp(request: Request, form: FormDep, store: StoreDep, settings: SettingsDep) -> Response:
    """The code from the authenticator app just set up: saves the secret and signs in."""
    next_url = safe_next(form.get("next"))
    if not _login_csrf_ok(request, form):
        return _login_page(request, next_url=next_url, error="login.expired", status=403)
    username = form.get("username")[:100]
    try:
        signed_in = accounts.throttled(
            store,
            request.app.state.login_throttle,
            username=username,
            action="auth.totp_enrol",
            attempt=lambda: accounts.finish_totp_enrolment(
                store,
                username=username,
                token=form.get("enrolment_token")[:200],
                code=form.get("code")[:16].replace(" ", ""),
                lifetime=timedelta(minutes=settings.api.session_minutes),
            ),
            request_id=request.state.request_id,
            source_ip=client_address(request),
        )
    except accounts.Throttled:
        return _login_page(request, next_url=next_url, error="login.throttled", status=429)
    except AuthError:
        return _login_page(request, next_url=next_url, error="totp.failed", status=401)
    return _signed_in(request, settings, signed_in, next_url)


def _reset_page(request: Request, *, error: str = "", detail: str = "", status: int = 200) -> HTMLResponse:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = render(request, "reset.html", status_code=status, login_csrf=token, error=error, detail=detail)
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, path="/ui/login", httponly=True, samesite="strict", secure=secure_cookies(request)
    )
    return response


@router.get("/login/reset", response_class=HTMLResponse)
def reset_page(request: Request) -> HTMLResponse:
    return _reset_page(request)


@router.post("/login/reset", response_model=None)
def reset(request: Request, form: FormDep, store: StoreDep) -> Response:
    """A new password with the one-time code an admin gave (same checks as ``POST /api/auth/reset``)."""
    if not _login_csrf_ok(request, form):
        return _reset_page(request, error="login.expired", status=403)
    password = form.get("password")[:1024]
    if password != form.get("password2")[:1024]:
        return _reset_page(request, error="password.mismatch", status=400)
    username = form.get("username")[:100]
    try:
        accounts.throttled(
            store,
            request.app.state.login_throttle,
            username=username,
            action="auth.password_reset",
            attempt=lambda: accounts.reset_with_code(
                store, username=username, code=form.get("code")[:64], new=password
            ),
            request_id=request.state.request_id,
            source_ip=client_address(request),
        )
    except accounts.Throttled:
        return _reset_page(request, error="login.throttled", status=429)
    except AuthError:
        return _reset_page(request, error="reset.failed", status=401)
    except InvalidInput as exc:
        return _reset_page(request, error="password.refused", detail=exc.message, status=400)
    return _login_page(request, next_url=HOME, notice="reset.done")


@router.post("/logout", response_model=None)
def logout(request: Request, principal: CurrentPrincipal, store: StoreDep) -> Response:
    accounts.sign_out(
        store,
        principal,
        request_id=request.state.request_id,
        source_ip=client_address(request),
    )
    response = redirect(request, "/ui/login")
    response.delete_cookie(SESSION_COOKIE, path="/ui", httponly=True, samesite="strict")
    return response
