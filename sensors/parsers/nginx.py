"""nginx access (combined and common) and error logs; see :mod:`sensors.parsers.web`."""

from __future__ import annotations

from sensors.parsers import web
from sensors.parsers.context import Fields, ParseContext

DATASET = "nginx.access"


def parse(line: str, ctx: ParseContext) -> Fields:
    return web.parse_line(line, ctx, "nginx")


__all__ = ["DATASET", "parse"]
