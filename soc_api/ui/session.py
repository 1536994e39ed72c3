"""The UI's session cookie and CSRF token.

The cookie carries the same session token as the API's bearer token. The CSRF token is an HMAC
of that token: one per session, nothing to store, and unguessable without the HttpOnly cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

UI_PREFIX = "/ui"
SESSION_COOKIE = "cg_session"
LANG_COOKIE = "cg_lang"
LOGIN_CSRF_COOKIE = "cg_login_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


def is_ui_path(path: str) -> bool:
    return path == UI_PREFIX or path.startswith(UI_PREFIX + "/")


def csrf_token_for(session_token: str) -> str:
    return hmac.new(session_token.encode(), b"canhgac-ui-csrf", hashlib.sha256).hexdigest()


def same_token(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(str(given).encode(), expected.encode())


def secure_cookies_default(host: str) -> bool:
    """Secure cookies unless the server listens on loopback only (plain http://localhost)."""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "LANG_COOKIE",
    "LOGIN_CSRF_COOKIE",
    "SESSION_COOKIE",
    "UI_PREFIX",
    "csrf_token_for",
    "is_ui_path",
    "same_token",
    "secure_cookies_default",
]
