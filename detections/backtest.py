"""Backtest a rule over stored history with its compiled store query (DESIGN.md §5, lifecycle).

:func:`backtest` answers "what would this rule have raised?": its hits per day over a time
range, from the rule's SQL (SQLite) or Elasticsearch query, restricted by log-source routing
exactly as the streaming engine restricts it. :func:`backtest_change` runs the current and a
changed version over the same range and reports which event ids the change adds and removes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from soc_core.store.base import Store

from .compiler import DEFAULT_LIMIT, Hit, store_hits
from .loader import LoadedRule


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


__all__ = ["BacktestDiff", "BacktestResult", "backtest", "backtest_change", "scoped_tenants"]
