"""API keys for sensors and integrations: create, list, revoke, re-own, and authenticate.

Every key has an owner, a person. A key never holds more than its owner holds *now*: at every
request its rights are intersected with the owner's current memberships
(:meth:`~workflow.principals.Principal.tenants_for`), so demoting the owner limits the key
and disabling or deleting the owner kills it. Only the SHA-256 digest of a key is stored; the key
itself is shown once, at creation.

Expiry: integration keys default to 90 days and may ask for up to 365. Sensor keys get 365 days
(at most 365): a sensor is unattended, and a key that lapses every quarter stops ingest four
times a year; a sensor key can only write events into its one agency, and rotation (a new key
for the same sensor, then revoking the old one) is a yearly chore. Keys made before expiry
existed expire at their creation time plus their kind's default; keys made before owners were
required have none and are refused until ``soc apikey owner`` gives them one.

Last use (time and source address) is written at most once a minute per key, with a conditional
update, so a busy sensor's ingest costs one extra write a minute, not one per request.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from soc_api.services.accounts import tenant_exists
from soc_core.auth import KEY_ROLES, PROVINCE, Membership, api_key_id, digest, new_api_key, same_digest
from soc_core.errors import AuthError, Conflict, InvalidInput, NotFound, NotVisible
from soc_core.events import format_timestamp, parse_timestamp, utcnow
from soc_core.store import Doc, Page, Store
from workflow import audit
from workflow.principals import Principal, key_owner_permission, permissions_of

INTEGRATION_KEY_DAYS = 90
INTEGRATION_KEY_MAX_DAYS = 365
SENSOR_KEY_DAYS = 365
SENSOR_KEY_MAX_DAYS = 365
LAST_USE_EVERY = timedelta(minutes=1)

KeyStatus = Literal["active", "revoked", "expired", "owner_disabled", "no_owner"]


@dataclass(frozen=True)
class Caller:
    """Who makes a change, for the audit trail."""

    actor: str
    request_id: str | None = None
    source_ip: str | None = None


def _default_days(role: str) -> int:
    return SENSOR_KEY_DAYS if role == "sensor" else INTEGRATION_KEY_DAYS


def _max_days(role: str) -> int:
    return SENSOR_KEY_MAX_DAYS if role == "sensor" else INTEGRATION_KEY_MAX_DAYS


def expires_at(body: Mapping[str, Any]) -> datetime:
    """When the key stops working; a key stored before expiry existed: created + its default."""
    if body.get("expires_at"):
        return parse_timestamp(body["expires_at"])
    return parse_timestamp(body["created_at"]) + timedelta(days=_default_days(str(body.get("role"))))


def _owner_memberships(store: Store, owner: str) -> tuple[Membership, ...] | None:
    """The owner's current memberships, or None if the owner is gone or disabled."""
    try:
        user = store.get_doc("users", owner.lower()).body
    except NotFound:
        return None
    if user.get("disabled"):
        return None
    return tuple(Membership(m["tenant"], m["role"]) for m in user.get("memberships", []))


def _owner_principal(owner: str, memberships: tuple[Membership, ...]) -> Principal:
    return Principal(id=owner, name=owner, kind="user", memberships=memberships)


def _owner_may_hold(owner: Principal, *, tenant: str, role: str) -> bool:
    """Whether the owner holds, in ``tenant``, every right the key would have (for a sensor
    key: the right to administer that agency's sensors)."""
    for permission in {key_owner_permission(p) for p in permissions_of(role)}:
        tenants = owner.tenants_for(permission)
        if tenants is not None and (tenant == PROVINCE or tenant not in tenants):
            return False
    return True


def check_owner(store: Store, *, owner: str, tenant: str, role: str) -> str:
    """The owner's user id if that person may own a key of ``role`` in ``tenant``; else
    :class:`InvalidInput`."""
    memberships = _owner_memberships(store, owner) if owner else None
    # one message whether the person is missing or lacks the rights: no user enumeration
    if memberships is None or not _owner_may_hold(
        _owner_principal(owner.lower(), memberships), tenant=tenant, role=role
    ):
        needs = f"sensors:admin in {tenant!r}" if role == "sensor" else f"role {role!r} in {tenant!r}"
        raise InvalidInput(
            f"owner {owner!r} is not an active person holding {needs}",
            hint="a key can never hold more than its owner; pick another owner or a lesser role",
        )
    return owner.lower()


