"""Backtest a rule over stored history with its compiled store query (DESIGN.md §5, lifecycle).

:func:`store_hits` runs a detection rule in the store (:meth:`Store.rule_query_pages` with the
rule as a :class:`~detections.targets.query.StoreRuleQuery`: SQL on SQLite, DSL on
Elasticsearch), restricted by log-source routing exactly as the streaming engine restricts it.
:func:`backtest` answers "what would this rule have raised?": its hits per day over a time
range. :func:`backtest_change` runs the current and a changed version over the same range and
reports which event ids the change adds and removes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sigma.rule import SigmaRule

from soc_core.store.base import Store

from .loader import LoadedRule
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
    logsource = _logsource(loaded)
    hits: list[Hit] = []
    pages = store.rule_query_pages(
        StoreRuleQuery(loaded),
        tenants=tenants,
        start=start,
        end=end,
        fields=("@timestamp", "event.id", *ROUTING_FIELDS),
    )
    for page in pages:
        for event in page:
            if not routed or routes_to(logsource, event):
                hits.append(Hit(str(event["event.id"]), str(event.get("@timestamp"))))
                if len(hits) >= limit:
                    return hits
    return hits


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
    "Hit",
    "backtest",
    "backtest_change",
    "routes_to",
    "scoped_tenants",
    "store_hits",
]
