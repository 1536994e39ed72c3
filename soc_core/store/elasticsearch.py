"""The Elasticsearch store: daily event indices per tenant and dataset, one index per doc kind.

* Events go to ``canhgac-events-<tenant>-<dataset>-YYYY.MM.DD`` (day of ``@timestamp``) with
  ``op_type: create`` and the deterministic ``event.id`` as ``_id``: a 409 means "already
  stored". Readers take the tenant from the index name (tenant ids cannot contain ``-``), and
  also filter on ``organization.id``.
* Documents go to ``canhgac-<kind>`` and are updated with ``if_seq_no``/``if_primary_term``;
  the version we hand out is ``"<seq_no>:<primary_term>"``.
* The index templates come from ECS, with the types this minimal server supports
  (see scripts/gen_ecs_fields.py); unknown strings map to ``keyword``.
* ``plan_new_events`` plans spans of ``_seq_no`` per event index (one shard each) up to the
  shard's checkpoint — the highest seq_no at or below which every operation is processed —
  and refreshes, keeping a per-index watermark (index uuid, seq_no) as its checkpoint;
  ``read_plan`` reads any blocks of those spans, in any process. That is exact: no settle
  delay, no re-read window, no event missed or returned twice.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal, cast
from urllib.parse import urlsplit

import orjson
from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, TransportError
from elasticsearch import ApiError, Elasticsearch, NotFoundError
from elasticsearch.serializer import OrjsonSerializer

from soc_core.bounds import EventBounds
from soc_core.casefolding import lucene_pattern, needs_pattern
from soc_core.config import Settings
from soc_core.errors import Conflict, InvalidInput, NotFound, StoreError, StoreUnavailable
from soc_core.events import (
    TENANT_FIELD,
    Event,
    check_tenant_id,
    encode_stored,
    format_timestamp,
    parse_timestamp,
    utcnow,
    validate_event,
)
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
from soc_core.store.base import (
    MAX_LIST_SIZE,
    Bucket,
    BulkResult,
    Doc,
    DocWrite,
    EventQuery,
    ItemResult,
    Page,
    Position,
    PreparedEvents,
    ReadPlan,
    RulePageReader,
    RuleQuery,
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
    FieldStats,
    Range,
    Term,
    field_path,
)
from soc_core.store.docquery import Not as DocNot
from soc_core.store.fields import NUMERIC_TYPES, FieldTypes, check_field_name, ecs_types, field_type, numeric_bound
from soc_core.tenant_claims import as_stored

PREFIX = "canhgac"
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
DOC_ID_FIELD = "_canhgac_id"
BULK_CHUNK = 2000  # events per bulk request
# what add_events reads of a bulk answer: Elasticsearch leaves the rest out (less to build and parse)
BULK_ANSWER = "errors,items.*.status,items.*.error.type,items.*.error.reason"
READ_PAGE = 5000  # hits per search page of read_plan (below index.max_result_window)
# seq_nos per block of a read plan at most (see block_size): each block a worker reads is a
# search round trip, so blocks are bigger than SQLite's
READ_BLOCK = 1000
# The re-read window of the reader by event.ingested that this one replaced: a checkpoint it
# saved is migrated once with it (see _ReadState.parse).
LEGACY_OVERLAP = timedelta(seconds=15)


# Bulk item errors that refuse the index, not the event: the same event is taken once the
# cluster has room (shard limit), the index is opened or its block lifted, or index creation is
# allowed again. They are retried (the sensor spools them); only the event's own faults (a
# mapping conflict, a malformed document) are rejected for good.
INDEX_REFUSALS = frozenset({"index_closed_exception", "cluster_block_exception", "index_not_found_exception"})


def index_refused(error_type: str, reason: str) -> bool:
    """True when a bulk item's error is about its index (retry later), not about the event."""
    if error_type in INDEX_REFUSALS:
        return True
    # the shard limit: "this action would add [1] shards, but this cluster currently has
    # [1000]/[1000] maximum normal shards open"
    return error_type == "validation_exception" and "maximum" in reason and "shards open" in reason


def _index_safe(value: str) -> str:
    return re.sub(r"[^a-z0-9_.]", "_", value.lower())


def event_index(event: Mapping[str, Any], prefix: str = PREFIX) -> str:
    stamp = str(event["@timestamp"])
    if len(stamp) == 24 and stamp[10] == "T" and stamp[23] == "Z":  # the form events carry: UTC already
        day = f"{stamp[0:4]}.{stamp[5:7]}.{stamp[8:10]}"
    else:
        day = parse_timestamp(stamp).strftime("%Y.%m.%d")
    return _index_name(prefix, str(event[TENANT_FIELD]), str(event["event.dataset"]), day)


@functools.lru_cache(maxsize=4096)
def _index_name(prefix: str, tenant: str, dataset: str, day: str) -> str:
    return f"{prefix}-events-{tenant}-{_index_safe(dataset)}-{day}"


@functools.lru_cache(maxsize=4096)
def _create_action(index: str) -> bytes:
    """The start of a bulk ``create`` line for ``index``; the id and ``}}`` follow."""
    return b'{"create":{"_index":' + orjson.dumps(index) + b',"_id":'


def _properties_from_flat(types: Mapping[str, str]) -> dict[str, Any]:
    """Turn {"source.ip": "ip"} into nested ``properties`` mappings."""
    root: dict[str, Any] = {}
    for name in sorted(types):
        kind = types[name]
        node = root
        parts = name.split(".")
        for part in parts[:-1]:
            entry = node.setdefault(part, {"properties": {}})
            if "properties" not in entry:  # a leaf that also has children: ECS has none we keep
                break
            node = entry["properties"]
        else:
            mapping: dict[str, Any] = {"type": kind}
            if kind == "keyword":
                mapping["ignore_above"] = 1024
            if kind == "text":  # Sigma rules match whole values (wildcards, regexes) of text fields too
                mapping["fields"] = {"keyword": {"type": "keyword", "ignore_above": 8191}}
            if name == "event.original":
                mapping = {"type": "keyword", "index": False, "doc_values": False}
            node.setdefault(parts[-1], mapping)
    return root


