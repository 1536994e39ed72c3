"""The audit trail: append-only records in a hash chain.

Each record has a sequence number (its document id, so two writers cannot both take the same
place: the second gets a Conflict and retries on top) and the hash of the record before it.
Editing or deleting any stored record breaks the chain, which :func:`verify_chain` reports.
No API route updates or deletes audit records.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from soc_core.errors import Conflict
from soc_core.events import format_timestamp, utcnow
from soc_core.store import Store

GENESIS = "0" * 64
MAX_TEXT = 2000


def _clip(value: Any) -> Any:
    """User-supplied text stays one encoded record: strings are length-capped, never parsed."""
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, Mapping):
        return {str(k)[:200]: _clip(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clip(v) for v in value[:200]]
    return value


def _digest(previous: str, record: Mapping[str, Any]) -> str:
    canonical = json.dumps(record, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256((previous + canonical).encode()).hexdigest()


def _head(store: Store) -> tuple[int, str]:
    page = store.list_docs("audit", sort="seq", descending=True, size=1)
    if not page.items:
        return 0, GENESIS
    body = page.items[0].body
    return int(body["seq"]), str(body["hash"])


def record(
    store: Store,
    *,
    actor: str,
    action: str,
    tenant: str | None = None,
    target: str | None = None,
    outcome: str = "success",
    before: Any = None,
    after: Any = None,
    request_id: str | None = None,
    source_ip: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> int:
    """Append one record; returns its sequence number."""
    entry = _clip(
        {
            "at": format_timestamp(utcnow()),
            "actor": actor,
            "action": action,
            "tenant": tenant,
            "target": target,
            "outcome": outcome,
            "before": before,
            "after": after,
            "request_id": request_id,
            "source_ip": source_ip,
            "details": dict(details or {}),
        }
    )
    for _ in range(50):
        seq, previous = _head(store)
        body = {**entry, "seq": seq + 1, "prev_hash": previous}
        body["hash"] = _digest(previous, body)
        try:
            store.create_doc("audit", body, doc_id=f"{seq + 1:012d}")
        except Conflict:
            continue  # another writer took this place; chain onto theirs
        return seq + 1
    raise Conflict("could not append to the audit trail after 50 tries")


def verify_chain(store: Store) -> list[str]:
    """Problems with the stored chain (empty when intact): gaps, edits, broken links."""
    problems = []
    previous = GENESIS
    expected_seq = 1
    cursor = None
    while True:
        page = store.list_docs("audit", sort="seq", descending=False, size=500, cursor=cursor)
        for doc in page.items:
            body = dict(doc.body)
            stored_hash = body.pop("hash", None)
            if body.get("seq") != expected_seq:
                problems.append(f"record {doc.id}: expected sequence {expected_seq}, found {body.get('seq')}")
                expected_seq = int(body.get("seq") or expected_seq)
            if body.get("prev_hash") != previous:
                problems.append(f"record {doc.id}: link to the previous record is broken")
            if _digest(str(body.get("prev_hash")), body) != stored_hash:
                problems.append(f"record {doc.id}: content does not match its hash (edited)")
            previous = str(stored_hash)
            expected_seq += 1
        cursor = page.next_cursor
        if cursor is None:
            return problems


__all__ = ["record", "verify_chain"]
