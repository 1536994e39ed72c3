"""What a sensor process stored in the embedded SQLite store, read as the tests see it.

Read-only connections beside the writing sensor; before the sensor has created the store (or
its tables) there is simply nothing stored yet.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from tests.reliability.sensor_process import seq_of


def _rows(database: Path, sql: str, tenant: str) -> list[tuple[Any, ...]]:
    if not database.exists():
        return []
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        return connection.execute(sql, (tenant,)).fetchall()
    except sqlite3.OperationalError:  # the sensor has not created the table yet
        return []
    finally:
        connection.close()


def stored_count(database: Path, tenant: str) -> int:
    rows = _rows(database, "SELECT count(*) FROM events WHERE tenant = ?", tenant)
    return int(rows[0][0]) if rows else 0


def stored_seqs(database: Path, tenant: str) -> list[int]:
    """The ``seq=`` of every stored row of ``tenant`` in insertion order (repeats kept)."""
    rows = _rows(database, "SELECT message FROM events WHERE tenant = ? ORDER BY seq", tenant)
    return [seq_of(message) for (message,) in rows]


def stored_docs(database: Path, tenant: str) -> list[dict[str, Any]]:
    """Every stored document of ``tenant``, in insertion order."""
    rows = _rows(database, "SELECT doc FROM events WHERE tenant = ? ORDER BY seq", tenant)
    return [json.loads(doc) for (doc,) in rows]


def repeated(seqs: list[int]) -> dict[int, int]:
    """seq → count, for the seqs stored more than once."""
    return {seq: count for seq, count in Counter(seqs).items() if count > 1}


__all__ = ["repeated", "stored_count", "stored_docs", "stored_seqs"]