def events_template(replicas: int, prefix: str = PREFIX) -> dict[str, Any]:
    # Only the fields that are not plain keywords need to be spelled out: the dynamic template
    # maps every other string to keyword, which is what ECS says for nearly all of them.
    typed = {name: kind for name, kind in ecs_types().items() if kind != "keyword" or name == "event.original"}
    return {
        "index_patterns": [f"{prefix}-events-*"],
        "priority": 200,
        "template": {
            "settings": {
                "number_of_shards": 1,
                "number_of_replicas": replicas,
                "refresh_interval": "1s",
                "index.mapping.total_fields.limit": 5000,
                "index.mapping.ignore_malformed": True,
            },
            "mappings": {
                "date_detection": False,
                "dynamic_templates": [
                    {
                        "strings_as_keywords": {
                            "match_mapping_type": "string",
                            "mapping": {"type": "keyword", "ignore_above": 8191},
                        }
                    },
                    {
                        "windows_data_as_keywords": {
                            "path_match": "winlog.event_data.*",
                            "mapping": {"type": "keyword", "ignore_above": 8191},
                        }
                    },
                ],
                "properties": _properties_from_flat(typed),
            },
        },
    }


# Parts of workflow documents that hold free-form data (engine state, audit before/after,
# playbook inputs): stored, never indexed, so their shapes cannot clash with a mapping.
# (``batch``: the records an audit batch's first record carries, read from the source only)
OPAQUE_OBJECTS = ["correlation", "state", "before", "after", "details", "params", "output", "inputs", "definition"]
OPAQUE_OBJECTS += ["batch"]
OPAQUE_OBJECTS.append("report")  # a stored weekly report's numbers (reports.stored), read back whole
OPAQUE_KINDS = ("checkpoints", "intel_chunks")


def docs_template(replicas: int, prefix: str = PREFIX) -> dict[str, Any]:
    return {
        "index_patterns": [f"{prefix}-docs-*"],
        "priority": 200,
        "template": {
            "settings": {"number_of_shards": 1, "number_of_replicas": replicas, "refresh_interval": "1s"},
            "mappings": {
                "date_detection": False,
                "numeric_detection": False,
                "dynamic_templates": [
                    {
                        "opaque_objects": {
                            "match_mapping_type": "object",
                            "match": OPAQUE_OBJECTS,
                            "mapping": {"type": "object", "enabled": False},
                        }
                    },
                    {
                        "strings_as_keywords": {
                            "match_mapping_type": "string",
                            "mapping": {"type": "keyword", "ignore_above": 8191},
                        }
                    },
                ],
                "properties": {DOC_ID_FIELD: {"type": "keyword"}, "tenant": {"type": "keyword"}},
            },
        },
    }


def opaque_docs_template(kind: str, replicas: int, prefix: str = PREFIX) -> dict[str, Any]:
    """Kinds read only by id: nothing but the id is indexed."""
    return {
        "index_patterns": [f"{prefix}-docs-{kind}"],
        "priority": 300,
        "template": {
            "settings": {"number_of_shards": 1, "number_of_replicas": replicas, "refresh_interval": "1s"},
            "mappings": {"dynamic": False, "properties": {DOC_ID_FIELD: {"type": "keyword"}}},
        },
    }


def _root_cause(exc: ApiError) -> str:
    """The first root-cause reason of an Elasticsearch error, else its type."""
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    causes = (error.get("root_cause") if isinstance(error, dict) else None) or []
    if causes and isinstance(causes[0], dict):
        return f"{causes[0].get('type', '')}: {causes[0].get('reason', '')}"[:500]
    return str(exc.message)


@dataclass
class _ReadState:
    """Where ``read_new_events`` stands: per event index, its uuid and the last seq_no handled.

    The uuid tells an index re-created under the same name (its seq_nos start again at 0).
    ``legacy_from`` is set only while a checkpoint of the earlier reader by ``event.ingested``
    is being migrated: events stamped before it, or listed in ``legacy_seen``, were returned
    by that reader and are skipped.
    """

    marks: dict[str, tuple[str, int]]
    legacy_from: str | None = None
    legacy_seen: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, checkpoint: str | None) -> _ReadState:
        if not checkpoint:
            return cls({})
        try:
            state = json.loads(checkpoint)
            if "indices" in state:
                legacy = state.get("legacy") or {}
                return cls(
                    {name: (str(uuid), int(seq)) for name, (uuid, seq) in state["indices"].items()},
                    legacy.get("from"),
                    frozenset(legacy.get("seen", ())),
                )
            # the earlier reader: {"t": newest event.ingested returned, "seen": {id: stamp}}
            if not state.get("t"):
                return cls({})
            start = format_timestamp(parse_timestamp(state["t"]) - LEGACY_OVERLAP)
            return cls({}, start, frozenset(state.get("seen") or {}))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise StoreError(
                f"unreadable event read checkpoint {checkpoint[:200]!r}: {exc}",
                hint="it is written by read_new_events; delete the detection checkpoint document to start over",
            ) from exc

    def dump(self) -> str:
        state: dict[str, Any] = {"indices": {name: list(mark) for name, mark in sorted(self.marks.items())}}
        if self.legacy_from is not None:
            state["legacy"] = {"from": self.legacy_from, "seen": sorted(self.legacy_seen)}
        return json.dumps(state, separators=(",", ":"))


def _readable_seq_no(name: str, shards: Mapping[str, Sequence[Mapping[str, Any]]]) -> int | None:
    """The highest seq_no N of an event index such that every operation at or below N is
    processed on every started copy of its shard (so a refresh makes them all searchable),
    or None when no copy is started.

    The primary's global checkpoint is the minimum of the in-sync copies' local checkpoints
    and never goes back, even when a replica is promoted; the started copies' local
    checkpoints are taken too, as a search may be served by any of them.
    """
    if len(shards) != 1:
        raise StoreError(
            f"event index {name} has {len(shards)} primary shards; reading new events needs exactly one",
            hint="the events index template sets number_of_shards: 1; re-create the index from it",
        )
    copies = [copy for copy in next(iter(shards.values())) if copy["routing"]["state"] == "STARTED"]
    primaries = [copy for copy in copies if copy["routing"]["primary"]]
    if not primaries:
        return None
    checkpoints = [primaries[0]["seq_no"]["global_checkpoint"], *(c["seq_no"]["local_checkpoint"] for c in copies)]
    return int(min(checkpoints))


