"""Backtest a rule over stored history with its compiled store query (DESIGN.md §5, lifecycle).

:func:`store_hits` runs a detection rule in the store (:meth:`Store.rule_query_pages` with the
rule as a :class:`~detections.targets.query.StoreRuleQuery`: SQL on SQLite, DSL on
Elasticsearch), restricted by log-source routing exactly as the streaming engine restricts it.
:func:`backtest` answers "what would this rule have raised?": its hits per day over a time
range. :func:`backtest_change` runs the current and a changed version over the same range and
reports which event ids the change adds and removes.

A correlation rule backtests through the engine's own code: the hits of each detection rule it
references (directly or through chained correlations) are read from the store with the rule
queries, merged oldest first, and fed to a :class:`~detections.evaluation.Evaluator`, whose
sliding windows and alert grouping are those of the streaming engine. Its "hits" are the alerts
it would have raised (:func:`backtest_correlation`).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sigma.rule import SigmaRule

from soc_core.errors import RuleError
from soc_core.events import TENANT_FIELD, format_timestamp, utcnow
from soc_core.store.base import Store

from .alerts import DEFAULT_WINDOW, ENTITY_FIELDS, TRIGGER_FIELDS, group_detections
from .correlation import DISTINCT_FIELDS
from .evaluation import CompiledRule, Evaluator, compile_ruleset
from .loader import LoadedRule, RuleSet, rule_key
from .routing import ROUTING_FIELDS, LogSource, event_logsources
from .targets.query import StoreRuleQuery

DEFAULT_LIMIT = 10_000


@dataclass(frozen=True)
class Hit:
    """One event a rule query returned."""

    id: str
    timestamp: str


def routes_to(logsource: LogSource, event: Mapping[str, Any]) -> bool:
    """True when the streaming engine would test a rule of ``logsource`` on ``event``."""
    product, category, service = logsource
    return any(
        (product is None or product == p) and (category is None or category == c) and (service is None or service == s)
        for p, c, s in event_logsources(event)
    )


def _logsource(loaded: LoadedRule) -> LogSource:
    rule = loaded.rule
    assert isinstance(rule, SigmaRule)
    source = rule.logsource
    return (source.product, source.category, source.service)


def store_hits(
    store: Store,
    loaded: LoadedRule,
    *,
    tenants: tuple[str, ...] | None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
    routed: bool = True,
) -> list[Hit]:
    """The events of ``tenants`` (``None``: every tenant) in ``[start, end)`` the rule matches.

    The rule's condition runs in the store; with ``routed`` the hits are also restricted, as in
    the streaming engine, to events the rule's log source routes to. At most ``limit`` hits,
    ordered by ``@timestamp`` then id.
    """
    hits: list[Hit] = []
    for event in rule_events(store, loaded, tenants=tenants, start=start, end=end, routed=routed):
        hits.append(Hit(str(event["event.id"]), str(event.get("@timestamp"))))
        if len(hits) >= limit:
            return hits
    return hits


def rule_events(
    store: Store,
    loaded: LoadedRule,
    *,
    tenants: tuple[str, ...] | None,
    start: datetime | None = None,
    end: datetime | None = None,
    routed: bool = True,
    fields: Sequence[str] = (),
) -> Iterator[Mapping[str, Any]]:
    """The events :func:`store_hits` counts, oldest first, with ``fields`` besides the
    timestamp, id and routing fields."""
    logsource = _logsource(loaded)
    pages = store.rule_query_pages(
        StoreRuleQuery(loaded),
        tenants=tenants,
        start=start,
        end=end,
        fields=tuple(dict.fromkeys(("@timestamp", "event.id", *ROUTING_FIELDS, *fields))),
    )
    for page in pages:
        for event in page:
            if not routed or routes_to(logsource, event):
                yield event


@dataclass
class BacktestResult:
    """Hits of one rule version; ``truncated`` when ``limit`` cut the list short."""

    rule_id: str
    version: str
    hits: list[Hit] = field(default_factory=list)
    truncated: bool = False

    @property
    def total(self) -> int:
        return len(self.hits)

    @property
    def per_day(self) -> dict[str, int]:
        """Hits by UTC day (``YYYY-MM-DD``), oldest day first."""
        return dict(sorted(Counter(hit.timestamp[:10] for hit in self.hits).items()))

    @property
    def event_ids(self) -> list[str]:
        return [hit.id for hit in self.hits]


@dataclass
class BacktestDiff:
    """A changed rule against the current one over the same events."""

    current: BacktestResult
    candidate: BacktestResult
    added: list[str]
    removed: list[str]

    @property
    def truncated(self) -> bool:
        return self.current.truncated or self.candidate.truncated


def backtest(
    store: Store,
    loaded: LoadedRule,
    *,
    tenants: tuple[str, ...] | None,
    scope: Sequence[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
) -> BacktestResult:
    """The rule's hits among stored events of ``tenants`` in ``[start, end)``.

    ``scope`` is the rule's own tenant scope (a custom rule's): as in the streaming engine, the
    rule never looks at other agencies' events, whoever asks. Raises
    :class:`~soc_core.errors.RuleError` (naming the rule file) if the rule cannot run as a
    query on this store.
    """
    wanted = scoped_tenants(tenants, scope)
    if wanted == ():
        return BacktestResult(loaded.id, loaded.version)
    hits = store_hits(store, loaded, tenants=wanted, start=start, end=end, limit=limit + 1)
    return BacktestResult(loaded.id, loaded.version, hits[:limit], truncated=len(hits) > limit)


def backtest_change(
    store: Store,
    current: LoadedRule,
    candidate: LoadedRule,
    *,
    tenants: tuple[str, ...] | None,
    scope: Sequence[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
) -> BacktestDiff:
    """Both versions over the same range (and the rule's ``scope``); ids the candidate adds and
    removes, oldest first."""
    before = backtest(store, current, tenants=tenants, scope=scope, start=start, end=end, limit=limit)
    after = backtest(store, candidate, tenants=tenants, scope=scope, start=start, end=end, limit=limit)
    old, new = set(before.event_ids), set(after.event_ids)
    return BacktestDiff(
        current=before,
        candidate=after,
        added=[i for i in after.event_ids if i not in old],
        removed=[i for i in before.event_ids if i not in new],
    )


@dataclass
class CorrelationBacktest(BacktestResult):
    """A correlation rule's backtest: its hits are the alerts it would have raised (id and first
    event time), ``alerts`` those alerts as the engine writes them."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    events: int = 0  # base-rule hits fed to the windows


