"""Who may call what: one table for every route; anything not listed is denied.

Permissions are granted per membership (user, tenant, role). For a given permission the caller
may act on exactly the tenants whose membership role grants it — rights from one agency never
carry over to another.
"""

from __future__ import annotations

from typing import Final, cast

from soc_core.auth import Role

PUBLIC: Final = "public"
AUTHENTICATED: Final = "authenticated"  # any signed-in principal, no tenant data involved

ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    "analyst": frozenset(
        {"alerts:read", "alerts:write", "cases:read", "cases:write", "events:read", "rules:read", "sensors:read"}
        | {"playbooks:read", "playbooks:run", "containment:read", "intel:read"}
    ),
    "rule_admin": frozenset(
        {"alerts:read", "events:read", "rules:read", "rules:write"} | {"playbooks:read", "intel:read"}
    ),
    "manager": frozenset(
        {"alerts:read", "cases:read", "events:read", "reports:read", "rules:read", "sensors:read"}
        | {"playbooks:read", "containment:read", "containment:admin", "intel:read"}
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
            "sensors:read",
            "sensors:admin",
            "users:admin",
            "playbooks:read",
            "playbooks:run",
            "containment:read",
            "containment:admin",  # lift a block (the people who approve containment: manager, admin)
            "intel:read",
            # threat-intel lists raise alerts in every engine and are fed from outside sources:
            # an agency's admin changes its lists, a province-wide admin the province's (`*`)
            "intel:write",
        }
    ),
}

# (method, path template) -> permission
POLICY: dict[tuple[str, str], str] = {
    ("GET", "/api/health"): PUBLIC,
    ("POST", "/api/auth/login"): PUBLIC,
    ("POST", "/api/auth/totp"): PUBLIC,
    ("POST", "/api/auth/reset"): PUBLIC,
    ("POST", "/api/auth/password"): AUTHENTICATED,
    ("POST", "/api/auth/logout"): AUTHENTICATED,
    ("GET", "/api/auth/me"): AUTHENTICATED,
    ("GET", "/api/alerts"): "alerts:read",
    ("GET", "/api/alerts/{alert_id}"): "alerts:read",
    ("PATCH", "/api/alerts/{alert_id}"): "alerts:write",
    ("POST", "/api/alerts/{alert_id}/comments"): "alerts:write",
    ("POST", "/api/alerts/bulk"): "alerts:write",
    ("GET", "/api/events"): "events:read",
    ("POST", "/api/cases"): "cases:write",
    ("GET", "/api/cases"): "cases:read",
    ("GET", "/api/cases/{case_id}"): "cases:read",
    ("PATCH", "/api/cases/{case_id}"): "cases:write",
    ("GET", "/api/audit"): "audit:read",
    ("GET", "/api/audit/verify"): "audit:read",  # and province-wide only (the route checks)
    ("GET", "/api/users"): "users:admin",
    ("POST", "/api/users/{username}/enable"): "users:admin",
    ("POST", "/api/users/{username}/disable"): "users:admin",
    ("POST", "/api/users/{username}/reset"): "users:admin",
    ("POST", "/api/sensors"): "sensors:admin",
    ("GET", "/api/sensors"): "sensors:read",
    ("GET", "/api/sensors/datasets"): "sensors:read",
    ("GET", "/api/sensors/{sensor_id}"): "sensors:read",
    ("POST", "/api/sensors/heartbeat"): "sensors:report",
    ("POST", "/api/ingest"): "events:ingest",
    ("GET", "/api/rules"): "rules:read",
    ("GET", "/api/rules/coverage"): "rules:read",
    ("POST", "/api/rules/validate"): "rules:read",
    ("GET", "/api/rules/{rule_id}"): "rules:read",
    ("POST", "/api/rules"): "rules:write",
    ("POST", "/api/rules/{rule_id}/state"): "rules:write",
    ("POST", "/api/rules/{rule_id}/exceptions"): "rules:write",
    ("POST", "/api/rules/{rule_id}/exceptions/{exception_id}/revoke"): "rules:write",
    ("POST", "/api/rules/{rule_id}/test"): "rules:read",
    ("POST", "/api/rules/{rule_id}/backtest"): "rules:read",
    # threat-intel lists: `*` lists need a province-wide intel:write (soc_api.routes.intel.check_writable)
    ("GET", "/api/intel/lists"): "intel:read",
    ("POST", "/api/intel/lists"): "intel:write",
    ("DELETE", "/api/intel/lists/{tenant}/{name}"): "intel:write",
    ("GET", "/api/apikeys"): "users:admin",
    ("POST", "/api/apikeys"): "users:admin",
    ("POST", "/api/apikeys/{key_id}/revoke"): "users:admin",
    # playbooks are files (playbooks.dirs): read and validated here, changed by deploying files
    ("GET", "/api/playbooks"): "playbooks:read",
    ("POST", "/api/playbooks/validate"): "playbooks:read",
    ("GET", "/api/playbooks/{name}"): "playbooks:read",
    ("POST", "/api/playbooks/{name}/run"): "playbooks:run",
    ("GET", "/api/playbook-runs"): "playbooks:read",
    ("GET", "/api/playbook-runs/{run_id}"): "playbooks:read",
    ("POST", "/api/playbook-runs/{run_id}/cancel"): "playbooks:run",
    ("POST", "/api/playbook-runs/{run_id}/rerun"): "playbooks:run",
    # who decides is the gate's business (its roles in its agency): playbooks.service.decide checks
    ("POST", "/api/playbook-runs/{run_id}/steps/{step_id}/approve"): AUTHENTICATED,
    ("POST", "/api/playbook-runs/{run_id}/steps/{step_id}/reject"): AUTHENTICATED,
    ("GET", "/api/approvals"): AUTHENTICATED,
    ("GET", "/api/containment/blocks"): "containment:read",
    ("POST", "/api/containment/blocks/{block_id}/unblock"): "containment:admin",
}

