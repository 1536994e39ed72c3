"""Who acts: the principal behind a request or a run, what each role grants, and the actor the
audit trail names.

Below ``playbooks``, ``reports``, ``scheduling`` and ``soc_api`` (DESIGN §2), so a playbook step, a
scheduled job and a person's request check rights and name their actor the same way. The route
table (which permission each route needs) stays in ``soc_api.policy``.
"""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from soc_core.auth import PROVINCE, Membership, Role

ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    "analyst": frozenset(
        {"alerts:read", "alerts:write", "cases:read", "cases:write", "events:read", "rules:read", "sensors:read"}
        | {"playbooks:read", "playbooks:run", "containment:read", "intel:read", "reports:read"}
    ),
    "rule_admin": frozenset(
        {"alerts:read", "events:read", "rules:read", "rules:write"} | {"playbooks:read", "intel:read"}
    ),
    "manager": frozenset(
        {"alerts:read", "cases:read", "events:read", "reports:read", "rules:read", "sensors:read"}
        | {"playbooks:read", "containment:read", "containment:admin", "intel:read"}
        | {"reports:write"}  # generate (and replace) a stored weekly report of their agencies
    ),
    "sensor": frozenset({"events:ingest", "sensors:report"}),
    "admin": frozenset(
        {
            "alerts:read",
            "alerts:write",
            "audit:read",
            "cases:read",
            "cases:write",
            "events:read",
            "rules:read",
            "rules:write",
            "reports:read",
            "reports:write",
            "sensors:read",
            "sensors:admin",
            "users:admin",
            "playbooks:read",
            "playbooks:run",
            "containment:read",
            "containment:admin",  # lift a block (the people who approve containment: manager, admin)
            "jobs:admin",  # scheduled jobs; the routes also require a province-wide membership
            "intel:read",
            # threat-intel lists raise alerts in every engine and are fed from outside sources:
            # an agency's admin changes its lists, a province-wide admin the province's (`*`)
            "intel:write",
        }
    ),
}


def permissions_of(role: str) -> frozenset[str]:
    return ROLE_PERMISSIONS.get(cast(Role, role), frozenset())


# An API key uses a permission only where its owner holds the same one now; a sensor's rights,
# which no person holds, need the owner's right to administer sensors there.
_KEY_OWNER_PERMISSION = {"events:ingest": "sensors:admin", "sensors:report": "sensors:admin"}


def key_owner_permission(permission: str) -> str:
    """The permission an API key's owner must hold for the key to use ``permission``."""
    return _KEY_OWNER_PERMISSION.get(permission, permission)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a person (session) or an integration (API key)."""

    id: str
    name: str
    kind: str  # "user" or "apikey"
    memberships: tuple[Membership, ...] = field(default_factory=tuple)
    session_id: str | None = None
    sensor_id: str | None = None  # set for a sensor's API key
    must_change_password: bool = False  # a first or admin-set password: nothing else until changed
    owner: str | None = None  # an API key's owner (a person)
    # an API key's owner's memberships, read at this request: the key never holds more
    owner_memberships: tuple[Membership, ...] | None = None
    timezone: str | None = None  # a person's own setting for the UI's times (IANA name)

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


@dataclass(frozen=True)
class Actor:
    principal: Principal
    request_id: str | None = None
    source_ip: str | None = None


def cli_actor() -> str:
    """Who the audit trail names for a change made from this command line."""
    return f"cli:{getpass.getuser()}"


__all__ = ["ROLE_PERMISSIONS", "Actor", "Principal", "cli_actor", "key_owner_permission", "permissions_of"]
