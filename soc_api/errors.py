"""Errors as ``application/problem+json`` (RFC 9457), with the request id in every body.

:data:`ANSWERS` is the one table from error class to HTTP answer: routes raise the product's
errors and never catch them only to pick a status. An error answers as its nearest class in the
table. Errors a client caused keep their message; server-side failures answer a generic text and
the details go to the server log only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from detections.workers import WorkerError
from playbooks.actions.base import ActionError
from playbooks.service import ApprovalRefused, NothingToDecide
from sensors.errors import SensorError
from soc_api.client import client_address
from soc_api.services.accounts import Throttled
from soc_core.errors import (
    AuthError,
    ConfigError,
    Conflict,
    DevNodeError,
    InvalidInput,
    NotFound,
    NotVisible,
    ParseError,
    PlaybookError,
    RuleError,
    SocError,
    StoreError,
    StoreUnavailable,
)
from soc_core.query import QueryError
from workflow import audit
from workflow.alerts import WorkflowError

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


@dataclass(frozen=True)
class Answer:
    """How one error class answers: its status and title, and the detail the client reads
    (``None``: the error's own rendered message; a text: that text, the error only logged)."""

    status: int
    title: str
    detail: str | None = None


_SERVER = "the request failed; quote the request id to an admin"
ANSWERS: dict[type[SocError], Answer] = {
    SocError: Answer(500, "Internal error", _SERVER),
    ConfigError: Answer(500, "Internal error", _SERVER),
    InvalidInput: Answer(400, "Bad request"),
    QueryError: Answer(400, "Bad query"),
    StoreError: Answer(500, "Internal error", _SERVER),
    StoreUnavailable: Answer(503, "Store unavailable", "the data store cannot be reached; try again"),
    NotFound: Answer(404, "Not found", "no such object"),
    NotVisible: Answer(404, "Not found", "no such object"),  # the same answer; audited apart
    Conflict: Answer(409, "Conflict"),
    ParseError: Answer(400, "Bad input"),
    RuleError: Answer(422, "Invalid rule"),
    PlaybookError: Answer(422, "Invalid playbook request"),
    ApprovalRefused: Answer(403, "Approval refused"),  # not one of the gate's people, or an API key
    NothingToDecide: Answer(409, "Nothing to decide"),  # the step is not waiting (any more): the run's state
    ActionError: Answer(502, "Action failed"),  # e.g. an unblock the gateway refused; the message says why
    WorkflowError: Answer(422, "Not allowed by the workflow"),
    AuthError: Answer(401, "Unauthorized", "authentication required"),
    Throttled: Answer(429, "Too many attempts"),
    DevNodeError: Answer(500, "Internal error", _SERVER),
    SensorError: Answer(500, "Internal error", _SERVER),
    WorkerError: Answer(500, "Internal error", _SERVER),
}


def answer_for(exc: SocError) -> Answer:
    """The answer of the nearest class of ``exc`` in :data:`ANSWERS` (``SocError`` at worst)."""
    for cls in type(exc).__mro__:
        if cls in ANSWERS:
            return ANSWERS[cls]
    return ANSWERS[SocError]  # unreachable: every SocError has SocError in its MRO


def soc_problem(request: Request, exc: SocError) -> JSONResponse:
    """The problem document for ``exc``; server-side failures go to the log."""
    answer = answer_for(exc)
    if answer.status >= 500:
        log.error("request failed", extra={"request_id": request.state.request_id, "error": exc.render()})
    response = problem(request, answer.status, answer.title, exc.render() if answer.detail is None else answer.detail)
    if isinstance(exc, Throttled):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


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
        if isinstance(exc, NotVisible):
            await note_cross_tenant(request, exc)
        return soc_problem(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", extra={"request_id": getattr(request.state, "request_id", None)})
        return problem(request, 500, "Internal error", "the request failed; quote the request id to an admin")


__all__ = [
    "ANSWERS",
    "ERROR_RESPONSES",
    "PROBLEM",
    "Answer",
    "ApiProblem",
    "Problem",
    "answer_for",
    "install_error_handlers",
    "note_cross_tenant",
    "problem",
    "record_cross_tenant",
    "soc_problem",
]