def create_api_key(
    store: Store,
    *,
    name: str,
    tenant: str,
    role: str,
    owner: str,
    expires_days: int | None = None,
    sensor_id: str | None = None,
    caller: Caller | None = None,
) -> tuple[Doc, str]:
    """A new key bound to one tenant and role, owned by a person; returns its document and the
    key itself (shown once)."""
    caller = caller or Caller("system")
    if role not in KEY_ROLES:
        raise InvalidInput(f"unknown role {role!r}", hint=f"use one of {', '.join(KEY_ROLES)}")
    if role == "sensor":
        if tenant == PROVINCE:
            raise InvalidInput("a sensor key belongs to one agency", hint="name the agency")
        if not sensor_id:
            raise InvalidInput("a sensor key names its sensor", hint="give the sensor id")
        try:
            sensor = store.get_doc("sensors", sensor_id)
        except NotFound as exc:
            raise InvalidInput(f"no sensor {sensor_id!r} in {tenant!r}") from exc
        if sensor.body.get("tenant") != tenant:
            raise InvalidInput(f"no sensor {sensor_id!r} in {tenant!r}")
    elif sensor_id:
        raise InvalidInput("only a sensor key names a sensor", hint="use role sensor, or leave the sensor out")
    if tenant != PROVINCE and not tenant_exists(store, tenant):
        raise InvalidInput(f"unknown tenant {tenant!r}", hint="create it with `soc tenant add`")
    days = _default_days(role) if expires_days is None else expires_days
    if not 1 <= days <= _max_days(role):
        raise InvalidInput(
            f"a {'sensor' if role == 'sensor' else 'integration'} key lives 1 to {_max_days(role)} days, not {days}"
        )
    owner_id = check_owner(store, owner=owner, tenant=tenant, role=role)
    key_id, key = new_api_key()
    now = utcnow()
    body = {
        "name": name,
        "tenant": tenant,
        "role": role,
        "owner": owner_id,
        "digest": digest(key),
        "sensor_id": sensor_id,
        "created_at": format_timestamp(now),
        "created_by": caller.actor,
        "expires_at": format_timestamp(now + timedelta(days=days)),
        "revoked_at": None,
        "revoked_by": None,
        "last_used_at": None,
        "last_used_ip": None,
    }
    doc = store.create_doc("apikeys", body, doc_id=key_id)
    audit.record(
        store,
        actor=caller.actor,
        action="apikey.create",
        tenant=None if tenant == PROVINCE else tenant,
        target=f"apikeys/{key_id}",
        after={"name": name, "role": role, "owner": owner_id, "expires_at": body["expires_at"], "sensor_id": sensor_id},
        request_id=caller.request_id,
        source_ip=caller.source_ip,
    )
    return doc, key


def visible_key(store: Store, key_id: str, scope: tuple[str, ...] | None) -> Doc:
    """The key if it belongs to one of the caller's tenants; otherwise it does not exist."""
    doc = store.get_doc("apikeys", key_id)
    if scope is not None and doc.body.get("tenant") not in scope:
        raise NotVisible("no such API key", target=f"apikeys/{key_id}", owner=doc.body.get("tenant"))
    return doc


def list_keys(
    store: Store, *, scope: tuple[str, ...] | None, owner: str | None = None, size: int = 100, cursor: str | None = None
) -> Page[Doc]:
    """Keys of the caller's tenants (a province-wide key only for province-wide callers)."""
    filters = {"owner": owner.lower()} if owner else {}
    return store.list_docs("apikeys", tenants=scope, filters=filters, sort="created_at", size=size, cursor=cursor)


def statuses(store: Store, docs: list[Doc]) -> dict[str, KeyStatus]:
    """Each key's status now (its owner's state read once per owner)."""
    owners: dict[str, bool] = {}
    now = utcnow()
    result: dict[str, KeyStatus] = {}
    for doc in docs:
        body = doc.body
        owner = str(body.get("owner") or "")
        if owner and owner not in owners:
            owners[owner] = _owner_memberships(store, owner) is not None
        if body.get("revoked_at"):
            result[doc.id] = "revoked"
        elif expires_at(body) <= now:
            result[doc.id] = "expired"
        elif not owner:
            result[doc.id] = "no_owner"
        elif not owners[owner]:
            result[doc.id] = "owner_disabled"
        else:
            result[doc.id] = "active"
    return result


