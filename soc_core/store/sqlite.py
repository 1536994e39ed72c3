"""The embedded store: one SQLite file in WAL mode.

Events live in one table with the whole flat event as JSON; the columns pulled out of it
(tenant, timestamp, message) carry the indexes, and an FTS5 table over ``message`` answers
word searches. ``seq`` (autoincrement) is the ingest order the detection engine reads by:
SQLite serialises writers and commits in order, so a reader never sees seq 10 before seq 9. A
read plan is a list of seq ranges; each worker process reads its blocks on its own connection.

Documents live in one table keyed by (kind, id) with an integer version for optimistic
concurrency. Connections are per thread (the API serves requests from a thread pool); a fork
waits until no thread is inside SQLite (:class:`_ForkGuard`), so a forked process can open its
own (:meth:`SqliteStore.reopened`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any, ClassVar, Literal

from soc_core.casefolding import Wildcard, fold
from soc_core.config import Settings
from soc_core.errors import Conflict, NotFound, StoreError, StoreUnavailable
from soc_core.events import TENANT_FIELD, Event, encode_stored, format_timestamp, utcnow, validate_event
from soc_core.query import (
    And,
    FieldEquals,
    FieldExists,
    FieldRange,
    MatchAll,
    Node,
    Not,
    Or,
    Text,
    parse_query,
)
from soc_core.store import sqlite_functions
from soc_core.store.base import (
    MAX_LIST_SIZE,
    Bucket,
    BulkResult,
    Doc,
    EventQuery,
    ItemResult,
    Page,
    Position,
    ReadPlan,
    RulePageReader,
    RuleQuery,
    SqlQuery,
    Store,
    block_size,
    check_kind,
    decode_cursor,
    encode_cursor,
    project,
)
from soc_core.store.docquery import (
    MAX_GROUPS,
    AllOf,
    Condition,
    DocGroup,
    DocQuery,
    Exists,
    FieldPath,
    FieldStats,
    Range,
    Term,
    field_path,
)
from soc_core.store.docquery import Not as DocNot
from soc_core.store.fields import NUMERIC_TYPES, check_field_name, field_type, numeric_bound
from soc_core.store.sqlite_functions import glob_literal
from soc_core.tenant_claims import as_stored

READ_BLOCK = 256  # events per block of a read plan at most (see block_size)


class _ForkGuard:
    """Makes a fork wait until no thread of this process is inside SQLite.

    SQLite's own global mutexes (its allocator's, its file-lock table's) are copied into a
    forked child as they were at the fork: one that another thread held then stays locked, and
    the child hangs at its first SQLite call. Detection workers are forked from a process whose
    other threads (API requests, sensors) use this store, and they open their own connections.
    So every SQLite call of this module runs inside :meth:`inside`, and a fork (``before``)
    stops new calls and waits for those running to end. Calls nest; only the outermost counts.
    :meth:`SqliteStore.close` waits the same way before closing connections.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._inside = 0
        self._forking = False
        self._depth = threading.local()

    @contextmanager
    def inside(self) -> Iterator[None]:
        depth: int = getattr(self._depth, "n", 0)
        if depth == 0:
            with self._cond:
                while self._forking:
                    self._cond.wait()
                self._inside += 1
        self._depth.n = depth + 1
        try:
            yield
        finally:
            self._depth.n = depth
            if depth == 0:
                with self._cond:
                    self._inside -= 1
                    if self._inside == 0:
                        self._cond.notify_all()

    def _mine(self) -> int:
        return 1 if getattr(self._depth, "n", 0) else 0  # a fork from inside a call waits for the others

    def before(self) -> None:
        self._cond.acquire()
        self._forking = True
        while self._inside > self._mine():
            self._cond.wait()

    def after_in_parent(self) -> None:
        self._forking = False
        self._cond.notify_all()
        self._cond.release()

    def after_in_child(self) -> None:
        self._forking = False
        self._inside = self._mine()  # the other threads did not come along
        self._cond.release()


_FORK_GUARD = _ForkGuard()
os.register_at_fork(
    before=_FORK_GUARD.before, after_in_parent=_FORK_GUARD.after_in_parent, after_in_child=_FORK_GUARD.after_in_child
)

