"""Reading ``application/x-www-form-urlencoded`` bodies (htmx and plain forms) without extra
dependencies, with a size cap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Request

from soc_api.errors import ApiProblem

MAX_FORM_BYTES = 256 * 1024
MAX_FIELDS = 1000


@dataclass(frozen=True)
class Form:
    pairs: tuple[tuple[str, str], ...]

    def get(self, name: str, default: str = "") -> str:
        for key, value in self.pairs:
            if key == name:
                return value.strip()
        return default

    def getlist(self, name: str) -> list[str]:
        return [value.strip() for key, value in self.pairs if key == name and value.strip()]


async def read_form(request: Request) -> Form:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise ApiProblem(415, "Unsupported media type", "send the form as application/x-www-form-urlencoded")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise ApiProblem(413, "Too large", f"a form holds at most {MAX_FORM_BYTES // 1024} KiB")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiProblem(400, "Bad request", "malformed form") from exc
    return Form(tuple(pairs))


FormDep = Annotated[Form, Depends(read_form)]

__all__ = ["Form", "FormDep", "read_form"]
