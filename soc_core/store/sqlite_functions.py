"""The SQL functions SQLite queries call on event values: one definition for hunts and rules.

SQLite's own ``lower()`` and ``LIKE`` fold ASCII only, so ``NGUYỄN`` would not equal ``nguyễn``;
the hunt query builder (:mod:`soc_core.store.sqlite`) and the Sigma SQL target
(:mod:`detections.targets.sql`) both compare through these instead, with the matcher's
:func:`soc_core.casefolding.fold`. The functions only rules call (``REGEXP`` on RE2, timestamp
parts, field references) are here too, and the in-process matcher (:mod:`detections.matcher`)
runs the same :func:`timestamp_part` and :func:`fieldref_holds`. :func:`register` runs on every
connection the store opens.

Each value function takes ``json_each``'s ``type`` and ``value`` columns of one JSON scalar.
"""

from __future__ import annotations

import ipaddress
import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any

from soc_core.casefolding import fold
from soc_core.errors import SocError
from soc_core.events import parse_timestamp
from soc_core.regex import compile_regex

__all__ = ["FIELDREF_MODES", "fieldref_holds", "glob_literal", "register", "timestamp_part"]


def value_text(kind: str | None, value: Any) -> str | None:
    """A JSON scalar as the matcher's text (``true``, ``4624``, ``1.5``); ``None`` otherwise."""
    if kind in ("text", "integer", "real"):
        return str(value)
    if kind == "true":
        return "true"
    if kind == "false":
        return "false"
    return None


def value_fold(kind: str | None, value: Any) -> str | None:
    text = value_text(kind, value)
    return fold(text) if text is not None else None


def value_number(kind: str | None, value: Any) -> float | None:
    if kind in ("integer", "real"):
        return float(value)
    if kind == "text":
        try:
            return float(str(value).strip())
        except ValueError:
            return None
    return None


def value_bool(kind: str | None, value: Any, expected: int) -> int:
    if kind in ("true", "false"):
        return int((kind == "true") == bool(expected))
    if kind == "text":
        return int(str(value).strip().lower() == ("true" if expected else "false"))
    return 0


def value_in_cidr(kind: str | None, value: Any, block: str) -> int:
    if kind != "text":
        return 0
    try:
        address = ipaddress.ip_address(str(value).strip())
        network = ipaddress.ip_network(block, strict=False)
    except ValueError:
        return 0
    return int(address.version == network.version and address in network)


def glob_literal(text: str, *, cased: bool = False) -> str:
    """``text`` (folded unless ``cased``) as literal characters of a GLOB pattern."""
    return "".join(f"[{char}]" if char in "*?[]" else char for char in (text if cased else fold(text)))


def fold_text(text: str | None) -> str | None:
    return fold(text) if text is not None else None


# Sigma's timestamp-part modifiers (``|minute`` … ``|year``), by their pySigma names
_TIMESTAMP_PARTS: dict[str, Callable[[datetime], int]] = {
    "MINUTE": lambda moment: moment.minute,
    "HOUR": lambda moment: moment.hour,
    "DAY": lambda moment: moment.day,
    "WEEK": lambda moment: moment.isocalendar().week,
    "MONTH": lambda moment: moment.month,
    "YEAR": lambda moment: moment.year,
}


def timestamp_part(text: str, part: str) -> int | None:
    """Part ``part`` (``MINUTE`` … ``YEAR``) of an ISO timestamp; ``None`` if it is not one."""
    try:
        return _TIMESTAMP_PARTS[part](parse_timestamp(text))
    except SocError:
        return None


def _sql_timestamp_part(kind: str | None, value: Any, part: str) -> int | None:
    return timestamp_part(str(value), part) if kind == "text" else None


FIELDREF_MODES = ("equals", "startswith", "endswith", "contains")


def fieldref_holds(left: str, right: str, mode: str) -> bool:
    """Sigma ``|fieldref``: how the (folded) value ``left`` relates to the other field's ``right``."""
    if mode == "contains":
        return right in left
    if mode == "startswith":
        return left.startswith(right)
    if mode == "endswith":
        return left.endswith(right)
    return left == right


def _sql_fieldref(left: str | None, right: str | None, mode: str) -> int:
    return int(left is not None and right is not None and fieldref_holds(left, right, mode))


def _sql_regexp(pattern: str, text: str | None) -> int:
    # the pattern was checked when the rule compiled; RE2 objects are cached in soc_core.regex
    return int(text is not None and compile_regex(pattern)(text))


def register(conn: sqlite3.Connection) -> None:
    """Add the functions to ``conn`` (idempotent)."""
    conn.create_function("value_text", 2, value_text, deterministic=True)
    conn.create_function("value_fold", 2, value_fold, deterministic=True)
    conn.create_function("value_number", 2, value_number, deterministic=True)
    conn.create_function("value_bool", 3, value_bool, deterministic=True)
    conn.create_function("value_in_cidr", 3, value_in_cidr, deterministic=True)
    conn.create_function("fold", 1, fold_text, deterministic=True)
    conn.create_function("sigma_ts_part", 3, _sql_timestamp_part, deterministic=True)
    conn.create_function("sigma_fieldref", 3, _sql_fieldref, deterministic=True)
    conn.create_function("regexp", 2, _sql_regexp, deterministic=True)