def _share(spans: Mapping[str, tuple[int, int]], limit: int) -> dict[str, tuple[int, int]]:
    """The first ``limit`` seq_nos of the spans ``(done, upto]``, as one search sorted by
    (``_seq_no``, index name) would return them: every span up to a common cutoff, and the
    first indices by name one seq_no further."""
    if not spans or limit < 1:
        return {}

    def taken(cutoff: int) -> int:
        return sum(max(0, min(cutoff, upto) - done) for done, upto in spans.values())

    low, high = min(done for done, _ in spans.values()), max(upto for _, upto in spans.values())
    while low < high:  # the highest cutoff that takes at most ``limit``
        middle = (low + high + 1) // 2
        low, high = (middle, high) if taken(middle) <= limit else (low, middle - 1)
    spare = limit - taken(low)
    shares = {}
    for name, (done, upto) in sorted(spans.items()):
        stop = max(done, min(low, upto))
        if spare and done <= low < upto:
            stop, spare = low + 1, spare - 1
        if stop > done:
            shares[name] = (done, stop)
    return shares


def _blocks(spans: Mapping[str, tuple[int, int]], size: int) -> tuple[tuple[str | int, ...], ...]:
    """The spans cut into blocks of ``size`` seq_nos: the pieces of small spans share a block
    (each block is one search for whoever reads it), flattened as (index, done, upto, …)."""
    blocks: list[tuple[str | int, ...]] = []
    block: list[str | int] = []
    room = size
    for name, (start, stop) in sorted(spans.items()):
        done = start
        while done < stop:
            upto = min(stop, done + room)
            block += [name, done, upto]
            room -= upto - done
            done = upto
            if room == 0:
                blocks.append(tuple(block))
                block, room = [], size
    if block:
        blocks.append(tuple(block))
    return tuple(blocks)


@dataclass(frozen=True)
class _SeqNoPlan(ReadPlan):
    """Blocks of spans ``(index, done, upto, …)``: the events with ``done < _seq_no <= upto``
    of each index named.

    While a checkpoint of the earlier reader is migrated (see :class:`_ReadState`), events
    ingested before ``legacy_from`` or listed in ``legacy_seen`` are left out.
    """

    legacy_from: str | None = None
    legacy_seen: frozenset[str] = frozenset()


class _DslBuilder:
    """Compiles a parsed hunt query into Elasticsearch query DSL, matching the SQLite semantics."""

    def compile(self, node: Node) -> dict[str, Any]:
        if isinstance(node, MatchAll):
            return {"match_all": {}}
        if isinstance(node, And):
            return {"bool": {"filter": [self.compile(c) for c in node.children]}}
        if isinstance(node, Or):
            return {
                "bool": {
                    "should": [self.compile(c) for c in node.children],
                    "minimum_should_match": 1,
                }
            }
        if isinstance(node, Not):
            return {"bool": {"must_not": [self.compile(node.child)]}}
        if isinstance(node, Text):
            return {"match_phrase": {"message": node.value}}
        if isinstance(node, FieldExists):
            return {"exists": {"field": check_field_name(node.field)}}
        if isinstance(node, FieldEquals):
            return self._equals(node)
        return self._range(node)

    @staticmethod
    def _equals(node: FieldEquals) -> dict[str, Any]:
        field = check_field_name(node.field)
        kind = field_type(field)
        if kind == "text":
            return {"match_phrase": {field: node.value}}
        if kind == "ip":
            return {"term": {field: node.value}}
        if kind in NUMERIC_TYPES or kind in ("boolean", "date"):
            return {"term": {field: node.value}}
        parts = node.parts() if node.wildcard else [node.value]
        if needs_pattern("".join(part for part in parts if isinstance(part, str))):
            # case_insensitive folds ASCII only: spell out every case and composition instead
            pattern = lucene_pattern(parts)
            return {"regexp": {field: {"value": pattern, "flags": "NONE", "max_determinized_states": 100_000}}}
        if node.wildcard:
            return {"wildcard": {field: {"value": node.value, "case_insensitive": True}}}
        return {"term": {field: {"value": node.value, "case_insensitive": True}}}

    @staticmethod
    def _range(node: FieldRange) -> dict[str, Any]:
        numeric = field_type(node.field) in NUMERIC_TYPES
        bounds: dict[str, Any] = {}
        if node.low is not None:
            bounds["gte" if node.include_low else "gt"] = numeric_bound(node.field, node.low) if numeric else node.low
        if node.high is not None:
            bounds["lte" if node.include_high else "lt"] = (
                numeric_bound(node.field, node.high) if numeric else node.high
            )
        return {"range": {check_field_name(node.field): bounds}}


def _doc_condition(condition: Condition) -> dict[str, Any]:
    """A document condition (:mod:`soc_core.store.docquery`) as query DSL; a nested path is the
    dotted name Elasticsearch maps it under."""
    if isinstance(condition, Term):
        return {"terms": {".".join(condition.field): list(condition.values)}}
    if isinstance(condition, Range):
        bounds = {op: bound for op, bound in (("gte", condition.gte), ("gt", condition.gt), ("lt", condition.lt))}
        return {"range": {".".join(condition.field): {op: b for op, b in bounds.items() if b is not None}}}
    if isinstance(condition, Exists):
        return {"exists": {"field": ".".join(condition.field)}}
    if isinstance(condition, DocNot):
        return {"bool": {"must_not": [_doc_condition(condition.condition)]}}
    if isinstance(condition, AllOf):
        return {"bool": {"filter": [_doc_condition(c) for c in condition.conditions]}}
    raise StoreError(f"unknown document condition {condition!r}")


def _lucene_literal(text: str) -> str:
    """``text`` as a Lucene regular expression matching exactly it."""
    return "".join(char if char.isalnum() or char == "_" else "\\" + char for char in text)


@dataclass
class _Bulk:
    """A batch as :meth:`ElasticsearchStore.prepare_events` leaves it: results known so far
    (rejected events), every event's id, the body's lines, and the batch positions sent."""

    results: list[ItemResult | None]
    ids: list[str]
    lines: list[bytes]
    positions: list[int]


