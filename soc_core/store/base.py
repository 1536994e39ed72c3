"""The one store interface every backend implements.

Two kinds of data live in a store:

* **events** — immutable ECS events, written idempotently in batches (the deterministic
  ``event.id`` makes a repeat within a tenant a "duplicate", not a second copy; ids are unique
  per tenant only, so one agency cannot shadow or probe another's), read by query, time range and
  tenant, counted by field or time bucket, and read back in ingest order by the detection engine
  (planned, then read in blocks: :class:`ReadPlan`);
* **documents** — workflow objects (alerts, cases, users, checkpoints, …) keyed by kind and id,
  updated under optimistic concurrency: every read returns a ``version`` and an update that
  names a stale version raises :class:`~soc_core.errors.Conflict`.

Every event query carries the caller's tenants (``EventQuery.tenants``); ``None`` means
"province-wide" and must be asked for explicitly by the caller. Detection rules run as store
queries through :meth:`Store.rule_query_pages`: the rule (a :class:`RuleQuery`) compiles itself
to the store's language, and the store adds the tenant and time filters with the builder its
hunts use.
"""

from __future__ import annotations

import abc
import base64
import json
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, ClassVar, Generic, Literal, NamedTuple, Protocol, TypeVar

from soc_core.config import Settings
from soc_core.errors import Conflict, InvalidInput, NotFound, StoreError
from soc_core.events import Event
from soc_core.query import EventQuery, event_query
from soc_core.store.docquery import Condition, DocGroup, DocQuery
from soc_core.store.fields import FieldTypes

T = TypeVar("T")

ItemStatus = Literal["created", "duplicate", "rejected", "retry"]


class ItemResult(NamedTuple):
    """What happened to one event of a batch.

    ``created`` and ``duplicate`` mean it is stored; ``rejected`` means it never will be (bad
    document: goes to the dead-letter store with ``reason``); ``retry`` means try again later.
    A named tuple: one is made per event stored, and that is the cheapest immutable record.
    """

    id: str
    status: ItemStatus
    reason: str | None = None

    @property
    def stored(self) -> bool:
        return self.status in ("created", "duplicate")


@dataclass(frozen=True)
class PreparedEvents:
    """A batch made ready by :meth:`Store.prepare_events`: the events, and the store's own form."""

    events: Sequence[Event]
    encoded: Sequence[bytes] | None = None
    body: Any = None  # what the store made of them ahead (an Elasticsearch bulk body), if anything


@dataclass
class BulkResult:
    items: list[ItemResult] = field(default_factory=list)

    def count(self, status: ItemStatus) -> int:
        return sum(1 for item in self.items if item.status == status)

    @property
    def created(self) -> int:
        return self.count("created")

    @property
    def duplicates(self) -> int:
        return self.count("duplicate")


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True)
class Bucket:
    key: str
    count: int


Position = tuple[str | int, ...]
"""Where an event stands in the stream read by :meth:`Store.read_plan`: positions of one plan
sort in stream order."""


@dataclass(frozen=True)
class ReadPlan:
    """The span of the event stream one :meth:`Store.read_new_events` call covers, in blocks.

    Made by :meth:`Store.plan_new_events` without reading any event; any process holding the
    plan and a connection to the same store can read any of its blocks
    (:meth:`Store.read_plan`), so detection workers share a batch out block by block. A block
    is the store's own small, picklable description of a part of the span (a sequence range);
    together the blocks cover the span exactly once.
    """

    blocks: tuple[tuple[str | int, ...], ...] = ()


