"""Auth primitives: password hashing (argon2), session tokens and API keys.

Secrets are never stored: passwords as argon2 hashes, tokens and API keys as SHA-256 digests
(they are long random strings, so a fast hash is enough and lookups stay O(1)).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import pyotp
from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from zxcvbn import zxcvbn
from zxcvbn.frequency_lists import FREQUENCY_LISTS

Role = Literal["analyst", "rule_admin", "manager", "admin", "sensor"]
ROLES: tuple[Role, ...] = ("analyst", "rule_admin", "manager", "admin")  # for people
KEY_ROLES: tuple[Role, ...] = (*ROLES, "sensor")  # API keys may also be sensors
PROVINCE = "*"  # membership tenant meaning "every agency" (the provincial SOC)
API_KEY_PREFIX = "cgk_"
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 128
# zxcvbn's estimate: below 10^8 guesses (score 3) a password falls to a dictionary or
# breached-list attack with common mangling; its own matcher stops at 72 characters, and a
# longer password is at least as strong as its first 72.
MIN_ZXCVBN_SCORE = 3
_ZXCVBN_MAX = 72
_BREACHED = frozenset(FREQUENCY_LISTS["passwords"])  # most common passwords of public breaches

# The test suite sets this (tests/__init__.py) so that signing in costs microseconds instead of
# ~0.3 s a hash; nothing else may. Hashes carry their own parameters, so either hasher verifies
# the other's. Production keeps argon2-cffi's defaults (RFC 9106 low-memory: m=64 MiB, t=3, p=4).
CHEAP_TEST_HASHING_ENV = "SOC_TEST_CHEAP_PASSWORD_HASHING"
_hasher = (
    PasswordHasher.from_parameters(profiles.CHEAPEST)
    if os.environ.get(CHEAP_TEST_HASHING_ENV) == "1"
    else PasswordHasher()
)
# Verified against when the user does not exist, so both paths cost the same (no enumeration).
_DUMMY_HASH = _hasher.hash("canhgac-timing-equaliser")


@dataclass(frozen=True)
class Membership:
    tenant: str
    role: Role


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if ``password`` matches; an empty or blank password never does."""
    if not password or not password.strip():
        _hasher_verify(_DUMMY_HASH, "x")
        return False
    return _hasher_verify(password_hash or _DUMMY_HASH, password) and password_hash is not None


def _hasher_verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_problem(password: str, *, username: str = "") -> str | None:
    """Why ``password`` may not be used (OWASP ASVS L2: length, breached list, not the user
    name; no composition rules), or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"a password needs at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"a password has at most {MAX_PASSWORD_LENGTH} characters"
    if password.strip() != password:
        return "a password may not start or end with spaces"
    if username and password.casefold() == username.casefold():
        return "a password may not be the user name"
    if password.lower() in _BREACHED:
        return "this password is in a list of breached passwords; choose another"
    estimate = zxcvbn(password[:_ZXCVBN_MAX], user_inputs=[username] if username else [])
    if estimate["score"] < MIN_ZXCVBN_SCORE:
        warning = estimate["feedback"]["warning"] or "it is built from common words or patterns"
        return f"this password is too easy to guess ({warning.rstrip('.')}); a few uncommon words make a good one"
    return None


TOTP_ISSUER = "Canh Gac"


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=TOTP_ISSUER)


def verify_totp(secret: str, code: str, *, last_step: int | None, at: float | None = None) -> int | None:
    """The time step the code belongs to (±1 step of drift), or None.

    A code whose step is not newer than ``last_step`` is refused: a code works once.
    """
    if not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    now = int(at if at is not None else time.time())
    current = totp.timecode(datetime.fromtimestamp(now, UTC))
    for step in (current, current - 1, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step if last_step is None or step > last_step else None
    return None


def new_token() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_api_key() -> tuple[str, str]:
    """(key id, full key). The full key is shown once; only its digest is stored."""
    key_id = secrets.token_hex(6)
    return key_id, f"{API_KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def api_key_id(key: str) -> str | None:
    if not key.startswith(API_KEY_PREFIX):
        return None
    key_id, sep, _ = key[len(API_KEY_PREFIX) :].partition("_")
    return key_id if sep and key_id else None


def same_digest(secret: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(secret), stored_digest)


__all__ = [
    "API_KEY_PREFIX",
    "KEY_ROLES",
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "PROVINCE",
    "ROLES",
    "Membership",
    "Role",
    "api_key_id",
    "digest",
    "hash_password",
    "new_api_key",
    "new_token",
    "new_totp_secret",
    "password_problem",
    "same_digest",
    "totp_uri",
    "verify_password",
    "verify_totp",
]