def revoke_key(store: Store, key_id: str, *, scope: tuple[str, ...] | None, caller: Caller) -> Doc:
    """Revoked at once: the next request with the key is a 401. Revoking twice changes nothing."""
    for _ in range(10):
        doc = visible_key(store, key_id, scope)
        if doc.body.get("revoked_at"):
            return doc
        body = {**doc.body, "revoked_at": format_timestamp(utcnow()), "revoked_by": caller.actor}
        try:
            updated = store.update_doc("apikeys", key_id, body, version=doc.version)
        except Conflict:
            continue  # its last use was being recorded; read it again
        tenant = doc.body.get("tenant")
        audit.record(
            store,
            actor=caller.actor,
            action="apikey.revoke",
            tenant=None if tenant == PROVINCE else tenant,
            target=f"apikeys/{key_id}",
            before={"revoked_at": None},
            after={"revoked_at": body["revoked_at"]},
            request_id=caller.request_id,
            source_ip=caller.source_ip,
        )
        return updated
    raise Conflict(f"API key {key_id} kept changing", hint="revoke it again")


def set_owner(store: Store, key_id: str, *, owner: str, caller: Caller) -> Doc:
    """Give a key a new owner (a key made before owners were required, or one whose owner left);
    the new owner must hold what the key holds."""
    for _ in range(10):
        doc = store.get_doc("apikeys", key_id)
        body = doc.body
        owner_id = check_owner(store, owner=owner, tenant=str(body["tenant"]), role=str(body["role"]))
        try:
            updated = store.update_doc("apikeys", key_id, {**body, "owner": owner_id}, version=doc.version)
        except Conflict:
            continue
        tenant = body.get("tenant")
        audit.record(
            store,
            actor=caller.actor,
            action="apikey.owner",
            tenant=None if tenant == PROVINCE else tenant,
            target=f"apikeys/{key_id}",
            before={"owner": body.get("owner")},
            after={"owner": owner_id},
            request_id=caller.request_id,
            source_ip=caller.source_ip,
        )
        return updated
    raise Conflict(f"API key {key_id} kept changing", hint="try again")


def is_api_key(token: str) -> bool:
    return api_key_id(token) is not None


def principal_from_api_key(store: Store, key: str, *, source_ip: str | None = None) -> Principal:
    """The principal of a valid key; :class:`AuthError` for an unknown, wrong, revoked or expired
    key, and for one whose owner is missing, disabled or deleted."""
    key_id = api_key_id(key)
    if key_id is None:
        raise AuthError("not an API key")
    try:
        doc = store.get_doc("apikeys", key_id)
    except NotFound as exc:
        raise AuthError("unknown API key") from exc
    body = doc.body
    if not same_digest(key, body["digest"]):
        raise AuthError("invalid API key")
    if body.get("revoked_at"):
        raise AuthError("API key revoked")
    now = utcnow()
    if expires_at(body) <= now:
        raise AuthError("API key expired")
    owner = str(body.get("owner") or "")
    owner_memberships = _owner_memberships(store, owner) if owner else None
    if owner_memberships is None:
        raise AuthError("API key owner missing or disabled")
    last = body.get("last_used_at")
    if not last or now - parse_timestamp(last) >= LAST_USE_EVERY:
        with contextlib.suppress(Conflict, NotFound):  # another request recorded it first
            store.update_doc(
                "apikeys",
                key_id,
                {**body, "last_used_at": format_timestamp(now), "last_used_ip": source_ip},
                version=doc.version,
            )
    return Principal(
        id=f"apikey:{key_id}",
        name=body["name"],
        kind="apikey",
        memberships=(Membership(body["tenant"], body["role"]),),
        sensor_id=body.get("sensor_id"),
        owner=owner,
        owner_memberships=owner_memberships,
    )


__all__ = [
    "INTEGRATION_KEY_DAYS",
    "INTEGRATION_KEY_MAX_DAYS",
    "LAST_USE_EVERY",
    "SENSOR_KEY_DAYS",
    "SENSOR_KEY_MAX_DAYS",
    "Caller",
    "KeyStatus",
    "check_owner",
    "create_api_key",
    "expires_at",
    "is_api_key",
    "list_keys",
    "principal_from_api_key",
    "revoke_key",
    "set_owner",
    "statuses",
    "visible_key",
]
