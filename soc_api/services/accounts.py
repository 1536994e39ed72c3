"""Users, tenants, sessions and API keys, kept as store documents.

Users are global documents (no ``tenant``); what they may see comes from their memberships.
Sessions and API keys are stored under the SHA-256 digest of the secret.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import available_timezones

from soc_api.services.throttle import LoginThrottle, Wait
from soc_core.auth import (
    PROVINCE,
    ROLES,
    Membership,
    digest,
    hash_password,
    new_token,
    new_totp_secret,
    password_problem,
    same_digest,
    totp_uri,
    verify_password,
    verify_totp,
)
from soc_core.errors import AuthError, Conflict, InvalidInput, NotFound
from soc_core.events import check_tenant_id, format_timestamp, parse_timestamp, utcnow
from soc_core.store import Doc, Store
from workflow import audit
from workflow.principals import Principal


def _memberships(raw: Sequence[dict[str, Any]]) -> tuple[Membership, ...]:
    return tuple(Membership(m["tenant"], m["role"]) for m in raw)


def add_tenant(store: Store, *, tenant_id: str, name: str, actor: str = "system") -> None:
    check_tenant_id(tenant_id)
    try:
        store.create_doc("tenants", {"name": name, "created_at": format_timestamp(utcnow())}, doc_id=tenant_id)
    except Conflict as exc:
        raise Conflict(f"tenant {tenant_id!r} exists already", hint="pick another id") from exc
    audit.record(
        store, actor=actor, action="tenant.add", tenant=tenant_id, target=f"tenants/{tenant_id}", after={"name": name}
    )


def list_tenants(store: Store) -> list[Doc]:
    """Every agency, by id."""
    found: list[Doc] = []
    cursor = None
    while True:
        page = store.list_docs("tenants", sort="created_at", descending=False, size=500, cursor=cursor)
        found += page.items
        cursor = page.next_cursor
        if cursor is None:
            return sorted(found, key=lambda doc: doc.id)


def tenant_exists(store: Store, tenant_id: str) -> bool:
    try:
        store.get_doc("tenants", tenant_id)
    except NotFound:
        return False
    return True


def add_user(
    store: Store,
    *,
    username: str,
    password: str,
    memberships: Sequence[Membership],
    display_name: str = "",
    actor: str = "system",
    must_change_password: bool = False,
) -> None:
    check_password(password, username=username)
    _check_memberships(store, memberships)
    body = {
        "username": username,
        "display_name": display_name or username,
        "password_hash": hash_password(password),
        "must_change_password": must_change_password,
        "disabled": False,
        "memberships": [{"tenant": m.tenant, "role": m.role} for m in memberships],
        "created_at": format_timestamp(utcnow()),
    }
    try:
        store.create_doc("users", body, doc_id=username.lower())
    except Conflict as exc:
        raise Conflict(f"user {username!r} exists already", hint="pick another username") from exc
    audit.record(
        store,
        actor=actor,
        action="user.add",
        target=f"users/{username.lower()}",
        after={"memberships": body["memberships"]},
    )


def check_password(password: str, *, username: str) -> None:
    """Raise :class:`InvalidInput` saying why ``password`` may not be used (create, change, reset)."""
    problem = password_problem(password, username=username)
    if problem:
        raise InvalidInput(problem, where=f"password of user {username!r}", hint="choose another password")


def set_memberships(store: Store, *, username: str, memberships: Sequence[Membership], actor: str) -> None:
    """Replace a person's (tenant, role) memberships; the next request already sees them."""
    _check_memberships(store, memberships)
    doc = store.get_doc("users", username.lower())
    after = [{"tenant": m.tenant, "role": m.role} for m in memberships]
    store.update_doc("users", doc.id, {**doc.body, "memberships": after}, version=doc.version)
    audit.record(
        store,
        actor=actor,
        action="user.memberships",
        target=f"users/{doc.id}",
        before={"memberships": doc.body.get("memberships")},
        after={"memberships": after},
    )


def _check_memberships(store: Store, memberships: Sequence[Membership]) -> None:
    for membership in memberships:
        if membership.role not in ROLES:
            raise InvalidInput(f"unknown role {membership.role!r}", hint=f"use one of {', '.join(ROLES)}")
        if membership.tenant != PROVINCE and not tenant_exists(store, membership.tenant):
            raise InvalidInput(f"unknown tenant {membership.tenant!r}", hint="create it with `soc tenant add`")


