"""What a parser may know besides the line: the clock reading and the input's timezone.

Parsers are pure functions ``parse(line, ctx) -> fields``; everything time-dependent comes in
through :class:`ParseContext` so the same line and context always give the same fields.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

Fields = dict[str, Any]
# ``ok``, ``partial`` (defaults stand in for part of the input; ``error.message`` says which) or
# ``failed`` (nothing understood; the ``parse_failure`` tag). Set on every event built from a line.
PARSE_STATUS = "log.parse_status"
PARSE_STATUSES = ("ok", "partial", "failed")


@dataclass(frozen=True)
class ParseContext:
    """``now`` (aware) anchors year inference; ``tz`` is the zone of timestamps without one."""

    now: datetime
    tz: tzinfo = field(default=UTC)
    # The machine that wrote the lines when they do not name it (a log file the sensor tails
    # on its own host); ``None`` when it is not known (lines received from the network).
    host: str | None = None

    @functools.cached_property
    def local_now(self) -> datetime:
        """``now`` in ``tz`` (worked out once per context, not per line)."""
        return self.now.astimezone(self.tz)

    @functools.cached_property
    def times(self) -> dict[str, datetime]:
        """Timestamp texts a parser has read in this context, and what they meant.

        A context serves one read of a source (a few thousand lines at most), and many lines
        carry the same second; a text means the same moment throughout one context.
        """
        return {}


ParseFunc = Callable[[str, ParseContext], Fields]


@dataclass(frozen=True)
class ParserSpec:
    """A registered parser: its function and the dataset of lines it cannot understand."""

    name: str
    parse: ParseFunc
    dataset: str


__all__ = ["PARSE_STATUS", "PARSE_STATUSES", "Fields", "ParseContext", "ParseFunc", "ParserSpec"]