# ``event.id`` is unique per tenant, not across tenants: one agency's sensor must not be able to
# shadow another agency's event by sending its id first, nor learn which ids exist from
# "duplicate" answers (Elasticsearch keeps tenants apart by index already).
EVENTS_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    id       TEXT NOT NULL,
    tenant   TEXT NOT NULL,
    ts       TEXT NOT NULL,
    dataset  TEXT NOT NULL,
    message  TEXT,
    doc      TEXT NOT NULL,
    observer TEXT,
    UNIQUE (tenant, id)
)"""
# ``observer`` is the sensor that sent the event (observer.id, else observer.name, as text): the
# weekly report counts a week's events per sensor, which through the JSON document took a parse of
# every event (10 of 15 s for the province's report over 1M events, BENCHMARKS.md). The time
# indices carry it, so that count reads the index alone.
OBSERVER = ("observer.id", "observer.name")
OBSERVER_SQL = (
    "CAST(coalesce(json_extract(doc, '$.\"observer.id\"'), json_extract(doc, '$.\"observer.name\"')) AS TEXT)"
)

SCHEMA = (
    EVENTS_TABLE.format(name="events"),
    "CREATE INDEX IF NOT EXISTS events_tenant_ts ON events (tenant, ts, id, observer)",
    "CREATE INDEX IF NOT EXISTS events_ts ON events (ts, id, observer)",
    """CREATE VIRTUAL TABLE IF NOT EXISTS events_fts USING fts5 (
    message, content='events', content_rowid='seq', tokenize='unicode61 remove_diacritics 2'
)""",
    """CREATE TRIGGER IF NOT EXISTS events_fts_insert AFTER INSERT ON events BEGIN
    INSERT INTO events_fts (rowid, message) VALUES (new.seq, new.message);
END""",
    """CREATE TRIGGER IF NOT EXISTS events_fts_delete AFTER DELETE ON events BEGIN
    INSERT INTO events_fts (events_fts, rowid, message) VALUES ('delete', old.seq, old.message);
END""",
    """CREATE TABLE IF NOT EXISTS docs (
    kind     TEXT NOT NULL,
    id       TEXT NOT NULL,
    tenant   TEXT,
    version  INTEGER NOT NULL,
    body     TEXT NOT NULL,
    PRIMARY KEY (kind, id)
)""",
    "CREATE INDEX IF NOT EXISTS docs_kind_tenant ON docs (kind, tenant)",
)
# PRAGMA user_version of a file this code set up; files below it are migrated by setup().
# 0: events.id unique across tenants. 1: unique per (tenant, id). 2: the observer column.
SCHEMA_VERSION = 2


def _observer_column(conn: sqlite3.Connection) -> None:
    """Bring a version-1 events table to version 2: add ``observer``, fill it from each event's
    document (one pass over the table, inside setup()'s transaction), and drop the time indices
    so SCHEMA builds them again with it."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    if "observer" not in columns:
        conn.execute("ALTER TABLE events ADD COLUMN observer TEXT")
    conn.execute(f"UPDATE events SET observer = {OBSERVER_SQL}")
    conn.execute("DROP INDEX IF EXISTS events_tenant_ts")
    conn.execute("DROP INDEX IF EXISTS events_ts")


def _unique_ids_per_tenant(conn: sqlite3.Connection) -> None:
    """Rebuild a version-0 events table as :data:`EVENTS_TABLE` (SQLite cannot drop a UNIQUE).

    Every row keeps its ``seq``: detection checkpoints are seqs, and the full-text index is
    keyed by them, so it stays valid. The autoincrement high-water mark is kept too, so a seq
    freed by retention is never handed out again. Runs inside setup()'s transaction: another
    process sees the old table or the new one, never a half-copied one.
    """
    high = max(
        conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0],
        *(seq for (seq,) in conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'")),
    )
    # the triggers go with the old table; SCHEMA puts them back on the new one
    conn.execute("DROP TRIGGER IF EXISTS events_fts_insert")
    conn.execute("DROP TRIGGER IF EXISTS events_fts_delete")
    conn.execute(EVENTS_TABLE.format(name="events_rebuilt"))
    conn.execute(
        "INSERT INTO events_rebuilt (seq, id, tenant, ts, dataset, message, doc) "
        "SELECT seq, id, tenant, ts, dataset, message, doc FROM events ORDER BY seq"
    )
    conn.execute("DROP TABLE events")
    conn.execute("ALTER TABLE events_rebuilt RENAME TO events")
    conn.execute("DELETE FROM sqlite_sequence WHERE name = 'events'")
    if high:
        conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?)", (high,))