def block_size(count: int, largest: int) -> int:
    """How many events a block of a plan of ``count`` holds: at most ``largest``, and small
    enough that the plan has 8 blocks where it can, so that up to 8 workers share it."""
    return max(1, min(largest, count // 8))


@dataclass(frozen=True)
class DocWrite:
    """One write of :meth:`Store.write_docs`: create ``doc_id`` (``version`` None) or replace it
    if it is still at ``version``."""

    doc_id: str
    body: Mapping[str, Any]
    version: str | None = None


@dataclass
class Doc:
    id: str
    version: str
    body: dict[str, Any]


@dataclass(frozen=True)
class SqlQuery:
    """A ``WHERE`` fragment over table ``events`` and its parameters (a rule's SQLite query)."""

    where: str
    params: tuple[Any, ...]


class RuleQuery(Protocol):
    """A detection rule as a store query, compiled on demand to the language of the store that
    runs it (:mod:`detections.targets.query`). Compiling raises
    :class:`~soc_core.errors.RuleError` (naming :attr:`where`) for what the language cannot say."""

    @property
    def where(self) -> str:
        """The rule file, for messages."""

    def sql(self) -> SqlQuery:
        """The SQLite query."""

    def fields(self) -> Sequence[str]:
        """The fields the rule tests (the Elasticsearch store reads their mapped types)."""

    def dsl(self, field_types: FieldTypes) -> dict[str, Any]:
        """The Elasticsearch query, for fields of these mapped types."""


RULE_PAGE_SIZE = 1000  # events per page of Store.rule_query_pages
RulePageReader = Callable[[EventQuery, int, Sequence[str] | None], Page[Event]]
"""Reads one page of a scope's events that a rule matches: (scope, page size, fields) → page."""


def project(event: Mapping[str, Any], fields: Sequence[str] | None) -> Event:
    """``event`` with only ``fields`` (dotted names; all if None), read flat or nested."""
    if fields is None:
        return dict(event)
    found: dict[str, Any] = {}
    for name in fields:
        if name in event:
            found[name] = event[name]
            continue
        node: Any = event
        for part in name.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is not None:
            found[name] = node
    return found


MAX_LIST_SIZE = 1000  # documents per page; callers page with the cursor beyond that

DOC_KINDS = frozenset(
    {
        "alerts",
        "cases",
        "users",
        "sessions",
        "apikeys",
        "tenants",
        "sensors",
        "checkpoints",
        "audit",
        "rules",
        "throttle",
        "playbook_runs",
        "containment",  # addresses blocked by playbooks (playbooks.actions.contain)
        "intel",  # threat-intel lists (intel.lists); their indicators are in intel_chunks
        "intel_chunks",
        "sensor_uptime",  # heartbeats per sensor and hour (soc_api.services.sensors), for uptime reports
        "scheduler_jobs",  # the scheduler's persistent job store (scheduling.jobstore)
        "job_runs",  # one record per scheduled or manual job run (scheduling.runs)
        "reports",  # stored weekly reports, one per (tenant, ISO week) (reports.stored)
    }
)


def check_kind(kind: str) -> str:
    if kind not in DOC_KINDS:
        raise StoreError(f"unknown document kind {kind!r}", hint=f"use one of {sorted(DOC_KINDS)}")
    return kind


def encode_cursor(values: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode()


def decode_cursor(cursor: str, *, length: int = 2) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError, UnicodeError) as exc:
        raise InvalidInput("malformed page cursor", hint="pass back the next_cursor you were given") from exc
    if not isinstance(values, list) or len(values) != length:
        raise InvalidInput("malformed page cursor", hint="pass back the next_cursor you were given")
    if not all(isinstance(v, str | int | float) or v is None for v in values):
        raise InvalidInput("malformed page cursor", hint="pass back the next_cursor you were given")
    return values


class Store(abc.ABC):
    """Events and workflow documents, on SQLite or Elasticsearch."""

    name: ClassVar[str]

    # lifecycle -----------------------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def from_settings(cls, settings: Settings) -> Store:
        """The store the configuration describes (``store.*``), not yet set up."""

    @abc.abstractmethod
    def setup(self) -> None:
        """Create tables / index templates. Idempotent."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise :class:`StoreUnavailable` (naming where) if the store cannot be reached."""

    @abc.abstractmethod
    def close(self) -> None: ...

    @property
    def location(self) -> str:
        """Where the data lives (a file, a cluster and index prefix): names this store's audit
        anchors, so one anchor file can serve several stores without mixing them up."""
        return self.name

    @abc.abstractmethod
    def reopened(self) -> Store:
        """A new store object on the same data with its own connections.

        A forked process uses it: a SQLite connection or an HTTP connection pool must never be
        shared across fork. The object it is called on is left untouched.
        """

    def refresh(self) -> None:  # noqa: B027 - a no-op where writes are visible at once
        """Make every write so far visible to searches (Elasticsearch refresh)."""

    # events --------------------------------------------------------------------------------
    @abc.abstractmethod
    def add_events(self, events: Sequence[Event], *, encoded: Sequence[bytes] | None = None) -> BulkResult:
        """Store a batch; one :class:`ItemResult` per input event, in input order.

        Sets ``event.ingested``. A batch-wide outage raises :class:`StoreUnavailable`
        and nothing may be assumed stored. ``encoded[i]``, when given, is ``events[i]`` as
        JSON written by :func:`soc_core.events.encode_event` (the sensors' spool holds it), so
        the store need not serialise the event again.
        """

    def prepare_events(self, events: Sequence[Event], *, encoded: Sequence[bytes] | None = None) -> PreparedEvents:
        """The work of :meth:`add_events` that needs no store (checking, serialising), done now.

        A sensor prepares its next batch while the previous one is on the wire and hands it to
        :meth:`add_prepared`; a store with nothing to do ahead returns the batch as it is.
        """
        return PreparedEvents(events, encoded)

    def add_prepared(self, prepared: PreparedEvents) -> BulkResult:
        """:meth:`add_events` for a batch from :meth:`prepare_events` (of this store)."""
        return self.add_events(prepared.events, encoded=prepared.encoded)

    @abc.abstractmethod
    def get_events(self, ids: Sequence[str], *, tenants: tuple[str, ...] | None) -> list[Event]:
        """The events with these ids that the tenants may see (missing ids are left out).

        Ids are unique per tenant only: callers looking up an object's events (an alert's, a
        case's) pass that object's one tenant."""

    @abc.abstractmethod
    def search_events(self, query: EventQuery) -> Page[Event]:
        """Newest first (or oldest first with ``ascending``), with a cursor to the next page."""

    @abc.abstractmethod
    def count_events(
        self,
        query: EventQuery,
        *,
        by: str | tuple[str, ...] | None = None,
        interval: Literal["hour", "day"] | None = None,
        limit: int = 10,
    ) -> list[Bucket]:
        """Total (one bucket ``"total"``), top values of field ``by``, or counts per time bucket.

        ``by`` as a tuple of (single-valued) fields counts each event under the first of them it
        holds: ``("observer.id", "observer.name")`` in one pass."""

    def read_new_events(self, checkpoint: str | None, *, limit: int) -> tuple[list[Event], str]:
        """Events of all tenants in ingest order after ``checkpoint``, and the new checkpoint.

        Each event is returned exactly once across calls that pass back the checkpoint,
        even when writes land late (Elasticsearch refresh) — the detection engine relies on it.
        It is :meth:`plan_new_events` and :meth:`read_plan` of the whole plan, planned again
        while a plan holds no event (Elasticsearch: only gaps, or events a migrated checkpoint
        skips), so an empty answer means there is nothing new.
        """
        while True:
            plan, checkpoint = self.plan_new_events(checkpoint, limit=limit)
            events = [event for _, event in self.read_plan(plan)]
            if events or not plan.blocks:
                return events, checkpoint

    @abc.abstractmethod
    def plan_new_events(self, checkpoint: str | None, *, limit: int) -> tuple[ReadPlan, str]:
        """The span of new events after ``checkpoint`` (at most ``limit`` of them) and the
        checkpoint after it, reading no event.

        Every event of the span can be read (:meth:`read_plan`) once the plan is made; an event
        stored later falls in a later span. So reading every plan once, from the checkpoint
        each returns, reads each event exactly once.
        """

    def rule_query_pages(
        self,
        query: RuleQuery,
        *,
        tenants: tuple[str, ...] | None,
        start: datetime | None = None,
        end: datetime | None = None,
        fields: Sequence[str] | None = None,
        page_size: int = RULE_PAGE_SIZE,
    ) -> Iterator[list[Event]]:
        """The events of ``tenants`` (``None``: province-wide) in ``[start, end)`` that the rule
        ``query`` matches, in pages of ``page_size``, oldest first (``@timestamp``, ``event.id``,
        tenant): each event once. With ``fields``, each event holds only those fields.

        The scope is built by :func:`soc_core.query.event_query` and read by the store's hunt
        paging (:meth:`search_events`'s query builder and cursor), with the rule's condition
        added. Raises :class:`~soc_core.errors.RuleError` if the rule cannot run on this store.
        """
        scope = event_query(tenants=tenants, province_wide=tenants is None, start=start, end=end, ascending=True)
        read_page = self._rule_pages(query)
        while True:
            page = read_page(scope, page_size, fields)
            if page.items:
                yield page.items
            if page.next_cursor is None:
                return
            scope = replace(scope, cursor=page.next_cursor)

    @abc.abstractmethod
    def _rule_pages(self, query: RuleQuery) -> RulePageReader:
        """The rule compiled for this store, as a reader of one page of a scope."""

    @abc.abstractmethod
    def read_plan(self, plan: ReadPlan, blocks: Iterable[int] | None = None) -> list[tuple[Position, Event]]:
        """The events of these blocks of ``plan`` (numbers into ``plan.blocks``; all if
        ``None``) with their positions, sorted by position."""

    @abc.abstractmethod
    def delete_events_before(
        self, before: datetime, *, datasets: Collection[str] | None = None, keep_datasets: Collection[str] = ()
    ) -> int:
        """Retention: remove events older than ``before`` — of ``datasets`` only (all if
        ``None``), never of ``keep_datasets`` (those with a policy of their own); returns how
        many events (SQLite) or whole daily indices (Elasticsearch) went."""

    # documents -----------------------------------------------------------------------------
    @abc.abstractmethod
    def create_doc(self, kind: str, body: Mapping[str, Any], *, doc_id: str | None = None, refresh: bool = True) -> Doc:
        """Create; raises :class:`Conflict` if ``doc_id`` exists already. With ``refresh=False``
        the write need not be searchable at once (``list_docs``); a read by id sees it anyway.
        Elasticsearch then skips its refresh (the dearest part of a write); SQLite ignores it."""

    @abc.abstractmethod
    def get_doc(self, kind: str, doc_id: str) -> Doc:
        """Raises :class:`NotFound`."""

    @abc.abstractmethod
    def update_doc(self, kind: str, doc_id: str, body: Mapping[str, Any], *, version: str, refresh: bool = True) -> Doc:
        """Replace the body if the stored version is still ``version``; else :class:`Conflict`.
        ``refresh`` as for :meth:`create_doc`."""

    @abc.abstractmethod
    def put_doc(self, kind: str, doc_id: str, body: Mapping[str, Any]) -> Doc:
        """Unconditional create-or-replace (checkpoints, caches)."""

    def write_docs(self, kind: str, writes: Sequence[DocWrite], *, refresh: bool = True) -> list[Doc | Conflict]:
        """Several creates and conditional updates at once, in order: per write the new
        :class:`Doc`, or the :class:`Conflict` that write met (it exists already; it changed
        since ``version`` was read, or is gone). Other failures raise as for one write.

        Elasticsearch sends them in one bulk request with one refresh (none with
        ``refresh=False``, as for :meth:`create_doc`); the default does them one by one.
        """
        done: list[Doc | Conflict] = []
        for write in writes:
            try:
                if write.version is None:
                    done.append(self.create_doc(kind, write.body, doc_id=write.doc_id, refresh=refresh))
                else:
                    done.append(self.update_doc(kind, write.doc_id, write.body, version=write.version, refresh=refresh))
            except Conflict as exc:
                done.append(exc)
            except NotFound as exc:
                done.append(Conflict(f"{kind}/{write.doc_id} is gone: {exc.message}", hint="read it again"))
        return done

    @abc.abstractmethod
    def delete_doc(self, kind: str, doc_id: str) -> None:
        """Remove; missing ids are not an error."""

    @abc.abstractmethod
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
        """Documents whose top-level ``tenant`` is one of ``tenants`` (all if ``None``) and whose
        top-level fields equal ``filters`` (a list value means any of), sorted by a top-level
        field, then id. At most :data:`MAX_LIST_SIZE` per page."""

    @abc.abstractmethod
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
        """Counts over the documents of ``query`` (:mod:`soc_core.store.docquery`), counted by
        the store: SQL on SQLite, one aggregation request on Elasticsearch.

        Without ``by``: one group ``"total"``. With ``by`` (a field; a list field counts a
        document once under each of its values): the ``limit`` most frequent values (those
        starting with ``prefix``, if given), most documents first, then by value; documents
        without the field are in no group. Each group also counts its documents meeting each
        named condition of ``filters``, and gives :class:`FieldStats` of each named numeric
        field of ``stats`` (documents without a number there are left out of it).
        """


__all__ = [
    "DOC_KINDS",
    "MAX_LIST_SIZE",
    "RULE_PAGE_SIZE",
    "Bucket",
    "BulkResult",
    "Doc",
    "DocWrite",
    "EventQuery",
    "ItemResult",
    "ItemStatus",
    "Page",
    "Position",
    "PreparedEvents",
    "ReadPlan",
    "RuleQuery",
    "SqlQuery",
    "Store",
    "block_size",
    "check_kind",
    "decode_cursor",
    "encode_cursor",
    "project",
]
