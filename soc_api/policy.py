"""Who may call what: one table for every route; anything not listed is denied.

Permissions are granted per membership (user, tenant, role). For a given permission the caller
may act on exactly the tenants whose membership role grants it — rights from one agency never
carry over to another.
"""

from __future__ import annotations

from typing import Final

PUBLIC: Final = "public"
AUTHENTICATED: Final = "authenticated"  # any signed-in principal, no tenant data involved

# The roles' grants (ROLE_PERMISSIONS) live in workflow.principals, beside Principal, which reads them.

# (method, path template) -> permission
POLICY: dict[tuple[str, str], str] = {
    ("GET", "/api/health"): PUBLIC,
    ("POST", "/api/auth/login"): PUBLIC,
    ("POST", "/api/auth/totp"): PUBLIC,
    ("POST", "/api/auth/reset"): PUBLIC,
    ("POST", "/api/auth/password"): AUTHENTICATED,
    ("POST", "/api/auth/logout"): AUTHENTICATED,
    ("GET", "/api/auth/me"): AUTHENTICATED,
    ("PATCH", "/api/auth/me"): AUTHENTICATED,
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
    # stored weekly reports: an agency's for its members, the province's (*) for province-wide ones
    ("POST", "/api/reports/weekly"): "reports:write",
    ("GET", "/api/reports"): "reports:read",
    ("GET", "/api/reports/{report_id}"): "reports:read",
    ("GET", "/api/reports/{report_id}/download"): "reports:read",
    ("GET", "/api/jobs"): "jobs:admin",
    ("GET", "/api/jobs/{job_id}/runs"): "jobs:admin",
    ("POST", "/api/jobs/{job_id}/run"): "jobs:admin",
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
    ("POST", "/ui/alerts/bulk"): "alerts:write",
    ("GET", "/ui/settings"): AUTHENTICATED,
    ("POST", "/ui/settings"): AUTHENTICATED,
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
    ("GET", "/ui/reports"): "reports:read",
    ("POST", "/ui/reports"): "reports:write",
    ("GET", "/ui/reports/{report_id}/document"): "reports:read",
    ("GET", "/ui/dashboard"): "reports:read",
    ("GET", "/ui/jobs"): "jobs:admin",
    ("POST", "/ui/jobs/{job_id}/run"): "jobs:admin",
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


__all__ = [
    "AUTHENTICATED",
    "DOCS_ROUTES",
    "PASSWORD_CHANGE_ROUTES",
    "POLICY",
    "PUBLIC",
    "UI_POLICY",
]