@dataclass(frozen=True)
class SignedIn:
    token: str
    expires: datetime
    must_change_password: bool


@dataclass(frozen=True)
class TotpEnrolment:
    """The password was right, but a role of this person needs TOTP and none is enrolled yet:
    no session until a code from this secret comes back with ``token``."""

    username: str
    token: str
    secret: str
    uri: str
    expires: datetime


TOTP_ENROLMENT_LIFETIME = timedelta(minutes=10)


def needs_totp(user: dict[str, Any], required_roles: Collection[str]) -> bool:
    return any(m.get("role") in required_roles for m in user.get("memberships", []))


def login(
    store: Store,
    *,
    username: str,
    password: str,
    lifetime: timedelta,
    totp: str | None = None,
    totp_required_roles: Collection[str] = (),
) -> SignedIn | TotpEnrolment:
    """A new session for valid credentials (and TOTP code), or the TOTP enrolment step a person
    whose role requires TOTP must finish first; the same error for every failure."""
    try:
        doc = store.get_doc("users", username.lower())
    except NotFound:
        doc = None
    user = doc.body if doc else None
    ok = verify_password(user["password_hash"] if user else None, password)
    if not ok or doc is None or user is None or user.get("disabled"):
        raise AuthError("invalid username or password")
    if user.get("totp_secret"):
        step = verify_totp(user["totp_secret"], totp or "", last_step=user.get("totp_last_step"))
        if step is None:
            raise AuthError("invalid username or password")
        try:  # remember the step so the same code cannot be used twice
            store.update_doc("users", doc.id, {**user, "totp_last_step": step}, version=doc.version)
        except Conflict as exc:
            raise AuthError("concurrent sign-in; try again") from exc
    elif needs_totp(user, totp_required_roles):
        return _start_totp_enrolment(store, doc.id, user, doc.version)
    return _new_session(store, doc.id, user, lifetime)


def _new_session(store: Store, user_id: str, user: dict[str, Any], lifetime: timedelta) -> SignedIn:
    token = new_token()
    now = utcnow()
    expires = now + lifetime
    store.create_doc(
        "sessions",
        {
            "user_id": user_id,
            "created_at": format_timestamp(now),
            "expires_at": format_timestamp(expires),
            "last_seen": format_timestamp(now),
        },
        doc_id=digest(token),
    )
    return SignedIn(token, expires, bool(user.get("must_change_password")))


def _start_totp_enrolment(store: Store, user_id: str, user: dict[str, Any], version: str) -> TotpEnrolment:
    token = new_token()
    secret = new_totp_secret()
    expires = utcnow() + TOTP_ENROLMENT_LIFETIME
    pending = {"secret": secret, "token_digest": digest(token), "expires_at": format_timestamp(expires)}
    try:
        store.update_doc("users", user_id, {**user, "totp_pending": pending}, version=version)
    except Conflict as exc:
        raise AuthError("concurrent sign-in; try again") from exc
    return TotpEnrolment(user["username"], token, secret, totp_uri(secret, user["username"]), expires)


def finish_totp_enrolment(store: Store, *, username: str, token: str, code: str, lifetime: timedelta) -> SignedIn:
    """Save the pending TOTP secret once a code from it proves the person holds it; a session."""
    try:
        doc = store.get_doc("users", username.lower())
    except NotFound as exc:
        raise AuthError("invalid enrolment") from exc
    user = doc.body
    pending = user.get("totp_pending") or {}
    if (
        user.get("disabled")
        or not pending
        or not same_digest(token, pending["token_digest"])
        or parse_timestamp(pending["expires_at"]) <= utcnow()
    ):
        raise AuthError("invalid or expired enrolment")
    step = verify_totp(pending["secret"], code, last_step=None)
    if step is None:
        raise AuthError("wrong code")
    enrolled = {k: v for k, v in user.items() if k != "totp_pending"}
    enrolled.update(totp_secret=pending["secret"], totp_last_step=step)
    try:
        store.update_doc("users", doc.id, enrolled, version=doc.version)
    except Conflict as exc:
        raise AuthError("concurrent sign-in; try again") from exc
    audit.record(store, actor=doc.id, action="user.totp_enrolled", target=f"users/{doc.id}")
    return _new_session(store, doc.id, enrolled, lifetime)


