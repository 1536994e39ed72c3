"""Tenant-scoped aggregations over workflow documents (alerts, cases, runs, …).

Reports and dashboards count documents by the store, never by reading each one:
:meth:`Store.aggregate_docs` takes a :class:`DocQuery` (one kind, the caller's tenants, a few
conditions) and answers groups with their counts, named filter counts and numeric field
statistics — SQL on SQLite, aggregations on Elasticsearch, the same numbers on both.

Build queries with :func:`doc_query`, the documents' counterpart of
:func:`soc_core.query.event_query`: it always carries the tenant filter, and ``tenants=None``
(province-wide) must be asked for.

Fields are top-level keys of the document (``"rule.level"`` is one key, dots and all), or a
path into a nested object as a tuple (``("entities", "source.ip")``). Conditions compare values
as they are stored: timestamps are ISO 8601 text in UTC with milliseconds and a ``Z`` (the one
form :func:`soc_core.events.format_timestamp` writes), so text ranges over them are time ranges
on both stores; numbers compare as numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from soc_core.errors import InvalidInput
from soc_core.store.fields import check_field_name

FieldPath = tuple[str, ...]
Scalar = str | int | float | bool


def field_path(name: str | Sequence[str]) -> FieldPath:
    """A field as a path of keys, each checked like an event field name."""
    parts = (name,) if isinstance(name, str) else tuple(name)
    if not parts:
        raise InvalidInput("empty document field path")
    return tuple(check_field_name(part) for part in parts)


@dataclass(frozen=True)
class Term:
    """The field (or any element of a list field) equals one of ``values``."""

    field: FieldPath
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class Range:
    """``gte <= field < lt`` (either bound may be left out); text or numbers, as stored."""

    field: FieldPath
    gte: str | float | None = None
    lt: str | float | None = None
    gt: str | float | None = None


@dataclass(frozen=True)
class Exists:
    """The field holds a value (not missing, not null)."""

    field: FieldPath


@dataclass(frozen=True)
class Not:
    condition: Condition


@dataclass(frozen=True)
class AllOf:
    conditions: tuple[Condition, ...]


Condition = Term | Range | Exists | Not | AllOf


def term(name: str | Sequence[str], *values: Scalar) -> Term:
    if not values:
        raise InvalidInput(f"a term on {name!r} needs at least one value")
    return Term(field_path(name), values)


def between(
    name: str | Sequence[str],
    *,
    gte: str | float | None = None,
    lt: str | float | None = None,
    gt: str | float | None = None,
) -> Range:
    if gte is not None and gt is not None:
        raise InvalidInput(f"a range on {name!r} takes gte or gt, not both")
    return Range(field_path(name), gte, lt, gt)


def exists(name: str | Sequence[str]) -> Exists:
    return Exists(field_path(name))


def missing(name: str | Sequence[str]) -> Not:
    return Not(exists(name))


def all_of(*conditions: Condition) -> AllOf:
    return AllOf(tuple(conditions))


@dataclass(frozen=True)
class DocQuery:
    """Documents of one kind, of ``tenants`` (None: province-wide), meeting every condition."""

    kind: str
    tenants: tuple[str, ...] | None
    where: tuple[Condition, ...] = ()


def doc_query(
    kind: str,
    *,
    tenants: Iterable[str] | None,
    province_wide: bool = False,
    where: Iterable[Condition] = (),
) -> DocQuery:
    """The only constructor of document queries: ``tenants=None`` needs ``province_wide=True``,
    and an empty tenant list is refused rather than read as "everything"."""
    if tenants is None:
        if not province_wide:
            raise InvalidInput("a document query needs the caller's tenants")
        scoped: tuple[str, ...] | None = None
    else:
        scoped = tuple(sorted(set(tenants)))
        if not scoped:
            raise InvalidInput("the caller belongs to no tenant", hint="add a membership first")
    return DocQuery(kind, scoped, tuple(where))


@dataclass(frozen=True)
class FieldStats:
    """A numeric field over a group: how many documents hold it, their sum, min and max."""

    count: int = 0
    total: float = 0.0
    low: float | None = None
    high: float | None = None

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


@dataclass(frozen=True)
class DocGroup:
    """One group of :meth:`Store.aggregate_docs`: its key (``"total"`` when not grouped), the
    documents in it, how many of them meet each named filter, and each numeric field's stats."""

    key: str
    count: int
    filters: dict[str, int] = field(default_factory=dict)
    stats: dict[str, FieldStats] = field(default_factory=dict)


MAX_GROUPS = 1000  # groups one aggregation may ask for


__all__ = [
    "MAX_GROUPS",
    "AllOf",
    "Condition",
    "DocGroup",
    "DocQuery",
    "Exists",
    "FieldPath",
    "FieldStats",
    "Not",
    "Range",
    "Scalar",
    "Term",
    "all_of",
    "between",
    "doc_query",
    "exists",
    "field_path",
    "missing",
    "term",
]
