"""Users, tenants, sessions and API keys, kept as store documents.

Users are global documents (no ``tenant``); what they may see comes from their memberships.
Sessions and API keys are stored under the SHA-256 digest of the secret.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from soc_api.policy import key_owner_permission, permissions_of
from soc_api.services import audit
from soc_api.services.throttle import LoginThrottle
from soc_core.auth import (
    PROVINCE,
    ROLES,
    Membership,
    digest,
    hash_password,
    new_token,
    new_totp_secret,
    password_problem,
    totp_uri,
    verify_password,
    verify_totp,
)
from soc_core.errors import AuthError, Conflict, NotFound, SocError
from soc_core.events import check_tenant_id, format_timestamp, parse_timestamp, utcnow
from soc_core.store import Store


@dataclass(frozen=True)
class Principal:
    """Who is calling: a person (session) or an integration (API key)."""

    id: str
    name: str
    kind: str  # "user" or "apikey"
    memberships: tuple[Membership, ...] = field(default_factory=tuple)
    session_id: str | None = None
    sensor_id: str | None = None  # set for a sensor's API key
    owner: str | None = None  # an API key's owner (a person)
    # an API key's owner's memberships, read at this request: the key never holds more
    owner_memberships: tuple[Membership, ...] | None = None

    def tenants_for(self, permission: str) -> tuple[str, ...] | None:
        """Tenants where this principal holds ``permission``; ``None`` means every tenant.
        For an API key, only where its owner holds the same right now (for a sensor's rights,
        the right to administer sensors)."""
        granted = _granted(self.memberships, permission)
        if self.owner_memberships is None:
            return granted
        held = _granted(self.owner_memberships, key_owner_permission(permission))
        if granted is None:
            return held
        return granted if held is None else tuple(t for t in granted if t in held)

    def may(self, permission: str) -> bool:
        tenants = self.tenants_for(permission)
        return tenants is None or bool(tenants)


def _granted(memberships: Sequence[Membership], permission: str) -> tuple[str, ...] | None:
    granted = [m.tenant for m in memberships if permission in permissions_of(m.role)]
    if PROVINCE in granted:
        return None
    return tuple(sorted(set(granted)))


def _memberships(raw: Sequence[dict[str, Any]]) -> tuple[Membership, ...]:
    return tuple(Membership(m["tenant"], m["role"]) for m in raw)


def add_tenant(store: Store, *, tenant_id: str, name: str, actor: str = "system") -> None:
    check_tenant_id(tenant_id)
    try:
        store.create_doc("tenants", {"name": name, "created_at": format_timestamp(utcnow())}, doc_id=tenant_id)
    except Conflict as exc:
        raise SocError(f"tenant {tenant_id!r} exists already") from exc
    audit.record(
        store, actor=actor, action="tenant.add", tenant=tenant_id, target=f"tenants/{tenant_id}", after={"name": name}
    )


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
) -> None:
    problem = password_problem(password)
    if problem:
        raise SocError(problem, where=f"user {username!r}")
    _check_memberships(store, memberships)
    body = {
        "username": username,
        "display_name": display_name or username,
        "password_hash": hash_password(password),
        "disabled": False,
        "memberships": [{"tenant": m.tenant, "role": m.role} for m in memberships],
        "created_at": format_timestamp(utcnow()),
    }
    try:
        store.create_doc("users", body, doc_id=username.lower())
    except Conflict as exc:
        raise SocError(f"user {username!r} exists already") from exc
    audit.record(
        store,
        actor=actor,
        action="user.add",
        target=f"users/{username.lower()}",
        after={"memberships": body["memberships"]},
    )


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
            raise SocError(f"unknown role {membership.role!r}", hint=f"use one of {', '.join(ROLES)}")
        if membership.tenant != PROVINCE and not tenant_exists(store, membership.tenant):
            raise SocError(f"unknown tenant {membership.tenant!r}", hint="create it with `soc tenant add`")


def login(
    store: Store,
    *,
    username: str,
    password: str,
    lifetime: timedelta,
    totp: str | None = None,
    require_totp: bool = False,
) -> tuple[str, datetime]:
    """A new session token for valid credentials (and TOTP code); the same error for every failure."""
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
    elif require_totp:
        raise AuthError("TOTP enrolment required")
    token = new_token()
    now = utcnow()
    expires = now + lifetime
    store.create_doc(
        "sessions",
        {
            "user_id": username.lower(),
            "created_at": format_timestamp(now),
            "expires_at": format_timestamp(expires),
            "last_seen": format_timestamp(now),
        },
        doc_id=digest(token),
    )
    return token, expires


class Throttled(AuthError):
    """Too many failed sign-ins for this name or from this address; wait."""


def sign_in(
    store: Store,
    throttle: LoginThrottle,
    *,
    username: str,
    password: str,
    totp: str | None,
    lifetime: timedelta,
    require_totp: bool,
    request_id: str | None,
    source_ip: str | None,
) -> tuple[str, datetime]:
    """A person signing in (API or web UI): throttling, the checks of :func:`login`, and the
    audit record of every outcome. Raises :class:`Throttled` or :class:`AuthError`."""
    context: dict[str, Any] = {"request_id": request_id, "source_ip": source_ip}
    actor = username[:100]
    if throttle.blocked(username, source_ip):
        audit.record(store, actor=actor, action="auth.login", outcome="throttled", **context)
        raise Throttled("too many failed sign-ins")
    try:
        token, expires = login(
            store, username=username, password=password, lifetime=lifetime, totp=totp, require_totp=require_totp
        )
    except AuthError:
        throttle.failed(username, source_ip)
        audit.record(store, actor=actor, action="auth.login", outcome="failure", **context)
        raise
    throttle.succeeded(username, source_ip)
    audit.record(store, actor=actor.lower(), action="auth.login", **context)
    return token, expires


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
    )


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
    cursor = None
    while True:
        page = store.list_docs("sessions", filters={"user_id": doc.id}, cursor=cursor)
        for session in page.items:
            store.delete_doc("sessions", session.id)
        cursor = page.next_cursor
        if cursor is None:
            break


__all__ = [
    "Principal",
    "add_tenant",
    "add_user",
    "disable_user",
    "enroll_totp",
    "login",
    "logout",
    "principal_from_token",
    "set_memberships",
    "sign_in",
    "sign_out",
    "tenant_exists",
]