class Throttled(AuthError):
    """Too many failed sign-ins for this name from this address, or from this address; wait."""

    def __init__(self, wait: Wait) -> None:
        super().__init__("too many failed sign-ins")
        self.retry_after = wait.retry_after


T = TypeVar("T")


def throttled(
    store: Store,
    throttle: LoginThrottle,
    *,
    username: str,
    action: str,
    attempt: Callable[[], T],
    request_id: str | None,
    source_ip: str | None,
) -> T:
    """Run ``attempt`` (a check of a secret for ``username``) under the sign-in throttle, with an
    audit record of every outcome. Raises :class:`Throttled`, or the attempt's
    :class:`AuthError` (counted as a failure)."""
    context: dict[str, Any] = {"request_id": request_id, "source_ip": source_ip}
    actor = username[:100]
    wait = throttle.check(username, source_ip)
    if wait is not None:
        audit.record(store, actor=actor, action=action, outcome="throttled", **context)
        raise Throttled(wait)
    try:
        result = attempt()
    except AuthError:
        throttle.failed(username, source_ip)
        audit.record(store, actor=actor, action=action, outcome="failure", **context)
        raise
    throttle.succeeded(username, source_ip)
    audit.record(store, actor=actor.lower(), action=action, **context)
    return result


def change_own_password(
    store: Store,
    throttle: LoginThrottle,
    principal: Principal,
    *,
    current: str,
    new: str,
    request_id: str | None,
    source_ip: str | None,
) -> None:
    """A person changes their own password: the current one is checked under the sign-in
    throttle (API and UI alike). Raises :class:`Throttled` or :class:`AuthError`."""
    throttled(
        store,
        throttle,
        username=principal.id,
        action="auth.password_check",
        attempt=lambda: change_password(
            store, principal, current=current, new=new, request_id=request_id, source_ip=source_ip
        ),
        request_id=request_id,
        source_ip=source_ip,
    )


def sign_in(
    store: Store,
    throttle: LoginThrottle,
    *,
    username: str,
    password: str,
    totp: str | None,
    lifetime: timedelta,
    totp_required_roles: Collection[str],
    request_id: str | None,
    source_ip: str | None,
) -> SignedIn | TotpEnrolment:
    """A person signing in (API or web UI): throttling, the checks of :func:`login`, and the
    audit record of every outcome. Raises :class:`Throttled` or :class:`AuthError`."""
    return throttled(
        store,
        throttle,
        username=username,
        action="auth.login",
        attempt=lambda: login(
            store,
            username=username,
            password=password,
            lifetime=lifetime,
            totp=totp,
            totp_required_roles=totp_required_roles,
        ),
        request_id=request_id,
        source_ip=source_ip,
    )


def sign_out(store: Store, principal: Principal, *, request_id: str | None, source_ip: str | None) -> None:
    if principal.session_id:
        logout(store, principal.session_id)
    audit.record(store, actor=principal.id, action="auth.logout", request_id=request_id, source_ip=source_ip)


def enroll_totp(store: Store, username: str, *, actor: str = "system") -> str:
    """Give the user a new TOTP secret (replacing any old one); returns the otpauth URI."""
    doc = store.get_doc("users", username.lower())
    secret = new_totp_secret()
    store.update_doc("users", doc.id, {**doc.body, "totp_secret": secret, "totp_last_step": None}, version=doc.version)
    audit.record(store, actor=actor, action="user.totp_enrolled", target=f"users/{doc.id}")
    return totp_uri(secret, doc.body["username"])


def logout(store: Store, session_id: str) -> None:
    store.delete_doc("sessions", session_id)


def _active_user(store: Store, user_id: str) -> dict[str, Any]:
    try:
        user = store.get_doc("users", user_id).body
    except NotFound as exc:
        raise AuthError("unknown user") from exc
    if user.get("disabled"):
        raise AuthError("user disabled")
    return user


