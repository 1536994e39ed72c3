"""Threat-intel lists in the store: import (create or update), list, delete, load.

A list belongs to one agency (``tenant``) or to the whole province (``*``) and has a name unique
within that scope. It is stored as one ``intel`` document (the list: name, scope, format, source
file, counts, generation) and its indicators in ``intel_chunks`` documents of at most
:data:`CHUNK_SIZE` each (read only by id, never indexed: a list can hold 100,000s of values,
one document per indicator would make a delete that many requests).

Re-importing a list replaces its content with the new file's, keeping each indicator that was
already there with its earliest ``first_seen``: the report counts new, updated and removed
indicators, so nothing changes silently. The chunks of a new version are written under a new
generation before the list document points at them, and the old ones are deleted after, so a
reader never sees half a list (one that meets a chunk deleted under it reads again).

Every change writes a new token to ``checkpoints/intel-generation``; the detection engine
(:mod:`detections.intel`) and the enrich action reload their lookup when it moves. The API, the UI
and ``soc intel`` audit each import and deletion with :func:`record_change`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from intel.indicators import PROVINCE_WIDE, Indicator, check_list_name, check_scope
from intel.lookup import IntelIndex, ListedIndicators
from intel.parsers import Parsed, Problem, merge
from soc_core.errors import Conflict, InvalidInput, NotFound, ParseError
from soc_core.events import format_timestamp, utcnow
from soc_core.store import Store
from soc_core.store.base import DocWrite
from workflow import audit

LIST_KIND = "intel"
CHUNK_KIND = "intel_chunks"
GENERATION_KIND, GENERATION_ID = "checkpoints", "intel-generation"
CHUNK_SIZE = 2000
CHUNKS_PER_WRITE = 20


@dataclass
class ImportReport:
    """What an import did: ``loaded`` new indicators, ``updated`` ones already on the list,
    ``removed`` ones the new file no longer has, ``duplicates`` within the file, ``skipped``
    lines/objects with where and why."""

    tenant: str
    name: str
    loaded: int = 0
    updated: int = 0
    removed: int = 0
    duplicates: int = 0
    skipped: list[Problem] = field(default_factory=list)
    total: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "list": self.name,
            "loaded": self.loaded,
            "updated": self.updated,
            "removed": self.removed,
            "duplicates": self.duplicates,
            "skipped": len(self.skipped),
            "total": self.total,
        }


def list_id(tenant: str, name: str) -> str:
    return f"{tenant}:{name}"


def _chunk_id(tenant: str, name: str, generation: str, number: int) -> str:
    return f"{tenant}:{name}:{generation}:{number}"


def _check(tenant: str, name: str) -> tuple[str, str]:
    try:
        return check_scope(tenant), check_list_name(name)
    except ParseError as exc:
        raise InvalidInput(exc.message, hint=exc.hint) from exc
    except ValueError as exc:
        raise InvalidInput(str(exc), hint="name lists like 'abuse-ch-feodo' or 'police_blocklist'") from exc


def generation(store: Store) -> str | None:
    """The token that moves with every change to any list (None before the first)."""
    try:
        return str(store.get_doc(GENERATION_KIND, GENERATION_ID).body.get("token"))
    except NotFound:
        return None


def _bump(store: Store) -> None:
    store.put_doc(GENERATION_KIND, GENERATION_ID, {"token": uuid.uuid4().hex, "updated_at": _now()})


def _now() -> str:
    return format_timestamp(utcnow())


def read_indicators(store: Store, header: dict[str, Any], tenant: str, name: str) -> list[Indicator]:
    """Every indicator of the list version ``header`` names; :class:`NotFound` if a chunk went
    away meanwhile (a newer import)."""
    found: list[Indicator] = []
    for number in range(int(header.get("chunks", 0))):
        chunk = store.get_doc(CHUNK_KIND, _chunk_id(tenant, name, str(header["generation"]), number))
        found.extend(Indicator.from_dict(row) for row in chunk.body.get("indicators", []))
    return found


def import_list(
    store: Store, parsed: Parsed, *, tenant: str, name: str, fmt: str, source: str, actor: str = "cli"
) -> ImportReport:
    """Create the list, or replace its content (see the module docstring)."""
    tenant, name = _check(tenant, name)
    report = ImportReport(tenant=tenant, name=name, duplicates=parsed.duplicates, skipped=list(parsed.skipped))
    now = _now()
    doc_id = list_id(tenant, name)
    try:
        current = store.get_doc(LIST_KIND, doc_id)
    except NotFound:
        current = None
    old: dict[tuple[str, str], Indicator] = {}
    if current is not None:
        old = {indicator.key: indicator for indicator in read_indicators(store, current.body, tenant, name)}
    merged: list[Indicator] = []
    for key, indicator in parsed.indicators.items():
        stamped = indicator.stamped(now)
        known = old.get(key)
        if known is None:
            report.loaded += 1
            merged.append(stamped)
        else:
            report.updated += 1
            merged.append(merge(stamped, known))  # the higher confidence, the earliest first_seen
    report.removed = len(set(old) - set(parsed.indicators))
    report.total = len(merged)
    new_generation = uuid.uuid4().hex
    chunks = [merged[start : start + CHUNK_SIZE] for start in range(0, len(merged), CHUNK_SIZE)]
    writes = [
        DocWrite(
            _chunk_id(tenant, name, new_generation, number),
            {"tenant": tenant, "list": name, "indicators": [item.to_dict() for item in chunk]},
        )
        for number, chunk in enumerate(chunks)
    ]
    for start in range(0, len(writes), CHUNKS_PER_WRITE):
        for written in store.write_docs(CHUNK_KIND, writes[start : start + CHUNKS_PER_WRITE]):
            if isinstance(written, Conflict):
                raise written
    counts: dict[str, int] = {}
    for item in merged:
        counts[item.type] = counts.get(item.type, 0) + 1
    body = {
        "tenant": tenant,
        "name": name,
        "format": fmt,
        "source": source,
        "generation": new_generation,
        "chunks": len(chunks),
        "count": len(merged),
        "counts": counts,
        "last_import": {**report.to_dict(), "at": now, "by": actor},
        "created_at": current.body.get("created_at", now) if current else now,
        "updated_at": now,
    }
    if current is None:
        store.create_doc(LIST_KIND, body, doc_id=doc_id)
    else:
        store.update_doc(LIST_KIND, doc_id, body, version=current.version)
        _delete_chunks(store, current.body, tenant, name)
    _bump(store)
    return report


def _delete_chunks(store: Store, header: dict[str, Any], tenant: str, name: str) -> None:
    for number in range(int(header.get("chunks", 0))):
        store.delete_doc(CHUNK_KIND, _chunk_id(tenant, name, str(header["generation"]), number))


def lists(store: Store, tenants: tuple[str, ...] | None) -> list[dict[str, Any]]:
    """The lists of these agencies and the province-wide ones (every list if ``tenants`` is None),
    by scope and name."""
    scopes = None if tenants is None else (*tenants, PROVINCE_WIDE)
    return sorted(
        ({**doc.body, "id": doc.id} for doc in _all_lists(store, scopes)),
        key=lambda body: (body["tenant"] != PROVINCE_WIDE, body["tenant"], body["name"]),
    )


def _all_lists(store: Store, scopes: tuple[str, ...] | None) -> Iterator[Any]:
    cursor: str | None = None
    while True:
        page = store.list_docs(LIST_KIND, tenants=scopes, sort="name", descending=False, size=1000, cursor=cursor)
        yield from page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def delete_list(store: Store, *, tenant: str, name: str) -> None:
    """Remove a list and its indicators; :class:`NotFound` if there is none of that name there."""
    tenant, name = _check(tenant, name)
    try:
        current = store.get_doc(LIST_KIND, list_id(tenant, name))
    except NotFound:
        where = "province-wide" if tenant == PROVINCE_WIDE else f"for agency {tenant}"
        raise NotFound(f"no threat-intel list {name!r} {where}", hint="see `soc intel lists`") from None
    store.delete_doc(LIST_KIND, current.id)
    _delete_chunks(store, current.body, tenant, name)
    _bump(store)


def load_index(store: Store, tenants: tuple[str, ...] | None = None, *, attempts: int = 3) -> IntelIndex:
    """The lookup over every list (or those of ``tenants`` and ``*``), as stored now."""
    scopes = None if tenants is None else (*tenants, PROVINCE_WIDE)
    for _ in range(attempts - 1):
        try:
            return _read_index(store, scopes)
        except NotFound:
            continue  # a list was re-imported or deleted while we read it: read again
    return _read_index(store, scopes)


def _read_index(store: Store, scopes: tuple[str, ...] | None) -> IntelIndex:
    return IntelIndex(
        ListedIndicators(
            scope=str(doc.body["tenant"]),
            name=str(doc.body["name"]),
            indicators=read_indicators(store, doc.body, str(doc.body["tenant"]), str(doc.body["name"])),
        )
        for doc in _all_lists(store, scopes)
    )


def record_change(
    store: Store,
    *,
    action: str,
    tenant: str,
    name: str,
    actor: str,
    after: dict[str, Any] | None = None,
    request_id: str | None = None,
    source_ip: str | None = None,
) -> None:
    """The audit record of a list's import (``intel.import``, ``after``: its counts) or deletion
    (``intel.delete``) — the same from the API, the UI and ``soc intel``."""
    audit.record(
        store,
        actor=actor,
        action=action,
        tenant=None if tenant == PROVINCE_WIDE else tenant,
        target=f"intel/{tenant}:{name}",
        after=after,
        request_id=request_id,
        source_ip=source_ip,
    )


__all__ = [
    "CHUNK_KIND",
    "CHUNK_SIZE",
    "LIST_KIND",
    "ImportReport",
    "delete_list",
    "generation",
    "import_list",
    "lists",
    "load_index",
    "read_indicators",
    "record_change",
]
