"""Errors as ``application/problem+json`` (RFC 9457), with the request id in every body.

Known errors keep their message; anything unexpected answers a generic 500 and the details go
to the server log only.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from soc_api.client import client_address
from soc_api.services import audit
from soc_api.services.alerts import WorkflowError
from soc_core.errors import AuthError, Conflict, InvalidInput, NotFound, NotVisible, SocError, StoreUnavailable
from soc_core.query import QueryError

log = logging.getLogger("canhgac.api")
PROBLEM = "application/problem+json"


class ApiProblem(Exception):
    """Raised by routes and dependencies to answer with a problem document."""

    def __init__(self, status: int, title: str, detail: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = headers or {}


def problem(request: Request, status: int, title: str, detail: str = "", **extra: Any) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": getattr(request.state, "request_id", None),
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str = ""
    instance: str | None = None
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = None


def _problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM: {"schema": Problem.model_json_schema()}}}


# Documented on every operation, so clients (and schemathesis) know every answer we give.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem_response("Malformed query, cursor or field"),
    401: _problem_response("Not authenticated"),
    403: _problem_response("Not permitted"),
    404: _problem_response("No such object (or not visible to you)"),
    409: _problem_response("Changed since read, or exists already"),
    413: _problem_response("Request body larger than the route's limit (api.limits)"),
    422: _problem_response("Request does not match the schema, or the workflow forbids it"),
    429: _problem_response("Too many attempts"),
    503: _problem_response("Store unavailable"),
}


def record_cross_tenant(request: Request, exc: NotVisible) -> None:
    """Record a refused attempt on another agency's object (rate-limited per principal). The
    caller's answer does not change: the same 404 as for an object that does not exist."""
    principal = getattr(request.state, "principal", None)
    if principal is None:
        return
    route = request.scope.get("route")
    template = route.path if isinstance(route, APIRoute) else request.url.path
    try:
        audit.record_cross_tenant(
            request.app.state.store,
            request.app.state.cross_tenant_limiter,
            actor=principal.id,
            actor_tenants=sorted({m.tenant for m in principal.memberships}),
            target=exc.target,
            owner=exc.owner,
            operation=f"{request.method} {template}",
            request_id=request.state.request_id,
            source_ip=client_address(request),
        )
    except SocError as error:  # the refusal stands; only its record is missing, and the log says so
        log.error("cross-agency attempt not recorded", extra={"target": exc.target, "error": error.render()})


async def note_cross_tenant(request: Request, exc: NotVisible) -> None:
    """:func:`record_cross_tenant` from an (async) exception handler: the store call runs in
    the thread pool, off the event loop."""
    await run_in_threadpool(record_cross_tenant, request, exc)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiProblem)
    async def _api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        response = problem(request, exc.status, exc.title, exc.detail)
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in err.get("loc", ())], "msg": err.get("msg", ""), "type": err.get("type", "")}
            for err in exc.errors()
        ]
        return problem(request, 422, "Invalid request", "the request does not match the schema", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(request, exc.status_code, str(exc.detail))

    @app.exception_handler(SocError)
    async def _soc(request: Request, exc: SocError) -> JSONResponse:
        if isinstance(exc, NotFound):
            if isinstance(exc, NotVisible):
                await note_cross_tenant(request, exc)
            return problem(request, 404, "Not found", "no such object")
        if isinstance(exc, Conflict):
            return problem(request, 409, "Conflict", exc.render())
        if isinstance(exc, QueryError):
            return problem(request, 400, "Bad query", exc.render())
        if isinstance(exc, InvalidInput):
            return problem(request, 400, "Bad request", exc.message)
        if isinstance(exc, WorkflowError):
            return problem(request, 422, "Not allowed by the workflow", exc.render())
        if isinstance(exc, AuthError):
            return problem(request, 401, "Unauthorized", "authentication required")
        if isinstance(exc, StoreUnavailable):
            log.error("store unavailable", extra={"request_id": request.state.request_id, "error": exc.render()})
            return problem(request, 503, "Store unavailable", "the data store cannot be reached; try again")
        log.error("request failed", extra={"request_id": request.state.request_id, "error": exc.render()})
        return problem(request, 500, "Internal error", "the request failed; quote the request id to an admin")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", extra={"request_id": getattr(request.state, "request_id", None)})
        return problem(request, 500, "Internal error", "the request failed; quote the request id to an admin")


__all__ = [
    "ERROR_RESPONSES",
    "PROBLEM",
    "ApiProblem",
    "Problem",
    "install_error_handlers",
    "note_cross_tenant",
    "problem",
    "record_cross_tenant",
]