def _observer(conn: sqlite3.Connection, event: Event, doc: str) -> str | None:
    """The ``observer`` column of an event, as :data:`OBSERVER_SQL` reads it from ``doc``
    (a text value, the usual case, without asking SQLite)."""
    for field in OBSERVER:
        value = event.get(field)
        if isinstance(value, str):
            return value
        if value is not None:  # a number, list or map: SQLite's own text for it
            found = conn.execute(f"SELECT {OBSERVER_SQL} FROM (SELECT ? AS doc)", (doc,)).fetchone()[0]
            return None if found is None else str(found)
    return None


def _json_path(field: str) -> str:
    return '$."' + check_field_name(field) + '"'


def _glob(node: FieldEquals) -> str:
    """A hunt wildcard value as a GLOB pattern over folded text."""
    return "".join(
        "*" if part is Wildcard.ANY_RUN else "?" if part is Wildcard.ANY_ONE else glob_literal(part)
        for part in node.parts()
    )


def _fts_phrase(words: str) -> str:
    # FTS5 reads a NUL as the end of its query ("unterminated string"); its tokenizer splits
    # text on control characters anyway, so a space matches the same messages
    return '"' + words.replace("\x00", " ").replace('"', '""') + '"'


class _SqlBuilder:
    """Compiles a parsed hunt query into a WHERE fragment and its parameters."""

    def __init__(self) -> None:
        self.params: list[Any] = []

    def compile(self, node: Node) -> str:
        if isinstance(node, MatchAll):
            return "1"
        if isinstance(node, And):
            return "(" + " AND ".join(self.compile(c) for c in node.children) + ")"
        if isinstance(node, Or):
            return "(" + " OR ".join(self.compile(c) for c in node.children) + ")"
        if isinstance(node, Not):
            return f"NOT {self.compile(node.child)}"
        if isinstance(node, Text):
            return self._text("message", node.value)
        if isinstance(node, FieldExists):
            self.params.append(_json_path(node.field))
            return "json_type(events.doc, ?) IS NOT NULL"
        if isinstance(node, FieldEquals):
            return self._equals(node)
        return self._range(node)

    def _text(self, field: str, words: str) -> str:
        if field == "message":
            self.params.append(_fts_phrase(words))
            return "events.seq IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)"
        # other text fields: every word present, case-insensitively
        self.params.extend([_json_path(field), fold(words)])
        return "instr(fold(json_extract(events.doc, ?)), ?) > 0"

    def _any_value(self, field: str, predicate: str, *args: Any) -> str:
        self.params.append(_json_path(field))
        self.params.extend(args)
        return f"EXISTS (SELECT 1 FROM json_each(events.doc, ?) AS v WHERE {predicate})"

    def _equals(self, node: FieldEquals) -> str:
        kind = field_type(node.field)
        if kind == "text":
            return self._text(node.field, node.value)
        if kind == "ip" and "/" in node.value:
            return self._any_value(node.field, "value_in_cidr(v.type, v.value, ?)", node.value)
        if node.wildcard:
            return self._any_value(node.field, "value_fold(v.type, v.value) GLOB ?", _glob(node))
        if kind in NUMERIC_TYPES:
            return self._any_value(node.field, "value_number(v.type, v.value) = CAST(? AS REAL)", node.value)
        return self._any_value(node.field, "value_fold(v.type, v.value) = ?", fold(node.value))

    def _range(self, node: FieldRange) -> str:
        numeric = field_type(node.field) in NUMERIC_TYPES
        value = "value_number(v.type, v.value)" if numeric else "v.value"
        parts = []
        args: list[Any] = []
        if node.low is not None:
            parts.append(f"{value} >{'=' if node.include_low else ''} ?")
            args.append(numeric_bound(node.field, node.low) if numeric else node.low)
        if node.high is not None:
            parts.append(f"{value} <{'=' if node.include_high else ''} ?")
            args.append(numeric_bound(node.field, node.high) if numeric else node.high)
        return self._any_value(node.field, " AND ".join(parts) or "1", *args)


