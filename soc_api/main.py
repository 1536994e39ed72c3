"""The SOC API application factory."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable

from fastapi import Depends, FastAPI, Request, Response
from fastapi.routing import APIRoute, iter_route_contexts

from detections.loader import shipped_rules_dir
from soc_api.deps import enforce_policy
from soc_api.docs import install_docs
from soc_api.errors import ERROR_RESPONSES, install_error_handlers
from soc_api.limits import BodyLimits
from soc_api.policy import POLICY, UI_POLICY
from soc_api.routes import (
    alerts,
    apikeys,
    audit,
    auth,
    cases,
    events,
    health,
    intel,
    jobs,
    playbooks,
    reports,
    rules,
    sensors,
    users,
)
from soc_api.services.throttle import LoginThrottle
from soc_api.ui.mount import SECURITY_HEADERS, install_ui, ui_route_inventory
from soc_api.ui.session import is_ui_path
from soc_core import __version__
from soc_core.config import Settings
from soc_core.store import Store
from workflow import audit as audit_trail

# A client's own X-Request-ID is kept (apart from ours) only if it is this plain: it goes into
# audit records and response headers, so nothing that could forge a log line or a header.
CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

ROUTERS = (
    health.router,
    auth.router,
    alerts.router,
    cases.router,
    events.router,
    sensors.router,
    rules.router,
    intel.router,
    audit.router,
    apikeys.router,
    users.router,
    playbooks.router,
    jobs.router,
    reports.router,
)


def create_app(settings: Settings, store: Store) -> FastAPI:
    app = FastAPI(
        title="Canh Gác SOC API",
        version=__version__,
        dependencies=[Depends(enforce_policy)],
        docs_url=None,  # soc_api.docs serves it without a CDN; no ReDoc
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.login_throttle = LoginThrottle(store, settings.auth.throttle)
    audit_trail.configure(store, settings)
    audit_trail.ensure_key(store)
    app.state.cross_tenant_limiter = audit_trail.RefusalLimiter(settings.audit.cross_tenant_per_minute)
    app.state.rules_dirs = list(settings.detection.rules_dirs) or [shipped_rules_dir()]
    for router in ROUTERS:
        app.include_router(router, responses=ERROR_RESPONSES)
    install_error_handlers(app)
    install_ui(app)
    install_docs(app)
    _check_policy_covers_routes(app)
    # added before the request-id middleware, so that one wraps it: a 413 has the id and headers
    app.add_middleware(BodyLimits, limits=settings.api.limits)

    @app.middleware("http")
    async def request_id_and_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        # the server always makes its own id: a client's id could collide with or impersonate
        # another request's in the audit trail
        request.state.request_id = uuid.uuid4().hex
        offered = request.headers.get("x-request-id", "")
        client_id = offered if CLIENT_REQUEST_ID.fullmatch(offered) else None
        request.state.client_request_id = client_id
        token = audit_trail.CLIENT_REQUEST_ID.set(client_id)
        try:
            response = await call_next(request)
        finally:
            audit_trail.CLIENT_REQUEST_ID.reset(token)
        response.headers["X-Request-ID"] = request.state.request_id
        if client_id:
            response.headers["X-Client-Request-ID"] = client_id
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        if is_ui_path(request.url.path):
            # a route that set its own (the framed weekly report: inline style) keeps it
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
        return response

    return app


def route_inventory(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path template) of every API operation: the routes the OpenAPI document lists.

    Read from the routes themselves, as FastAPI's ``get_openapi`` selects them, rather than from
    ``app.openapi()``: building the document costs about half a second per app (it is built
    lazily on the first ``/openapi.json`` instead), and every start and every test app paid it.
    """
    return {
        (method, str(route.path_format))
        for route in iter_route_contexts(app.routes)
        if isinstance(route.original_route, APIRoute) and route.include_in_schema
        for method in route.methods or ()
        if method in {"GET", "POST", "PUT", "PATCH", "DELETE"}
    }


def _check_policy_covers_routes(app: FastAPI) -> None:
    """Refuse to start with a route the policy table does not name (it would be denied anyway)."""
    missing = sorted(f"{method} {path}" for method, path in route_inventory(app) - set(POLICY))
    missing += sorted(f"{method} {path}" for method, path in ui_route_inventory() - set(UI_POLICY))
    if missing:
        raise RuntimeError(f"routes missing from soc_api.policy: {', '.join(missing)}")


__all__ = ["create_app", "route_inventory"]