def principal_from_token(store: Store, token: str, *, idle: timedelta) -> Principal:
    """The person behind a session token (API keys: :mod:`soc_api.services.apikeys`)."""
    session_id = digest(token)
    try:
        session = store.get_doc("sessions", session_id)
    except NotFound as exc:
        raise AuthError("unknown session") from exc
    now = utcnow()
    body = session.body
    if parse_timestamp(body["expires_at"]) <= now or parse_timestamp(body["last_seen"]) + idle <= now:
        store.delete_doc("sessions", session_id)
        raise AuthError("session expired")
    user = _active_user(store, body["user_id"])
    if (now - parse_timestamp(body["last_seen"])).total_seconds() > 60:
        with contextlib.suppress(Conflict):  # a concurrent request refreshed it already
            store.update_doc(
                "sessions", session_id, {**body, "last_seen": format_timestamp(now)}, version=session.version
            )
    return Principal(
        id=body["user_id"],
        name=user.get("display_name", body["user_id"]),
        kind="user",
        memberships=_memberships(user.get("memberships", [])),
        session_id=session_id,
        must_change_password=bool(user.get("must_change_password")),
        timezone=user.get("timezone"),
    )


def set_timezone(
    store: Store, username: str, zone: str, *, actor: str, request_id: str | None = None, source_ip: str | None = None
) -> str:
    """A person's time zone for the UI (an IANA name such as ``Asia/Ho_Chi_Minh``)."""
    name = zone.strip()
    if name not in available_timezones():
        raise InvalidInput(
            f"unknown time zone {zone[:60]!r}", where="timezone", hint="use an IANA name: Asia/Ho_Chi_Minh, UTC, …"
        )
    user_id = username.lower()
    for _ in range(5):
        try:
            doc = store.get_doc("users", user_id)
        except NotFound as exc:
            raise NotFound(f"no user {username!r}", hint="soc user add creates one") from exc
        try:
            store.update_doc("users", user_id, {**doc.body, "timezone": name}, version=doc.version)
        except Conflict:
            continue
        audit.record(
            store,
            actor=actor,
            action="user.timezone",
            target=f"users/{user_id}",
            before={"timezone": doc.body.get("timezone")},
            after={"timezone": name},
            request_id=request_id,
            source_ip=source_ip,
        )
        return name
    raise Conflict("the account kept changing; try again")


def set_own_timezone(
    store: Store, principal: Principal, zone: str, *, request_id: str | None, source_ip: str | None
) -> str:
    """The signed-in person's own time zone (an API key has no settings)."""
    if principal.kind != "user":
        raise InvalidInput("only a person has settings", where="timezone", hint="sign in as a user, not with a key")
    return set_timezone(store, principal.id, zone, actor=principal.id, request_id=request_id, source_ip=source_ip)


def disable_user(store: Store, username: str, *, actor: str = "system") -> None:
    """Disabled at once: the user's sessions and keys stop working on the next request."""
    doc = store.get_doc("users", username.lower())
    store.update_doc("users", doc.id, {**doc.body, "disabled": True}, version=doc.version)
    audit.record(
        store,
        actor=actor,
        action="user.disable",
        target=f"users/{doc.id}",
        before={"disabled": False},
        after={"disabled": True},
    )
    end_sessions(store, doc.id)


def end_sessions(store: Store, user_id: str, *, keep: str | None = None) -> None:
    """Delete every session of ``user_id`` (but ``keep``, the caller's own)."""
    cursor = None
    while True:
        page = store.list_docs("sessions", filters={"user_id": user_id}, cursor=cursor)
        for session in page.items:
            if session.id != keep:
                store.delete_doc("sessions", session.id)
        cursor = page.next_cursor
        if cursor is None:
            break


def enable_user(store: Store, username: str, *, actor: str = "system") -> None:
    """A disabled person may sign in again (their old sessions are gone; their keys work again)."""
    doc = store.get_doc("users", username.lower())
    store.update_doc("users", doc.id, {**doc.body, "disabled": False}, version=doc.version)
    audit.record(
        store,
        actor=actor,
        action="user.enable",
        target=f"users/{doc.id}",
        before={"disabled": bool(doc.body.get("disabled"))},
        after={"disabled": False},
    )


def manages(scope: tuple[str, ...] | None, user: dict[str, Any]) -> bool:
    """May an admin whose ``users:admin`` tenants are ``scope`` (None = province) manage
    ``user``? Only if every membership of that person lies in those tenants: an agency's admin
    never touches a province-wide account or another agency's person."""
    if scope is None:
        return True
    tenants = [m.get("tenant") for m in user.get("memberships", [])]
    return bool(tenants) and all(tenant in scope for tenant in tenants)