def _doc_path(path: FieldPath) -> str:
    return "$" + "".join('."' + part + '"' for part in path)


class _DocSqlBuilder:
    """Compiles document conditions (:mod:`soc_core.store.docquery`) over ``docs.body``."""

    def __init__(self) -> None:
        self.params: list[Any] = []

    def compile(self, condition: Condition) -> str:
        if isinstance(condition, Term):
            self.params.append(_doc_path(condition.field))
            self.params.extend(condition.values)
            marks = ",".join("?" * len(condition.values))
            return f"EXISTS (SELECT 1 FROM json_each(docs.body, ?) AS v WHERE v.value IN ({marks}))"
        if isinstance(condition, Range):
            parts = []
            for operator, bound in ((">=", condition.gte), (">", condition.gt), ("<", condition.lt)):
                if bound is not None:
                    parts.append(f"json_extract(docs.body, ?) {operator} ?")
                    self.params.extend([_doc_path(condition.field), bound])
            return "(" + (" AND ".join(parts) or "1") + ")"
        if isinstance(condition, Exists):
            self.params.append(_doc_path(condition.field))
            return "coalesce(json_type(docs.body, ?), 'null') != 'null'"
        if isinstance(condition, DocNot):
            return f"NOT {self.compile(condition.condition)}"
        if isinstance(condition, AllOf):
            return "(" + (" AND ".join(self.compile(c) for c in condition.conditions) or "1") + ")"
        raise StoreError(f"unknown document condition {condition!r}")


