"""Request bodies are bounded before they are read (scenario H2).

A pure ASGI middleware in front of the routes, because FastAPI reads and parses a JSON body
before any dependency runs — the policy check included — so without it a 250 MB anonymous
``POST /api/ingest`` was parsed in full before its 401. Per request that declares a body:

- a route that needs a credential, asked without any (no ``Authorization``, API key header or
  session cookie), is handed an empty body: the policy check answers 401 (the UI: the sign-in
  page) and not one byte of the real body is read;
- a ``Content-Length`` over the route's limit answers 413 at once;
- a body without a length (chunked) is counted as it streams and cut with a 413 at the limit.

Each of those answers carries ``Connection: close``, as does any answer given while the
client was still sending: the server then drops the connection instead of reading the rest of
the body only to throw it away. Limits (``api.limits``): ``ingest_bytes`` for
``POST /api/ingest``, ``rule_bytes`` for rule validation and custom rules, ``playbook_bytes`` for playbook
validation, ``intel_bytes`` for threat-intel uploads, ``body_bytes`` for
everything else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import cookie_parser
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from soc_api.policy import POLICY, PUBLIC, UI_POLICY
from soc_api.ui.session import SESSION_COOKIE
from soc_core.config import ApiLimits

# (method, route template) -> the ApiLimits key that bounds its body; others: body_bytes
ROUTE_LIMITS: dict[tuple[str, str], str] = {
    ("POST", "/api/ingest"): "ingest_bytes",
    ("POST", "/api/rules/validate"): "rule_bytes",
    ("POST", "/api/rules"): "rule_bytes",
    ("POST", "/api/playbooks/validate"): "playbook_bytes",
    ("POST", "/api/intel/lists"): "intel_bytes",
}
CREDENTIAL_HEADERS = ("authorization", "x-api-key")


class BodyTooLarge(HTTPException):
    """The body passed its route's limit while streaming. An HTTPException, because FastAPI
    lets those out of its body reader as they are (any other error there becomes a 400)."""

    def __init__(self, limit: int, key: str) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes (api.limits.{key}); send less at once")


@dataclass(frozen=True)
class _Route:
    pattern: re.Pattern[str]
    template: str
    permission: str | None
    limit_key: str


def _route_table(policies: Mapping[tuple[str, str], str]) -> dict[str, list[_Route]]:
    """Per method, every route of the policy tables (the inventory of all routes, checked at
    start), literal paths before templated ones so ``/api/alerts/bulk`` beats ``{alert_id}``."""
    table: dict[str, list[_Route]] = {}
    for (method, template), permission in policies.items():
        pattern, _, _ = compile_path(template)
        limit_key = ROUTE_LIMITS.get((method, template), "body_bytes")
        table.setdefault(method, []).append(_Route(pattern, template, permission, limit_key))
    for routes in table.values():
        routes.sort(key=lambda route: route.template.count("{"))
    return table


UNKNOWN = _Route(re.compile(""), "", None, "body_bytes")


@dataclass
class _Body:
    """What the client sent so far, for the answer's ``Connection`` header."""

    received: int = 0
    complete: bool = False
    started: bool = False  # the answer has begun
    over: BodyTooLarge | None = None  # cut at the limit


def _declared_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    if value is None or not value.isdigit():
        return None  # uvicorn refuses a malformed length before the app sees the request
    return int(value)


def _has_credential(headers: Headers) -> bool:
    if any(headers.get(name) for name in CREDENTIAL_HEADERS):
        return True
    return SESSION_COOKIE in cookie_parser(headers.get("cookie", ""))


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class BodyLimits:
    """The middleware. Routes are found in the policy tables, which name every route."""

    def __init__(self, app: ASGIApp, *, limits: ApiLimits) -> None:
        self.app = app
        self.limits = limits
        self.routes = _route_table({**POLICY, **UI_POLICY})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = _declared_length(headers)
        streamed = "chunked" in headers.get("transfer-encoding", "").lower()
        if not streamed and not declared:
            await self.app(scope, receive, send)  # HTTP/1.1: no length and not chunked = no body
            return
        route = self._route(scope)
        body = _Body()
        if route.permission not in (None, PUBLIC) and not _has_credential(headers):
            await self.app(scope, _no_body, self._closing(send, body))
            return
        limit = getattr(self.limits, route.limit_key)
        if declared is not None and declared > limit:
            await self._too_large(scope, send, BodyTooLarge(limit, route.limit_key))
            return

        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body.received += len(message.get("body", b""))
                if body.received > limit:
                    body.over = BodyTooLarge(limit, route.limit_key)
                    raise body.over
                body.complete = not message.get("more_body", False)
            return message

        closing = self._closing(send, body)

        async def answer(message: Message) -> None:
            if body.over is None:
                body.started = body.started or message["type"] == "http.response.start"
                await closing(message)
            elif message["type"] == "http.response.start" and not body.started:
                # the app's answer to the cut (its 413 error page): ours instead, one format
                body.started = True
                await self._too_large(scope, send, body.over)

        try:
            await self.app(scope, counted, answer)
        except BodyTooLarge as exc:  # raised where no error handler caught it
            if body.started:
                raise
            await self._too_large(scope, send, exc)

    def _route(self, scope: Scope) -> _Route:
        path = scope["path"]
        for route in self.routes.get(scope["method"], ()):
            if route.pattern.match(path):
                return route
        return UNKNOWN

    @staticmethod
    def _closing(send: Send, body: _Body) -> Send:
        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start" and not body.complete:
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        return closing

    @staticmethod
    async def _too_large(scope: Scope, send: Send, exc: BodyTooLarge) -> None:
        """A problem document, as the app's error handlers would write it."""
        state = scope.get("state") or {}
        document = {
            "type": "about:blank",
            "title": "Content Too Large",
            "status": 413,
            "detail": exc.detail,
            "instance": scope.get("path", ""),
            "request_id": state.get("request_id"),
        }
        payload = json.dumps(document).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


__all__ = ["ROUTE_LIMITS", "BodyLimits", "BodyTooLarge"]