# The analysts' web UI (soc_api.ui): same permissions, but people sign in with a session cookie
# there, never a bearer token; kept apart from POLICY, which is the API's inventory.
UI_POLICY: dict[tuple[str, str], str] = {
    ("GET", "/ui"): PUBLIC,
    ("GET", "/ui/static/{name}"): PUBLIC,
    ("GET", "/ui/lang"): PUBLIC,
    ("GET", "/ui/login"): PUBLIC,
    ("POST", "/ui/login"): PUBLIC,
    ("POST", "/ui/logout"): AUTHENTICATED,
    ("POST", "/ui/login/totp"): PUBLIC,
    ("GET", "/ui/login/reset"): PUBLIC,
    ("POST", "/ui/login/reset"): PUBLIC,
    ("GET", "/ui/password"): AUTHENTICATED,
    ("POST", "/ui/password"): AUTHENTICATED,
    ("GET", "/ui/users"): "users:admin",
    ("POST", "/ui/users/{username}"): "users:admin",
    ("GET", "/ui/alerts"): "alerts:read",
    ("GET", "/ui/alerts/{alert_id}"): "alerts:read",
    ("POST", "/ui/alerts/{alert_id}"): "alerts:write",
    ("POST", "/ui/alerts/{alert_id}/comments"): "alerts:write",
    ("GET", "/ui/cases"): "cases:read",
    ("POST", "/ui/cases"): "cases:write",
    ("GET", "/ui/cases/{case_id}"): "cases:read",
    ("POST", "/ui/cases/{case_id}"): "cases:write",
    ("GET", "/ui/hunt"): "events:read",
    ("GET", "/ui/keys"): "users:admin",
    ("POST", "/ui/keys"): "users:admin",
    ("POST", "/ui/keys/{key_id}/revoke"): "users:admin",
    ("GET", "/ui/playbooks"): "playbooks:read",
    ("GET", "/ui/playbooks/panel"): "playbooks:read",
    ("POST", "/ui/playbooks/run"): "playbooks:run",
    ("GET", "/ui/playbook-runs/{run_id}"): "playbooks:read",
    ("GET", "/ui/playbook-runs/{run_id}/steps"): "playbooks:read",
    ("POST", "/ui/playbook-runs/{run_id}/cancel"): "playbooks:run",
    ("POST", "/ui/playbook-runs/{run_id}/rerun"): "playbooks:run",
    ("POST", "/ui/playbook-runs/{run_id}/steps/{step_id}"): AUTHENTICATED,
    ("GET", "/ui/approvals"): AUTHENTICATED,
    ("GET", "/ui/approvals/count"): AUTHENTICATED,
    ("GET", "/ui/blocks"): "containment:read",
    ("POST", "/ui/blocks/{block_id}/unblock"): "containment:admin",
    ("GET", "/ui/intel"): "intel:read",
    ("POST", "/ui/intel"): "intel:write",
    ("POST", "/ui/intel/{tenant}/{name}/delete"): "intel:write",
}

# What a session whose password must change (first sign-in, admin-set) may still do
PASSWORD_CHANGE_ROUTES = frozenset(
    {
        ("POST", "/api/auth/password"),
        ("GET", "/api/auth/me"),
        ("POST", "/api/auth/logout"),
        ("GET", "/ui/password"),
        ("POST", "/ui/password"),
        ("POST", "/ui/logout"),
    }
)

# The API reference (public; soc_api.docs): the OpenAPI document, Swagger UI and its assets
DOCS_ROUTES = frozenset({"/openapi.json", "/docs", "/docs/static/{name}"})


def permissions_of(role: str) -> frozenset[str]:
    return ROLE_PERMISSIONS.get(cast(Role, role), frozenset())


# An API key uses a permission only where its owner holds the same one now; a sensor's rights,
# which no person holds, need the owner's right to administer sensors there.
_KEY_OWNER_PERMISSION = {"events:ingest": "sensors:admin", "sensors:report": "sensors:admin"}


def key_owner_permission(permission: str) -> str:
    """The permission an API key's owner must hold for the key to use ``permission``."""
    return _KEY_OWNER_PERMISSION.get(permission, permission)


__all__ = [
    "AUTHENTICATED",
    "DOCS_ROUTES",
    "PASSWORD_CHANGE_ROUTES",
    "POLICY",
    "PUBLIC",
    "ROLE_PERMISSIONS",
    "UI_POLICY",
    "key_owner_permission",
    "permissions_of",
]