def backtest_correlation(
    store: Store,
    ruleset: RuleSet,
    loaded: LoadedRule,
    *,
    tenants: tuple[str, ...] | None,
    scope: Sequence[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
    suppression: timedelta = DEFAULT_WINDOW,
) -> CorrelationBacktest:
    """The alerts a correlation rule would have raised over stored events of ``tenants`` in
    ``[start, end)``, with the streaming engine's windows and alert grouping.

    Reads at most ``limit`` hits of each referenced detection rule (``truncated`` says when a
    rule had more). Events are fed in ``@timestamp`` order; the engine sees them in the order
    they were stored, which gives the same alerts unless events arrive later than the windows
    they belong to.
    """
    result = CorrelationBacktest(loaded.id, loaded.version)
    wanted = scoped_tenants(tenants, scope)
    if wanted == ():
        return result
    subset = RuleSet(rules={loaded.id: loaded})
    referencing = [loaded]
    while referencing:  # the rules it references, through chained correlations too
        for ref in getattr(referencing.pop().rule, "referenced_rules", []):
            found = ruleset.rules.get(rule_key(ref.rule))
            if found is not None and found.id not in subset.rules:
                subset.rules[found.id] = found
                referencing.append(found)
    compiled = compile_ruleset(subset, only_enabled=False)
    if compiled.errors:
        raise compiled.errors[0]
    if loaded.id not in compiled.correlation_meta:
        raise RuleError("backtests run detection and correlation rules", where=loaded.where)
    needed = {TENANT_FIELD, *ENTITY_FIELDS, *DISTINCT_FIELDS, *TRIGGER_FIELDS}
    for spec in compiled.correlations:
        needed.update(spec.field_for(name, base) for name in spec.group_by for base in spec.rule_ids)
        if spec.value_field is not None:
            needed.update(spec.field_for(spec.value_field, base) for base in spec.rule_ids)
    streams = []
    for position, rule in enumerate(compiled.rules):
        events = list(
            _capped(
                rule_events(store, rule.loaded, tenants=wanted, start=start, end=end, fields=sorted(needed)),
                limit,
                result,
            )
        )
        result.events += len(events)
        streams.append([(_order(event), position, event) for event in events])
    matched: dict[tuple[str, str], tuple[Mapping[str, Any], list[CompiledRule]]] = {}
    for _, position, event in heapq.merge(*streams, key=lambda entry: (entry[0], entry[1])):
        key = (str(event.get(TENANT_FIELD)), str(event.get("event.id")))
        matched.setdefault(key, (event, []))[1].append(compiled.rules[position])
    ordered = sorted(matched.values(), key=lambda pair: _order(pair[0]))
    # only the correlation raises alerts here: the base rules' own alerts are their backtests
    evaluator = Evaluator(compiled)
    detections = [d for d in evaluator.emit(ordered) if d.rule.id == loaded.id]
    by_key: dict[str, list[Any]] = {}
    for detection in detections:
        by_key.setdefault(detection.dedup_key, []).append(detection)
    now = format_timestamp(utcnow())
    for group in by_key.values():
        result.alerts.extend(group_detections(group, {}, window=suppression, now=now))
    result.alerts.sort(key=lambda alert: (str(alert["first_seen"]), str(alert["id"])))
    result.hits = [Hit(str(alert["id"]), str(alert["first_seen"])) for alert in result.alerts]
    return result


def _order(event: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(event.get("@timestamp", "")), str(event.get(TENANT_FIELD, "")), str(event.get("event.id", "")))


def _capped(events: Iterator[Mapping[str, Any]], limit: int, result: BacktestResult) -> Iterator[Mapping[str, Any]]:
    for count, event in enumerate(events):
        if count >= limit:
            result.truncated = True
            return
        yield event


def scoped_tenants(tenants: tuple[str, ...] | None, scope: Sequence[str] | None) -> tuple[str, ...] | None:
    """The caller's tenants (None: all) narrowed to a rule's scope (None: all); () = none."""
    if scope is None:
        return tenants
    if tenants is None:
        return tuple(sorted(set(scope)))
    return tuple(tenant for tenant in tenants if tenant in scope)


__all__ = [
    "DEFAULT_LIMIT",
    "BacktestDiff",
    "BacktestResult",
    "CorrelationBacktest",
    "Hit",
    "backtest",
    "backtest_change",
    "backtest_correlation",
    "routes_to",
    "rule_events",
    "scoped_tenants",
    "store_hits",
]