class ElasticsearchStore(Store):
    """Events and documents in an Elasticsearch 9.x cluster."""

    name: ClassVar[str] = "elasticsearch"

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        es = settings.store.elasticsearch
        return ElasticsearchStore(
            es.url,
            api_key=es.api_key,
            username=es.username,
            password=es.password,
            replicas=es.replicas,
            request_timeout=es.request_timeout,
            bounds=EventBounds.from_settings(settings.store),
            prefix=es.index_prefix,
        )

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        username: str | None = None,
        password: str | None = None,
        replicas: int = 0,
        request_timeout: float = 10.0,
        prefix: str = PREFIX,
        bounds: EventBounds | None = None,
    ) -> None:
        if not re.match(r"^[a-z][a-z0-9_]{0,30}$", prefix):
            raise StoreError(f"bad index prefix {prefix!r}", hint="lowercase letters, digits and _")
        self.prefix = prefix
        self.url = url
        self.replicas = replicas
        # datasets and days events may make indices for (None: any, as in tests and benches)
        self.bounds = bounds
        self._options: dict[str, Any] = {
            "api_key": api_key,
            "username": username,
            "password": password,
            "replicas": replicas,
            "request_timeout": request_timeout,
            "prefix": prefix,
            "bounds": bounds,
        }
        auth: dict[str, Any] = {}
        if api_key:
            auth["api_key"] = api_key
        elif username:
            auth["basic_auth"] = (username, password or "")
        self.client = Elasticsearch(
            url,
            request_timeout=request_timeout,
            max_retries=0,
            retry_on_timeout=False,
            serializer=OrjsonSerializer(),  # requests and answers: the bulk path's biggest CPU cost
            **auth,
        )

    # errors at the boundary ----------------------------------------------------------------
    def _translate(self, what: str, exc: Exception) -> StoreError:
        if isinstance(exc, TransportConnectionError | ConnectionTimeout):
            return StoreUnavailable(
                f"Elasticsearch unreachable while trying to {what}: {exc.message}",
                where=self.url,
                hint="check that the node is running and the URL in the configuration is right",
            )
        if isinstance(exc, ApiError):
            if exc.meta.status in RETRYABLE_STATUS:
                return StoreUnavailable(
                    f"Elasticsearch answered {exc.meta.status} while trying to {what}",
                    where=self.url,
                )
            return StoreError(f"Elasticsearch refused to {what}: {exc.message} {exc.info!r:.300}", where=self.url)
        return StoreUnavailable(f"Elasticsearch transport error while trying to {what}: {exc}", where=self.url)

    def _call(self, what: str, func: Any, /, **kwargs: Any) -> Any:
        try:
            return func(**kwargs)
        except (ApiError, TransportError) as exc:
            raise self._translate(what, exc) from exc

    # lifecycle -----------------------------------------------------------------------------
    def setup(self) -> None:
        self._call(
            "create the events index template",
            self.client.indices.put_index_template,
            name=f"{self.prefix}-events",
            **events_template(self.replicas, self.prefix),
        )
        self._call(
            "create the documents index template",
            self.client.indices.put_index_template,
            name=f"{self.prefix}-docs",
            **docs_template(self.replicas, self.prefix),
        )
        for kind in OPAQUE_KINDS:
            self._call(
                f"create the {kind} index template",
                self.client.indices.put_index_template,
                name=f"{self.prefix}-docs-{kind}",
                **opaque_docs_template(kind, self.replicas, self.prefix),
            )

    def ping(self) -> None:
        self._call("check cluster health", self.client.cluster.health, timeout="5s")

    @property
    def location(self) -> str:
        parts = urlsplit(self.url)  # never a password written in the URL
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}/{self.prefix}-*"

    def reopened(self) -> ElasticsearchStore:
        return type(self)(self.url, **self._options)

    def close(self) -> None:
        self.client.close()

    def refresh(self) -> None:
        self._call(
            "refresh",
            self.client.indices.refresh,
            index=f"{self.prefix}-*",
            ignore_unavailable=True,
            allow_no_indices=True,
        )

    # events --------------------------------------------------------------------------------
    def add_events(self, events: Sequence[Event], *, encoded: Sequence[bytes] | None = None) -> BulkResult:
        return self.add_prepared(self.prepare_events(events, encoded=encoded))

    def prepare_events(self, events: Sequence[Event], *, encoded: Sequence[bytes] | None = None) -> PreparedEvents:
        """Bring each event within :attr:`bounds`, check it and write the bulk body's lines
        (action, document, …) now."""
        now = utcnow()
        ingested = format_timestamp(now)
        bounding = (self.bounds, self.bounds.window(now)) if self.bounds is not None else None
        bulk = _Bulk([None] * len(events), [""] * len(events), [], [])
        for position, given in enumerate(events):
            event = bounding[0].apply(given, bounding[1]) if bounding is not None else given
            raw = encoded[position] if encoded is not None and event is given else None
            event_id = bulk.ids[position] = str(event.get("event.id") or "")
            stored = as_stored(event)
            problems = validate_event(stored)
            if problems:
                bulk.results[position] = ItemResult(event_id, "rejected", "; ".join(problems))
                continue
            reuse = raw if stored is event else None  # a tenant claim taken out: the bytes are stale
            try:
                document = encode_stored(stored, ingested, reuse)
            except (TypeError, orjson.JSONEncodeError) as exc:
                bulk.results[position] = ItemResult(event_id, "rejected", f"not JSON-serialisable: {exc}")
                continue
            bulk.lines.append(_create_action(event_index(stored, self.prefix)) + orjson.dumps(event_id) + b"}}")
            bulk.lines.append(document)
            bulk.positions.append(position)
        return PreparedEvents(events, encoded, bulk)

    def add_prepared(self, prepared: PreparedEvents) -> BulkResult:
        bulk = prepared.body
        if not isinstance(bulk, _Bulk):  # prepared by another store: do it here
            bulk = self.prepare_events(prepared.events, encoded=prepared.encoded).body
        results, ids, lines, positions = list(bulk.results), bulk.ids, bulk.lines, bulk.positions
        # Large batches go in several requests, so no single request outlives the timeout.
        for start in range(0, len(positions), BULK_CHUNK):
            body = b"\n".join(lines[2 * start : 2 * (start + BULK_CHUNK)]) + b"\n"
            response = self._call(
                "store events",
                self.client.bulk,
                operations=body,
                refresh=False,
                filter_path=BULK_ANSWER,
            )
            chunk = positions[start : start + BULK_CHUNK]
            items = response.get("items") or []
            if len(items) != len(chunk):
                raise StoreError(
                    f"Elasticsearch answered {len(items)} bulk results for {len(chunk)} events", where=self.url
                )
            if response.get("errors") is False:  # every one created: no need to look at each
                for position in chunk:
                    results[position] = ItemResult(ids[position], "created")
                continue
            for position, item in zip(chunk, items, strict=True):
                results[position] = self._item_result(ids[position], item["create"])
        return BulkResult([r for r in results if r is not None])

    @staticmethod
    def _item_result(event_id: str, item: Mapping[str, Any]) -> ItemResult:
        status = int(item.get("status", 0))
        if status in (200, 201):
            return ItemResult(event_id, "created")
        if status == 409:
            return ItemResult(event_id, "duplicate")
        error = item.get("error") or {}
        kind, why = str(error.get("type", "")), str(error.get("reason", ""))
        reason = f"{status} {kind}: {why}".strip()
        if status in RETRYABLE_STATUS or index_refused(kind, why):
            return ItemResult(event_id, "retry", reason)
        return ItemResult(event_id, "rejected", reason)

    @property
    def events_pattern(self) -> str:
        return f"{self.prefix}-events-*"

    def _indices(self, tenants: tuple[str, ...] | None) -> str:
        if tenants is None:
            return self.events_pattern
        # a tenant id is part of the index pattern: one with "-" or "*" would reach another's indices
        return ",".join(f"{self.prefix}-events-{check_tenant_id(tenant)}-*" for tenant in tenants)

    def _filters(self, query: EventQuery) -> list[dict[str, Any]]:
        filters = [_DslBuilder().compile(parse_query(query.query))]
        if query.tenants is not None:
            filters.append({"terms": {TENANT_FIELD: list(query.tenants)}})
        span: dict[str, str] = {}
        if query.start is not None:
            span["gte"] = format_timestamp(query.start)
        if query.end is not None:
            span["lt"] = format_timestamp(query.end)
        if span:
            filters.append({"range": {"@timestamp": span}})
        return filters

    def _search(self, what: str, **kwargs: Any) -> Mapping[str, Any]:
        try:
            response = self.client.search(ignore_unavailable=True, allow_no_indices=True, **kwargs)
        except ApiError as exc:
            if exc.meta.status == 400:  # the query or cursor the caller gave cannot be run
                raise InvalidInput(f"Elasticsearch cannot {what} as asked: {_root_cause(exc)}", where=self.url) from exc
            raise self._translate(what, exc) from exc
        except TransportError as exc:
            raise self._translate(what, exc) from exc
        return cast(Mapping[str, Any], response.body)

    def get_events(self, ids: Sequence[str], *, tenants: tuple[str, ...] | None) -> list[Event]:
        if not ids:
            return []
        filters: list[dict[str, Any]] = [{"ids": {"values": list(ids)}}]
        if tenants is not None:
            filters.append({"terms": {TENANT_FIELD: list(tenants)}})
        body = self._search(
            "read events",
            index=self._indices(tenants),
            query={"bool": {"filter": filters}},
            size=len(ids),
        )
        by_id = {hit["_id"]: hit["_source"] for hit in body["hits"]["hits"]}
        return [by_id[i] for i in ids if i in by_id]

    def _page(
        self,
        what: str,
        query: EventQuery,
        size: int,
        rule: Mapping[str, Any] | None = None,
        fields: Sequence[str] | None = None,
    ) -> Page[Event]:
        """One page of ``query`` (``size`` events at most, only ``fields`` of each if given),
        and the cursor to the next page."""
        order = "asc" if query.ascending else "desc"
        kwargs: dict[str, Any] = {}
        if query.cursor:
            kwargs["search_after"] = decode_cursor(query.cursor, length=3)
        if fields is not None:
            kwargs["source_includes"] = list(fields)
        filters = self._filters(query)
        if rule is not None:
            filters.append(dict(rule))
        body = self._search(
            what,
            index=self._indices(query.tenants),
            query={"bool": {"filter": filters}},
            sort=[
                {"@timestamp": {"order": order, "unmapped_type": "date"}},
                {"event.id": {"order": order, "unmapped_type": "keyword"}},
                # the tenant breaks ties: two agencies may hold the same event id at the same time
                {TENANT_FIELD: {"order": order, "unmapped_type": "keyword"}},
            ],
            size=size + 1,
            track_total_hits=False,
            **kwargs,
        )
        shards = body.get("_shards", {})
        if rule is not None and shards.get("failed"):  # a hunt shows what it has; a rule must see all
            reasons = json.dumps(shards.get("failures", [])[:2])[:500]
            raise StoreError(f"cannot {what}: {shards['failed']} shard(s) failed: {reasons}", where=self.url)
        hits = body["hits"]["hits"]
        items = [project(hit["_source"], fields) for hit in hits[:size]]
        next_cursor = encode_cursor(hits[size - 1]["sort"]) if len(hits) > size else None
        return Page(items, next_cursor)

    def search_events(self, query: EventQuery) -> Page[Event]:
        return self._page("search events", query, query.size)

    def _rule_pages(self, query: RuleQuery) -> RulePageReader:
        # compiled for the live mapping of the fields the rule tests
        rule = query.dsl(self.field_types(query.fields()))
        return lambda scope, size, fields: self._page(f"run rule {query.where}", scope, size, rule, fields)

    def field_types(self, names: Sequence[str]) -> FieldTypes:
        """Field types from the live mapping of the event indices, ECS types otherwise.

        A field mapped differently in different indices is read as ``keyword`` if any index maps
        it so (the dynamic template's choice for strings).
        """
        live: dict[str, set[str]] = {}
        if names:
            try:
                mappings = self.client.indices.get_field_mapping(
                    index=self.events_pattern, fields=list(names), allow_no_indices=True, ignore_unavailable=True
                ).body
            except NotFoundError:
                mappings = {}  # no event index yet: the node answers 404 with an empty body, not {}
            except (ApiError, TransportError) as exc:
                raise self._translate("read the event mapping", exc) from exc
            for index in mappings.values():
                for name, entry in index.get("mappings", {}).items():
                    leaf = name.rsplit(".", 1)[-1]
                    kind = entry.get("mapping", {}).get(leaf, {}).get("type")
                    if kind:
                        live.setdefault(name, set()).add(str(kind))

        def resolve(name: str) -> str:
            kinds = live.get(name)
            if not kinds:
                return field_type(name)
            if len(kinds) == 1:
                return next(iter(kinds))
            return "keyword" if "keyword" in kinds else sorted(kinds)[0]

        return resolve

    def count_events(
        self,
        query: EventQuery,
        *,
        by: str | tuple[str, ...] | None = None,
        interval: Literal["hour", "day"] | None = None,
        limit: int = 10,
    ) -> list[Bucket]:
        search: dict[str, Any] = {
            "index": self._indices(query.tenants),
            "query": {"bool": {"filter": self._filters(query)}},
            "size": 0,
        }
        if isinstance(by, tuple):
            return self._count_first_of(search, by, limit)
        if by is not None:
            search["aggs"] = {
                "values": {
                    "terms": {
                        "field": check_field_name(by),
                        "size": limit,
                        "order": [{"_count": "desc"}, {"_key": "asc"}],
                    }
                }
            }
        elif interval is not None:
            search["aggs"] = {
                "values": {
                    "date_histogram": {
                        "field": "@timestamp",
                        "calendar_interval": interval,
                        "min_doc_count": 1,
                        "format": "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'",
                    }
                }
            }
        else:
            search["track_total_hits"] = True
        body = self._search("count events", **search)
        if by is None and interval is None:
            return [Bucket("total", int(body["hits"]["total"]["value"]))]
        return [
            Bucket(str(bucket.get("key_as_string", bucket["key"])), int(bucket["doc_count"]))
            for bucket in body["aggregations"]["values"]["buckets"]
        ]

    def _count_first_of(self, search: dict[str, Any], fields: tuple[str, ...], limit: int) -> list[Bucket]:
        """Counts by the first of ``fields`` each event holds: one ``terms`` per field over the
        events without the fields before it, in one request, the buckets added up."""
        aggs: dict[str, Any] = {}
        for number, name in enumerate(fields):
            terms = {"terms": {"field": check_field_name(name), "size": limit}}
            earlier = [{"exists": {"field": check_field_name(f)}} for f in fields[:number]]
            aggs[f"by{number}"] = {"filter": {"bool": {"must_not": earlier}}, "aggs": {"values": terms}}
        body = self._search("count events", **search, aggs=aggs)
        counts: dict[str, int] = {}
        for number in range(len(fields)):
            found = (body.get("aggregations") or {}).get(f"by{number}") or {}
            for bucket in (found.get("values") or {}).get("buckets", []):
                key = str(bucket.get("key_as_string", bucket["key"]))
                counts[key] = counts.get(key, 0) + int(bucket["doc_count"])
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return [Bucket(key, count) for key, count in ranked]

    def plan_new_events(self, checkpoint: str | None, *, limit: int) -> tuple[ReadPlan, str]:
        """The next spans of new events of every event index, exact, with no settle delay.

        Every event index has one shard, whose operations carry increasing ``_seq_no``s. Per
        call: (1) one ``_stats`` call gives, per index, a seq_no N at or below which every
        operation is processed (:func:`_readable_seq_no`); (2) the spans ``watermark < _seq_no
        <= N`` of the indices that moved are cut down to ``limit`` seq_nos in all
        (:func:`_share`: the lowest seq_nos first, as one search sorted by ``_seq_no`` would
        take them) and each index's watermark moves to the end of its span; (3) a refresh,
        started after the stats, makes every operation of the spans searchable, so any process
        can read them (:meth:`read_plan`). Seq_nos of an index are nearly dense (a 409 or a
        rejected create takes none; a failure after one leaves a no-op), so a plan holds about
        ``limit`` events, never more; the gaps are harmless.

        The checkpoint maps each index name to its uuid and watermark. A deleted index drops
        out; a new one (a new day, tenant or dataset) starts at -1, and so does an index
        re-created under the same name (new uuid). A closed index drops out too and is read
        again from the start if reopened. A checkpoint of the earlier reader by
        ``event.ingested`` is migrated: see :class:`_ReadState`.
        """
        state = _ReadState.parse(checkpoint)
        marks: dict[str, tuple[str, int]] = {}
        spans: dict[str, tuple[int, int]] = {}
        for name, (uuid, upto) in self._readable_event_indices().items():
            known_uuid, done = state.marks.get(name, (uuid, -1))
            if known_uuid != uuid:
                done = -1
            marks[name] = (uuid, done)
            if upto is not None and upto > done:
                spans[name] = (done, upto)
        taken = _share(spans, limit)
        if taken:
            self._refresh_events()
        for name, (_, stop) in taken.items():
            marks[name] = (marks[name][0], stop)
        blocks = _blocks(taken, block_size(sum(stop - done for done, stop in taken.values()), READ_BLOCK))
        # once every index is read up to a checkpoint taken after the migration, no event the
        # earlier reader returned is left to skip
        exhausted = all(name in taken and taken[name][1] == upto for name, (_, upto) in spans.items())
        legacy_from, legacy_seen = (None, frozenset[str]()) if exhausted else (state.legacy_from, state.legacy_seen)
        plan = _SeqNoPlan(blocks, legacy_from=state.legacy_from, legacy_seen=state.legacy_seen)
        return plan, _ReadState(marks, legacy_from, legacy_seen).dump()

    def read_plan(self, plan: ReadPlan, blocks: Iterable[int] | None = None) -> list[tuple[Position, Event]]:
        """Events of the blocks by ``(event.ingested, index, _seq_no)``: seq_no order means
        nothing across indices, so ingest order it is. One search, paged by ``search_after``."""
        if not isinstance(plan, _SeqNoPlan):
            raise StoreError(f"not a read plan of this store: {type(plan).__name__}", hint="use plan_new_events")
        clauses = []
        for number in range(len(plan.blocks)) if blocks is None else blocks:
            block = plan.blocks[number]
            for start in range(0, len(block), 3):
                name, done, upto = block[start : start + 3]
                span = {"range": {"_seq_no": {"gt": done, "lte": upto}}}
                clauses.append({"bool": {"filter": [{"term": {"_index": name}}, span]}})
        if not clauses:
            return []
        filters: list[dict[str, Any]] = [{"bool": {"should": clauses, "minimum_should_match": 1}}]
        if plan.legacy_from is not None:
            filters.append({"range": {"event.ingested": {"gte": plan.legacy_from}}})
        found: list[tuple[Position, Event]] = []
        search_after: list[Any] | None = None
        while True:
            body = self._search(
                "read new events",
                index=self.events_pattern,
                query={"bool": {"filter": filters}},
                sort=[{"_seq_no": "asc"}, {"_index": "asc"}],
                size=READ_PAGE,
                track_total_hits=False,
                **({"search_after": search_after} if search_after else {}),
            )
            hits = body["hits"]["hits"]
            for hit in hits:
                if hit["_id"] not in plan.legacy_seen:
                    event = hit["_source"]
                    found.append(((str(event.get("event.ingested", "")), hit["_index"], hit["sort"][0]), event))
            if len(hits) < READ_PAGE:
                found.sort(key=lambda item: item[0])
                return found
            search_after = hits[-1]["sort"]

    def _readable_event_indices(self) -> dict[str, tuple[str, int | None]]:
        """Every event index: its uuid and :func:`_readable_seq_no` (one ``_stats`` call)."""
        body = self._call(
            "read the event indices' checkpoints",
            self.client.indices.stats,
            index=self.events_pattern,
            level="shards",
            metric="docs",
            filter_path="indices.*.uuid,indices.*.shards.*.routing,indices.*.shards.*.seq_no",
        )
        return {
            name: (str(index["uuid"]), _readable_seq_no(name, index.get("shards") or {"0": []}))
            for name, index in (body.get("indices") or {}).items()
        }

    def _refresh_events(self) -> None:
        self._call(
            "refresh the event indices",
            self.client.indices.refresh,
            index=self.events_pattern,
            ignore_unavailable=True,
            allow_no_indices=True,
        )

    def delete_events_before(
        self, before: datetime, *, datasets: Collection[str] | None = None, keep_datasets: Collection[str] = ()
    ) -> int:
        """Delete whole daily indices whose day ended before ``before`` (by concrete name)."""
        indices = self._call(
            "list event indices",
            self.client.indices.get,
            index=self.events_pattern,
            allow_no_indices=True,
        )
        cutoff = before.strftime("%Y.%m.%d")
        only = None if datasets is None else {_index_safe(name) for name in datasets}
        kept = {_index_safe(name) for name in keep_datasets}
        start = len(f"{self.prefix}-events-")
        doomed = []
        for name in indices:
            # <prefix>-events-<tenant>-<dataset>-<day>: neither tenant nor dataset holds a '-'
            _tenant, dataset, day = name[start:].rsplit("-", 2)
            if day < cutoff and (only is None or dataset in only) and dataset not in kept:
                doomed.append(name)
        for name in doomed:
            self._call(f"delete index {name}", self.client.indices.delete, index=name)
        return len(doomed)

    # documents -----------------------------------------------------------------------------
    def _doc_index(self, kind: str) -> str:
        return f"{self.prefix}-docs-{check_kind(kind)}"

    @staticmethod
    def _version(response: Mapping[str, Any]) -> str:
        return f"{response['_seq_no']}:{response['_primary_term']}"

    @staticmethod
    def _body(source: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in source.items() if k != DOC_ID_FIELD}

    def _write_doc(
        self, what: str, kind: str, doc_id: str, body: Mapping[str, Any], *, refresh: bool = True, **kwargs: Any
    ) -> Doc:
        try:
            response = self.client.index(
                index=self._doc_index(kind),
                id=doc_id,
                document={**body, DOC_ID_FIELD: doc_id},
                refresh=refresh,
                **kwargs,
            )
        except ApiError as exc:
            if exc.meta.status == 409:
                raise Conflict(
                    f"{kind}/{doc_id} {what}: it changed since it was read or exists already",
                    hint="read it again and re-apply the change",
                ) from exc
            raise self._translate(what, exc) from exc
        except TransportError as exc:
            raise self._translate(what, exc) from exc
        return Doc(doc_id, self._version(response.body), dict(body))

    def create_doc(self, kind: str, body: Mapping[str, Any], *, doc_id: str | None = None, refresh: bool = True) -> Doc:
        from uuid import uuid4  # noqa: PLC0415 - only creates need it

        return self._write_doc("create", kind, doc_id or uuid4().hex, body, refresh=refresh, op_type="create")

    def get_doc(self, kind: str, doc_id: str) -> Doc:
        try:
            response = self.client.get(index=self._doc_index(kind), id=doc_id)
        except ApiError as exc:
            if exc.meta.status == 404:
                raise NotFound(f"no {kind} document {doc_id!r}") from exc
            raise self._translate("read a document", exc) from exc
        except TransportError as exc:
            raise self._translate("read a document", exc) from exc
        return Doc(doc_id, self._version(response.body), self._body(response["_source"]))

    def update_doc(self, kind: str, doc_id: str, body: Mapping[str, Any], *, version: str, refresh: bool = True) -> Doc:
        try:
            seq_no, primary_term = (int(part) for part in version.split(":"))
        except ValueError as exc:
            raise Conflict(f"{kind}/{doc_id}: version {version!r} is not one this store gave out") from exc
        try:  # a missing document is a 409 too (no create): a read then tells which it was
            return self._write_doc(
                "update", kind, doc_id, body, refresh=refresh, if_seq_no=seq_no, if_primary_term=primary_term
            )
        except Conflict:
            self.get_doc(kind, doc_id)  # NotFound when it is gone
            raise

    def put_doc(self, kind: str, doc_id: str, body: Mapping[str, Any]) -> Doc:
        return self._write_doc("save", kind, doc_id, body)

    def write_docs(self, kind: str, writes: Sequence[DocWrite], *, refresh: bool = True) -> list[Doc | Conflict]:
        """One bulk request (``create``, or ``index`` with ``if_seq_no``/``if_primary_term``) and
        one refresh for all of them (none with ``refresh=False``)."""
        index = self._doc_index(kind)
        done: list[Doc | Conflict | None] = [None] * len(writes)
        operations: list[Mapping[str, Any]] = []
        sent: list[int] = []
        for position, write in enumerate(writes):
            action: dict[str, Any] = {"_index": index, "_id": write.doc_id}
            if write.version is not None:
                try:
                    action["if_seq_no"], action["if_primary_term"] = (int(part) for part in write.version.split(":"))
                except ValueError:
                    done[position] = Conflict(
                        f"{kind}/{write.doc_id}: version {write.version!r} is not one this store gave out"
                    )
                    continue
            operations += [
                {"create" if write.version is None else "index": action},
                {**write.body, DOC_ID_FIELD: write.doc_id},
            ]
            sent.append(position)
        if sent:
            response = self._call(f"write {kind} documents", self.client.bulk, operations=operations, refresh=refresh)
            for position, item in zip(sent, response["items"], strict=True):
                write, answer = writes[position], next(iter(item.values()))
                status = int(answer.get("status", 0))
                if status in (200, 201):
                    done[position] = Doc(write.doc_id, self._version(answer), dict(write.body))
                elif status == 409:
                    done[position] = Conflict(
                        f"{kind}/{write.doc_id}: it changed since it was read, is gone, or exists already",
                        hint="read it again and re-apply the change",
                    )
                else:
                    error = answer.get("error") or {}
                    raise StoreError(
                        f"Elasticsearch could not write {kind}/{write.doc_id}: {status} {error.get('type', '')}: "
                        f"{error.get('reason', '')}",
                        where=self.url,
                    )
        return [result for result in done if result is not None]

    def delete_doc(self, kind: str, doc_id: str) -> None:
        try:
            self.client.delete(index=self._doc_index(kind), id=doc_id, refresh=True)
        except ApiError as exc:
            if exc.meta.status != 404:
                raise self._translate("delete a document", exc) from exc
        except TransportError as exc:
            raise self._translate("delete a document", exc) from exc

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
        clauses: list[dict[str, Any]] = []
        if tenants is not None:
            clauses.append({"terms": {"tenant": list(tenants)}})
        for key, wanted in (filters or {}).items():
            values = list(wanted) if isinstance(wanted, list | tuple | set) else [wanted]
            clauses.append({"terms": {check_field_name(key): values}})
        order = "desc" if descending else "asc"
        kwargs: dict[str, Any] = {}
        if cursor:
            kwargs["search_after"] = decode_cursor(cursor)
        body = self._search(
            f"list {kind}",
            index=self._doc_index(kind),
            query={"bool": {"filter": clauses}},
            sort=[
                {
                    check_field_name(sort): {
                        "order": order,
                        "unmapped_type": "keyword",
                        "missing": "_last",
                    }
                },
                {DOC_ID_FIELD: {"order": order}},
            ],
            size=size + 1,
            seq_no_primary_term=True,
            track_total_hits=False,
            **kwargs,
        )
        hits = body["hits"]["hits"]
        items = [Doc(hit["_id"], self._version(hit), self._body(hit["_source"])) for hit in hits[:size]]
        next_cursor = encode_cursor(hits[size - 1]["sort"]) if len(hits) > size else None
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
        """One search of size 0: ``filters`` and ``stats`` aggregations, under a ``terms``
        aggregation on ``by`` when grouped (documents indices have one shard: exact counts)."""
        filters = dict(filters or {})
        paths = {name: field_path(f) for name, f in (stats or {}).items()}
        clauses: list[dict[str, Any]] = [_doc_condition(condition) for condition in query.where]
        if query.tenants is not None:
            clauses.append({"terms": {"tenant": list(query.tenants)}})
        metrics: dict[str, Any] = {}
        if filters:
            metrics["named"] = {"filters": {"filters": {name: _doc_condition(c) for name, c in filters.items()}}}
        for number, path in enumerate(paths.values()):
            metrics[f"stats{number}"] = {"stats": {"field": ".".join(path)}}
        search: dict[str, Any] = {
            "index": self._doc_index(query.kind),
            "query": {"bool": {"filter": clauses}},
            "size": 0,
        }
        if by is None:
            search["track_total_hits"] = True
            search["aggs"] = metrics
        else:
            terms: dict[str, Any] = {
                "field": ".".join(field_path(by)),
                "size": max(1, min(limit, MAX_GROUPS)),
                "order": [{"_count": "desc"}, {"_key": "asc"}],
            }
            if prefix is not None:
                terms["include"] = _lucene_literal(prefix) + ".*"
            search["track_total_hits"] = False
            search["aggs"] = {"groups": {"terms": terms, **({"aggs": metrics} if metrics else {})}}
        body = self._search(f"count {query.kind}", **search)
        aggregations = body.get("aggregations") or {}  # absent when no index of the kind exists yet

        def group(key: str, count: int, found: Mapping[str, Any]) -> DocGroup:
            named = (found.get("named") or {}).get("buckets") or {}
            field_stats = {}
            for number, name in enumerate(paths):
                values = found.get(f"stats{number}") or {}
                field_stats[name] = FieldStats(
                    int(values.get("count") or 0), float(values.get("sum") or 0.0), values.get("min"), values.get("max")
                )
            counts = {name: int((named.get(name) or {}).get("doc_count", 0)) for name in filters}
            return DocGroup(key, count, counts, field_stats)

        if by is None:
            return [group("total", int(body["hits"]["total"]["value"]), aggregations)]
        return [
            group(str(bucket.get("key_as_string", bucket["key"])), int(bucket["doc_count"]), bucket)
            for bucket in (aggregations.get("groups") or {}).get("buckets", [])
        ]


__all__ = ["ElasticsearchStore", "docs_template", "event_index", "events_template", "index_refused"]
