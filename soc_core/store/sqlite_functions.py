"""The SQL functions SQLite queries call on event values: one definition for hunts and rules.

SQLite's own ``lower()`` and ``LIKE`` fold ASCII only, so ``NGUYỄN`` would not equal ``nguyễn``;
the hunt query builder (:mod:`soc_core.store.sqlite`) and the Sigma SQL target
(:mod:`detections.compiler`) both compare through these instead, with the matcher's
:func:`soc_core.casefolding.fold`. :func:`register` runs on every connection the store opens.

Each value function takes ``json_each``'s ``type`` and ``value`` columns of one JSON scalar.
"""

from __future__ import annotations

import ipaddress
import sqlite3
from typing import Any

from soc_core.casefolding import fold

__all__ = ["glob_literal", "register"]


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


def register(conn: sqlite3.Connection) -> None:
    """Add the functions to ``conn`` (idempotent)."""
    conn.create_function("value_text", 2, value_text, deterministic=True)
    conn.create_function("value_fold", 2, value_fold, deterministic=True)
    conn.create_function("value_number", 2, value_number, deterministic=True)
    conn.create_function("value_bool", 3, value_bool, deterministic=True)
    conn.create_function("value_in_cidr", 3, value_in_cidr, deterministic=True)
    conn.create_function("fold", 1, fold_text, deterministic=True)
