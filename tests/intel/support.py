"""Helpers for the threat-intel tests: the hand-written fixture files and events."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from intel import lists
from intel.lists import ImportReport
from intel.parsers import Format, parse_file
from soc_core.events import Event, make_event
from soc_core.store import Store

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def load(store: Store, name: str, *, tenant: str, list_name: str, fmt: Format | None = None, **kw: Any) -> ImportReport:
    parsed = parse_file(DATA / name, fmt, **kw)
    return lists.import_list(store, parsed, tenant=tenant, name=list_name, fmt=fmt or "auto", source=name)


def event(tenant: str, position: int, fields: dict[str, Any], *, dataset: str = "zeek.conn") -> Event:
    return make_event(
        tenant=tenant,
        dataset=dataset,
        sensor_id="s1",
        source="intel-test",
        position=position,
        raw=repr(sorted(fields.items())).encode(),
        timestamp=NOW,
        fields=fields,
    )
