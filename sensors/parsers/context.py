"""What a parser may know besides the line: the clock reading and the input's timezone.

Parsers are pure functions ``parse(line, ctx) -> fields``; everything time-dependent comes in
through :class:`ParseContext` so the same line and context always give the same fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

Fields = dict[str, Any]


@dataclass(frozen=True)
class ParseContext:
    """``now`` (aware) anchors year inference; ``tz`` is the zone of timestamps without one."""

    now: datetime
    tz: tzinfo = field(default=UTC)


ParseFunc = Callable[[str, ParseContext], Fields]


@dataclass(frozen=True)
class ParserSpec:
    """A registered parser: its function and the dataset of lines it cannot understand."""

    name: str
    parse: ParseFunc
    dataset: str


__all__ = ["Fields", "ParseContext", "ParseFunc", "ParserSpec"]