def managed_user(store: Store, username: str, scope: tuple[str, ...] | None) -> Doc:
    """The user document if the caller may manage it; :class:`NotFound` otherwise (no hint
    that a person outside the caller's agencies exists)."""
    doc = store.get_doc("users", username.lower())
    if not manages(scope, doc.body):
        raise NotFound(f"no user {username!r}")
    return doc


def list_users(store: Store, scope: tuple[str, ...] | None) -> list[Doc]:
    """Every person the caller may manage, by user name."""
    found: list[Doc] = []
    cursor = None
    while True:
        page = store.list_docs("users", sort="username", descending=False, size=500, cursor=cursor)
        found += [doc for doc in page.items if manages(scope, doc.body)]
        cursor = page.next_cursor
        if cursor is None:
            return found


def change_password(
    store: Store, principal: Principal, *, current: str, new: str, request_id: str | None, source_ip: str | None
) -> None:
    """A person sets their own password (proving the current one); their other sessions end."""
    doc = store.get_doc("users", principal.id)
    if not verify_password(doc.body.get("password_hash"), current):
        raise AuthError("the current password is wrong")
    check_password(new, username=doc.body["username"])
    if verify_password(doc.body.get("password_hash"), new):
        raise InvalidInput("the new password is the current one", hint="choose another password")
    _set_password(store, doc, new)
    end_sessions(store, doc.id, keep=principal.session_id)
    audit.record(
        store,
        actor=principal.id,
        action="user.password_change",
        target=f"users/{doc.id}",
        request_id=request_id,
        source_ip=source_ip,
    )


def _set_password(store: Store, doc: Doc, password: str) -> None:
    body = {k: v for k, v in doc.body.items() if k != "password_reset"}
    body.update(password_hash=hash_password(password), must_change_password=False)
    store.update_doc("users", doc.id, body, version=doc.version)


RESET_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud or typed from paper
RESET_CODE_LENGTH = 16  # 80 bits


def _normal_code(code: str) -> str:
    return "".join(code.split()).replace("-", "").upper()


def issue_reset(store: Store, username: str, *, lifetime: timedelta, actor: str) -> tuple[str, datetime]:
    """A one-time reset code for ``username`` (shown once; only its digest is kept) and when it
    expires. The person's sessions end now; the code sets a new password once."""
    doc = store.get_doc("users", username.lower())
    raw = "".join(secrets.choice(RESET_ALPHABET) for _ in range(RESET_CODE_LENGTH))
    expires = utcnow() + lifetime
    reset = {"code_digest": digest(raw), "expires_at": format_timestamp(expires), "issued_by": actor}
    store.update_doc("users", doc.id, {**doc.body, "password_reset": reset}, version=doc.version)
    end_sessions(store, doc.id)
    audit.record(store, actor=actor, action="user.password_reset_issued", target=f"users/{doc.id}")
    code = "-".join(raw[i : i + 4] for i in range(0, RESET_CODE_LENGTH, 4))
    return code, expires


def reset_with_code(store: Store, *, username: str, code: str, new: str) -> None:
    """Set a new password with a reset code; the code works once, before it expires."""
    try:
        doc = store.get_doc("users", username.lower())
    except NotFound as exc:
        raise AuthError("invalid or expired reset code") from exc
    reset = doc.body.get("password_reset") or {}
    if (
        not reset
        or not same_digest(_normal_code(code), reset["code_digest"])
        or parse_timestamp(reset["expires_at"]) <= utcnow()
    ):
        raise AuthError("invalid or expired reset code")
    check_password(new, username=doc.body["username"])
    try:
        _set_password(store, doc, new)
    except Conflict as exc:  # the same code used twice at once: one of them wins
        raise AuthError("invalid or expired reset code") from exc
    end_sessions(store, doc.id)
    audit.record(store, actor=doc.id, action="user.password_reset", target=f"users/{doc.id}")


__all__ = [
    "SignedIn",
    "Throttled",
    "TotpEnrolment",
    "add_tenant",
    "add_user",
    "change_password",
    "check_password",
    "disable_user",
    "enable_user",
    "end_sessions",
    "enroll_totp",
    "finish_totp_enrolment",
    "issue_reset",
    "list_users",
    "login",
    "logout",
    "managed_user",
    "manages",
    "principal_from_token",
    "reset_with_code",
    "set_memberships",
    "sign_in",
    "sign_out",
    "tenant_exists",
    "throttled",
]