class SqliteStore(Store):
    """Events and documents in one SQLite file (WAL)."""

    name: ClassVar[str] = "sqlite"

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        return SqliteStore(settings.sqlite_path)

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._connections: dict[threading.Thread, tuple[int, sqlite3.Connection]] = {}
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        return str(self.path.resolve())

    # lifecycle -----------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open SQLite store: {exc}", where=str(self.path)) from exc
        sqlite_functions.register(conn)
        self._local.conn = conn
        with self._lock:
            # a thread that ended cannot use its connection again: close it, or every short-lived
            # thread (a playbook step runs in one of its own) leaves its files open until the
            # process runs out of descriptors ("unable to open database file")
            # (in a forked child the parent's threads look ended: their connections are the
            # parent's, never closed here)
            for thread in [thread for thread in self._connections if not thread.is_alive()]:
                pid, ended = self._connections.pop(thread)
                if pid == os.getpid():
                    ended.close()
            self._connections[threading.current_thread()] = (os.getpid(), conn)
        return conn

    def select(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only query (tests and tools that look at the file)."""
        return self._query(sql, params)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with _FORK_GUARD.inside():
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            committed = False
            try:
                yield conn
                conn.execute("COMMIT")
                committed = True
            finally:
                if not committed and conn.in_transaction:
                    conn.execute("ROLLBACK")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            with _FORK_GUARD.inside():
                return self._connect().execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            raise StoreError(f"SQLite query failed: {exc}", where=str(self.path)) from exc

    def setup(self) -> None:
        """Create the schema, or bring an older file's up to :data:`SCHEMA_VERSION` (its data kept)."""
        try:
            with self._tx() as conn:
                (version,) = conn.execute("PRAGMA user_version").fetchone()
                existing = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'events'").fetchone()
                if version < 1 and existing:
                    _unique_ids_per_tenant(conn)
                if version < 2 and existing:
                    _observer_column(conn)
                for statement in SCHEMA:
                    conn.execute(statement)
                if version < SCHEMA_VERSION:
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot create the SQLite schema: {exc}", where=str(self.path)) from exc

    def ping(self) -> None:
        try:
            with _FORK_GUARD.inside():
                self._connect().execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite store unusable: {exc}", where=str(self.path)) from exc

    def reopened(self) -> SqliteStore:
        return type(self)(self.path)

    def close(self) -> None:
        """Close every connection of this store once no other thread is inside SQLite (as a fork
        waits): a connection closed while another thread runs a statement on it is freed under
        that thread, and the process dies with SIGSEGV — e.g. a playbook run still writing its
        last step while ``soc up`` shuts down. A thread using the store afterwards opens a new
        connection."""
        _FORK_GUARD.before()
        try:
            with self._lock:
                for _, conn in self._connections.values():
                    conn.close()
                self._connections.clear()
            self._local = threading.local()
        finally:
            _FORK_GUARD.after_in_parent()

    # events --------------------------------------------------------------------------------
    def add_events(self, events: Sequence[Event], *, encoded: Sequence[bytes] | None = None) -> BulkResult:
        result = BulkResult()
        ingested = format_timestamp(utcnow())
        try:
            with self._tx() as conn:
                for position, event in enumerate(events):
                    json_bytes = encoded[position] if encoded is not None else None
                    result.items.append(self._insert_event(conn, event, ingested, json_bytes))
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"SQLite write failed: {exc}", where=str(self.path)) from exc
        return result

    def _insert_event(
        self, conn: sqlite3.Connection, event: Event, ingested: str, encoded: bytes | None = None
    ) -> ItemResult:
        event_id = str(event.get("event.id") or "")
        stored = as_stored(event)
        if stored is not event:  # a second tenant claim was taken out: the encoded bytes are stale
            event, encoded = stored, None
        problems = validate_event(event)
        if problems:
            return ItemResult(event_id, "rejected", "; ".join(problems))
        message = event.get("message")
        try:
            doc = encode_stored(event, ingested, encoded).decode()
        except (TypeError, ValueError) as exc:
            return ItemResult(event_id, "rejected", f"not JSON-serialisable: {exc}")
        cursor = conn.execute(
            "INSERT OR IGNORE INTO events (id, tenant, ts, dataset, message, doc, observer) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                event_id,
                str(event[TENANT_FIELD]),
                str(event["@timestamp"]),
                str(event["event.dataset"]),
                message if isinstance(message, str) else None,
                doc,
                _observer(conn, event, doc),
            ),
        )
        return ItemResult(event_id, "created" if cursor.rowcount == 1 else "duplicate")

    def get_events(self, ids: Sequence[str], *, tenants: tuple[str, ...] | None) -> list[Event]:
        if not ids:
            return []
        sql = f"SELECT doc FROM events WHERE id IN ({','.join('?' * len(ids))})"
        params: list[Any] = list(ids)
        if tenants is not None:
            sql += f" AND tenant IN ({','.join('?' * len(tenants))})"
            params.extend(tenants)
        by_id = {}
        for (doc,) in self._query(sql, params):
            event = json.loads(doc)
            by_id[event["event.id"]] = event
        return [by_id[i] for i in ids if i in by_id]

    def _where(self, query: EventQuery, rule: SqlQuery | None = None) -> tuple[str, list[Any]]:
        """The hunt query, tenant and time filters of ``query`` (and a rule's condition)."""
        builder = _SqlBuilder()
        clauses = [builder.compile(parse_query(query.query))]
        params = builder.params
        if rule is not None:
            clauses.append(f"({rule.where})")
            params.extend(rule.params)
        if query.tenants is not None:
            clauses.append(f"events.tenant IN ({','.join('?' * len(query.tenants))})")
            params.extend(query.tenants)
        if query.start is not None:
            clauses.append("events.ts >= ?")
            params.append(format_timestamp(query.start))
        if query.end is not None:
            clauses.append("events.ts < ?")
            params.append(format_timestamp(query.end))
        return " AND ".join(clauses), params

    def _page(
        self, query: EventQuery, size: int, rule: SqlQuery | None = None, fields: Sequence[str] | None = None
    ) -> Page[Event]:
        """One page of ``query`` (``size`` events at most, only ``fields`` of each if given),
        and the cursor to the next page."""
        where, params = self._where(query, rule)
        order = "ASC" if query.ascending else "DESC"
        if query.cursor:
            # the tenant breaks ties: two agencies may hold the same event id at the same time
            ts, last_id, last_tenant = decode_cursor(query.cursor, length=3)
            where += f" AND (events.ts, events.id, events.tenant) {'>' if query.ascending else '<'} (?, ?, ?)"
            params.extend([ts, last_id, last_tenant])
        rows = self._query(
            f"SELECT doc, events.ts, events.id, events.tenant FROM events WHERE {where} "
            f"ORDER BY events.ts {order}, events.id {order}, events.tenant {order} LIMIT ?",
            [*params, size + 1],
        )
        items = [project(json.loads(row[0]), fields) for row in rows[:size]]
        next_cursor = encode_cursor(rows[size - 1][1:]) if len(rows) > size else None
        return Page(items, next_cursor)

    def search_events(self, query: EventQuery) -> Page[Event]:
        return self._page(query, query.size)

    def _rule_pages(self, query: RuleQuery) -> RulePageReader:
        # the rule functions the fragment calls are on every connection (sqlite_functions)
        rule = query.sql()
        return lambda scope, size, fields: self._page(scope, size, rule, fields)

    def count_events(
        self,
        query: EventQuery,
        *,
        by: str | tuple[str, ...] | None = None,
        interval: Literal["hour", "day"] | None = None,
        limit: int = 10,
    ) -> list[Bucket]:
        where, params = self._where(query)
        if by == OBSERVER:  # the column the write path keeps (see EVENTS_TABLE)
            rows = self._query(
                f"SELECT events.observer AS k, count(*) AS n FROM events WHERE {where} AND k IS NOT NULL "
                "GROUP BY k ORDER BY n DESC, k ASC LIMIT ?",
                [*params, limit],
            )
        elif isinstance(by, tuple):
            first = ", ".join(["json_extract(events.doc, ?)"] * len(by))
            rows = self._query(
                f"SELECT CAST(coalesce({first}) AS TEXT) AS k, count(*) AS n FROM events "
                f"WHERE {where} AND k IS NOT NULL GROUP BY k ORDER BY n DESC, k ASC LIMIT ?",
                [*(_json_path(name) for name in by), *params, limit],
            )
        elif by is not None:
            rows = self._query(
                "SELECT CAST(v.value AS TEXT), count(*) AS n FROM events, json_each(events.doc, ?) AS v "
                f"WHERE {where} GROUP BY 1 ORDER BY n DESC, 1 ASC LIMIT ?",
                [_json_path(by), *params, limit],
            )
        elif interval is not None:
            width = 13 if interval == "hour" else 10
            rows = self._query(
                f"SELECT substr(events.ts, 1, {width}), count(*) FROM events WHERE {where} GROUP BY 1 ORDER BY 1",
                params,
            )
            suffix = ":00:00.000Z" if interval == "hour" else "T00:00:00.000Z"
            return [Bucket(str(key) + suffix, int(n)) for key, n in rows]
        else:
            rows = self._query(f"SELECT 'total', count(*) FROM events WHERE {where}", params)
        return [Bucket(str(key), int(n)) for key, n in rows]

    def plan_new_events(self, checkpoint: str | None, *, limit: int) -> tuple[ReadPlan, str]:
        """The next ``limit`` seqs after the checkpoint, as seq ranges ``(after, upto]``.

        Only the integer key is read. Writers commit in seq order, so no event will ever take a
        seq at or below the highest one seen now: the ranges are final.
        """
        after = int(checkpoint) if checkpoint else 0
        seqs = [
            seq for (seq,) in self._query("SELECT seq FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit))
        ]
        if not seqs:
            return ReadPlan(), str(after)
        size = block_size(len(seqs), READ_BLOCK)
        bounds = [after, *seqs[size - 1 :: size]]
        if bounds[-1] != seqs[-1]:
            bounds.append(seqs[-1])
        return ReadPlan(tuple(pairwise(bounds))), str(seqs[-1])

    def read_plan(self, plan: ReadPlan, blocks: Iterable[int] | None = None) -> list[tuple[Position, Event]]:
        """Events by seq: one query per run of consecutive blocks."""
        ranges: list[list[int]] = []
        for number in sorted(range(len(plan.blocks)) if blocks is None else blocks):
            low, high = (int(bound) for bound in plan.blocks[number])
            if ranges and ranges[-1][1] == low:
                ranges[-1][1] = high
            else:
                ranges.append([low, high])
        return [
            ((seq,), json.loads(doc))
            for low, high in ranges
            for seq, doc in self._query(
                "SELECT seq, doc FROM events WHERE seq > ? AND seq <= ? ORDER BY seq", (low, high)
            )
        ]

    def delete_events_before(
        self, before: datetime, *, datasets: Collection[str] | None = None, keep_datasets: Collection[str] = ()
    ) -> int:
        sql, params = "DELETE FROM events WHERE ts < ?", [format_timestamp(before)]
        if datasets is not None:
            if not datasets:
                return 0
            sql += f" AND dataset IN ({', '.join('?' * len(datasets))})"
            params += sorted(datasets)
        if keep_datasets:
            sql += f" AND dataset NOT IN ({', '.join('?' * len(keep_datasets))})"
            params += sorted(keep_datasets)
        with self._tx() as conn:
            return conn.execute(sql, params).rowcount

    # documents -----------------------------------------------------------------------------
    @staticmethod
    def _doc(doc_id: str, version: int, body: str) -> Doc:
        return Doc(doc_id, str(version), json.loads(body))

    @staticmethod
    def _dump(body: Mapping[str, Any]) -> str:
        return json.dumps(dict(body), ensure_ascii=False, separators=(",", ":"))

    def create_doc(self, kind: str, body: Mapping[str, Any], *, doc_id: str | None = None, refresh: bool = True) -> Doc:
        check_kind(kind)
        from uuid import uuid4  # noqa: PLC0415 - only creates need it

        doc_id = doc_id or uuid4().hex
        try:
            with self._tx() as conn:
                conn.execute(
                    "INSERT INTO docs (kind, id, tenant, version, body) VALUES (?, ?, ?, 1, ?)",
                    (kind, doc_id, body.get("tenant"), self._dump(body)),
                )
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"{kind}/{doc_id} exists already") from exc
        return Doc(doc_id, "1", dict(body))

    def get_doc(self, kind: str, doc_id: str) -> Doc:
        check_kind(kind)
        rows = self._query("SELECT version, body FROM docs WHERE kind = ? AND id = ?", (kind, doc_id))
        if not rows:
            raise NotFound(f"no {kind} document {doc_id!r}")
        return self._doc(doc_id, rows[0][0], rows[0][1])

    def update_doc(self, kind: str, doc_id: str, body: Mapping[str, Any], *, version: str, refresh: bool = True) -> Doc:
        check_kind(kind)
        try:
            expected = int(version)
        except ValueError as exc:
            raise Conflict(f"{kind}/{doc_id}: version {version!r} is not one this store gave out") from exc
        with self._tx() as conn:
            cursor = conn.execute(
                "UPDATE docs SET body = ?, tenant = ?, version = version + 1 WHERE kind = ? AND id = ? AND version = ?",
                (self._dump(body), body.get("tenant"), kind, doc_id, expected),
            )
            if cursor.rowcount == 0:
                exists = conn.execute("SELECT version FROM docs WHERE kind = ? AND id = ?", (kind, doc_id)).fetchone()
                if exists is None:
                    raise NotFound(f"no {kind} document {doc_id!r}")
                raise Conflict(
                    f"{kind}/{doc_id} changed since it was read (version {exists[0]}, not {expected})",
                    hint="read it again and re-apply the change",
                )
        return Doc(doc_id, str(expected + 1), dict(body))

    def put_doc(self, kind: str, doc_id: str, body: Mapping[str, Any]) -> Doc:
        check_kind(kind)
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO docs (kind, id, tenant, version, body) VALUES (?, ?, ?, 1, ?) "
                "ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body, tenant = excluded.tenant, "
                "version = docs.version + 1",
                (kind, doc_id, body.get("tenant"), self._dump(body)),
            )
            (version,) = conn.execute("SELECT version FROM docs WHERE kind = ? AND id = ?", (kind, doc_id)).fetchone()
        return Doc(doc_id, str(version), dict(body))

    def delete_doc(self, kind: str, doc_id: str) -> None:
        check_kind(kind)
        with self._tx() as conn:
            conn.execute("DELETE FROM docs WHERE kind = ? AND id = ?", (kind, doc_id))

    def list_docs(
        self,
        kind: str,
        *,
        tenants: tuple[str, ...] | None = None,
        filters: Mapping[str, Any] | None = None,
        sort: str = "created_at",
        descending: bool = True,
        size: int = 100,
        cursor: str | None = None,
    ) -> Page[Doc]:
        size = max(1, min(size, MAX_LIST_SIZE))
        check_kind(kind)
        clauses = ["kind = ?"]
        params: list[Any] = [kind]
        if tenants is not None:
            clauses.append(f"tenant IN ({','.join('?' * len(tenants))})")
            params.extend(tenants)
        for key, wanted in (filters or {}).items():
            values = list(wanted) if isinstance(wanted, list | tuple | set) else [wanted]
            clauses.append(
                f"EXISTS (SELECT 1 FROM json_each(docs.body, ?) AS v WHERE v.value IN ({','.join('?' * len(values))}))"
            )
            params.append(_json_path(key))
            params.extend(values)
        sort_expr = "json_extract(body, ?)"
        order = "DESC" if descending else "ASC"
        if cursor:
            last_value, last_id = decode_cursor(cursor)
            clauses.append(f"({sort_expr}, id) {'<' if descending else '>'} (?, ?)")
            params.extend([_json_path(sort), last_value, last_id])
        rows = self._query(
            f"SELECT id, version, body, {sort_expr} FROM docs WHERE {' AND '.join(clauses)} "
            f"ORDER BY {sort_expr} {order}, id {order} LIMIT ?",
            [_json_path(sort), *params, _json_path(sort), size + 1],
        )
        items = [self._doc(doc_id, version, body) for doc_id, version, body, _ in rows[:size]]
        next_cursor = None
        if len(rows) > size:
            last = rows[size - 1]
            next_cursor = encode_cursor([last[3], last[0]])
        return Page(items, next_cursor)

    def aggregate_docs(
        self,
        query: DocQuery,
        *,
        by: str | Sequence[str] | None = None,
        prefix: str | None = None,
        limit: int = 10,
        filters: Mapping[str, Condition] | None = None,
        stats: Mapping[str, str | Sequence[str]] | None = None,
    ) -> list[DocGroup]:
        """One SQL statement: the query's conditions in ``WHERE``, each named filter a
        ``count(CASE …)``, each numeric field ``count/total/min/max``; grouped by the values
        ``json_each`` finds under ``by`` (a document once per distinct value)."""
        check_kind(query.kind)
        filters = dict(filters or {})
        paths = {name: field_path(f) for name, f in (stats or {}).items()}
        select = _DocSqlBuilder()
        # a document counted once per group, even when a list holds a value twice
        counted = "docs.rowid" if by is not None else "1"
        columns = ["count(DISTINCT docs.rowid)" if by is not None else "count(*)"]
        for condition in filters.values():
            columns.append(
                f"count({'DISTINCT ' if by is not None else ''}CASE WHEN {select.compile(condition)} "
                f"THEN {counted} END)"
            )
        for path in paths.values():
            number = "CASE WHEN json_type(docs.body, ?) IN ('integer', 'real') THEN json_extract(docs.body, ?) END"
            for function in ("count", "total", "min", "max"):
                columns.append(f"{function}({number})")
                select.params.extend([_doc_path(path), _doc_path(path)])
        where = _DocSqlBuilder()
        clauses = ["docs.kind = ?"]
        where.params.append(query.kind)
        if query.tenants is not None:
            clauses.append(f"docs.tenant IN ({','.join('?' * len(query.tenants))})")
            where.params.extend(query.tenants)
        clauses += [where.compile(condition) for condition in query.where]
        if by is None:
            sql = f"SELECT 'total', {', '.join(columns)} FROM docs WHERE {' AND '.join(clauses)}"
            params = [*select.params, *where.params]
        else:
            clauses.append("g.type NOT IN ('object', 'array', 'null')")
            if prefix is not None:
                clauses.append("substr(CAST(g.value AS TEXT), 1, ?) = ?")
                where.params.extend([len(prefix), prefix])
            sql = (
                f"SELECT CAST(g.value AS TEXT) AS k, {', '.join(columns)} FROM docs, json_each(docs.body, ?) AS g "
                f"WHERE {' AND '.join(clauses)} GROUP BY k ORDER BY 2 DESC, k ASC LIMIT ?"
            )
            params = [*select.params, _doc_path(field_path(by)), *where.params, max(1, min(limit, MAX_GROUPS))]
        groups = []
        for row in self._query(sql, params):
            named = iter(row[2 + len(filters) :])
            field_stats = {}
            for name in paths:
                count, total, low, high = (next(named) for _ in range(4))
                field_stats[name] = FieldStats(
                    int(count), float(total), None if low is None else float(low), None if high is None else float(high)
                )
            counts = dict(zip(filters, (int(n) for n in row[2 : 2 + len(filters)]), strict=True))
            groups.append(DocGroup(str(row[0]), int(row[1]), counts, field_stats))
        return groups


__all__ = ["SqliteStore"]
