"""The one query builder: a small Lucene-like query language, and tenant-scoped event queries.

Hunters type queries like ``user.name:root AND source.ip:10.0.0.0/8 -event.outcome:success``
or free words (``failed password``). :func:`parse_query` turns the text (parsed by luqum) into
a small tree of plain dataclasses that every store compiles to its own language, so both
stores answer the same query the same way:

* ``field:value`` — equal, case-insensitive for strings; a list-valued field matches if any
  element does; ``*`` and ``?`` are wildcards; an IP field also takes a CIDR block;
* ``field:"a phrase"`` — equal to the phrase (no wildcards);
* ``field:[a TO b]``, ``field:>a`` … — ranges (numbers, dates, strings);
* ``field:*`` — the field exists;
* a bare word or phrase — words in ``message`` (full-text);
* ``AND``, ``OR``, ``NOT``, ``-``/``+``, parentheses; juxtaposition means AND.

Expensive shapes are refused up front (leading wildcards, too many clauses, over-long text).
:func:`event_query` is the only way the API and reports build an
:class:`~soc_core.store.base.EventQuery`, so a tenant filter is always present.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from luqum import tree
from luqum.exceptions import ParseError as LuqumParseError
from luqum.parser import parser as luqum_parser

from soc_core.casefolding import Wildcard
from soc_core.errors import InvalidInput

MAX_QUERY_LENGTH = 2000
MAX_CLAUSES = 64
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class EventQuery:
    """A tenant-scoped event search. Build it with :func:`event_query`."""

    tenants: tuple[str, ...] | None
    query: str = ""
    start: datetime | None = None
    end: datetime | None = None
    size: int = 100
    cursor: str | None = None
    ascending: bool = False


class QueryError(InvalidInput):
    """A hunt query that cannot be run as written."""


@dataclass(frozen=True)
class FieldEquals:
    field: str
    value: str
    wildcard: bool = False

    def parts(self) -> list[str | Wildcard]:
        """A wildcard value as literal texts and wildcards (``\\`` escapes resolved)."""
        parts: list[str | Wildcard] = []
        literal: list[str] = []
        escaped = False
        for char in self.value:
            if not escaped and char in "*?":
                if literal:
                    parts.append("".join(literal))
                    literal = []
                parts.append(Wildcard.ANY_RUN if char == "*" else Wildcard.ANY_ONE)
            elif not escaped and char == "\\":
                escaped = True
                continue
            else:
                literal.append(char)
            escaped = False
        if literal:
            parts.append("".join(literal))
        return parts


@dataclass(frozen=True)
class FieldExists:
    field: str


@dataclass(frozen=True)
class FieldRange:
    field: str
    low: str | None
    high: str | None
    include_low: bool = True
    include_high: bool = True


@dataclass(frozen=True)
class Text:
    """Words (or a phrase) in the event's ``message``."""

    value: str


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class MatchAll:
    pass


Node = FieldEquals | FieldExists | FieldRange | Text | And | Or | Not | MatchAll


def parse_query(text: str) -> Node:
    """Parse a hunt query; raises :class:`QueryError` saying what is wrong and where."""
    text = text.strip()
    if not text or text == "*":
        return MatchAll()
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryError(f"query is {len(text)} characters long", hint=f"keep it under {MAX_QUERY_LENGTH}")
    try:
        parsed = luqum_parser.parse(text)
    except (LuqumParseError, ValueError, TypeError) as exc:
        raise QueryError(f"cannot parse query: {exc}", hint="check quotes, brackets and AND/OR/NOT") from exc
    node = _convert(parsed, field=None)
    clauses = sum(1 for _ in _leaves(node))
    if clauses > MAX_CLAUSES:
        raise QueryError(f"query has {clauses} clauses", hint=f"use at most {MAX_CLAUSES}")
    return node


def _leaves(node: Node) -> Iterable[Node]:
    if isinstance(node, And | Or):
        for child in node.children:
            yield from _leaves(child)
    elif isinstance(node, Not):
        yield from _leaves(node.child)
    else:
        yield node


def _unquote(phrase: str) -> str:
    if len(phrase) >= 2 and phrase[0] == phrase[-1] == '"':
        phrase = phrase[1:-1]
    return phrase.replace('\\"', '"')


def _unescape(word: str) -> str:
    out = []
    escaped = False
    for char in word:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            out.append(char)
    return "".join(out)


def _convert(item: tree.Item, *, field: str | None) -> Node:
    if isinstance(item, tree.SearchField):
        if field is not None:
            raise QueryError(f"nested field {item.name!r} inside field {field!r}")
        return _convert(item.expr, field=item.name)
    if isinstance(item, tree.Group | tree.FieldGroup):
        return _convert(item.expr, field=field)
    if isinstance(item, tree.AndOperation | tree.UnknownOperation):
        return _combine_and([_convert(child, field=field) for child in item.children])
    if isinstance(item, tree.OrOperation):
        return Or(tuple(_convert(child, field=field) for child in item.children))
    if isinstance(item, tree.Not | tree.Prohibit):
        return Not(_convert(item.a, field=field))
    if isinstance(item, tree.Plus):
        return _convert(item.a, field=field)
    if isinstance(item, tree.Phrase):
        value = _unquote(item.value)
        return Text(value) if field is None else FieldEquals(field, value)
    if isinstance(item, tree.Word):
        return _word(item.value, field)
    if isinstance(item, tree.Range):
        return _range(field, _bound(item.low), _bound(item.high), item.include_low, item.include_high)
    if isinstance(item, tree.From):
        return _range(field, _bound(item.a), None, item.include, True)
    if isinstance(item, tree.To):
        return _range(field, None, _bound(item.a), True, item.include)
    raise QueryError(
        f"unsupported query syntax {type(item).__name__} near {str(item)!r}",
        hint="use field:value, quotes, ranges, AND/OR/NOT",
    )


def _combine_and(children: list[Node]) -> Node:
    return children[0] if len(children) == 1 else And(tuple(children))


def _word(raw: str, field: str | None) -> Node:
    if field is None:
        if "*" in raw or "?" in raw:
            raise QueryError(f"wildcard {raw!r} without a field", hint="write field:value* instead")
        return Text(_unescape(raw))
    if raw == "*":
        return FieldExists(field)
    wildcard = any(c in raw for c in "*?") and "\\*" not in raw and "\\?" not in raw
    if wildcard and raw[0] in "*?":
        raise QueryError(
            f"leading wildcard in {field}:{raw}",
            hint="leading wildcards scan every value; anchor the start of the value",
        )
    return FieldEquals(field, raw if wildcard else _unescape(raw), wildcard=wildcard)


def _bound(item: tree.Item) -> str:
    """A range bound as luqum gives it; ``[-5 TO 10]`` arrives as ``Prohibit(Word('5'))``."""
    if isinstance(item, tree.Prohibit) and isinstance(item.a, tree.Word):
        return "-" + str(item.a.value)
    if isinstance(item, tree.Word | tree.Phrase):
        return str(item.value)
    raise QueryError(f"unsupported range bound {str(item)!r}", hint="bounds are single values, e.g. [1 TO 1024]")


def _range(field: str | None, low: str | None, high: str | None, inc_low: bool, inc_high: bool) -> Node:
    if field is None:
        raise QueryError("a range needs a field, e.g. source.port:[1 TO 1024]")
    low_v = None if low in ("*", None) else _unquote(low)
    high_v = None if high in ("*", None) else _unquote(high)
    return FieldRange(field, low_v, high_v, inc_low, inc_high)


def event_query(
    *,
    tenants: Iterable[str] | None,
    province_wide: bool = False,
    query: str = "",
    start: datetime | None = None,
    end: datetime | None = None,
    size: int = 100,
    cursor: str | None = None,
    ascending: bool = False,
) -> EventQuery:
    """The only constructor of tenant-scoped event queries.

    ``tenants=None`` is accepted only with ``province_wide=True`` (the provincial SOC's view);
    an empty tenant list is refused rather than read as "everything".
    """
    if tenants is None:
        if not province_wide:
            raise QueryError("an event query needs the caller's tenants")
        scoped: tuple[str, ...] | None = None
    else:
        scoped = tuple(sorted(set(tenants)))
        if not scoped:
            raise QueryError("the caller belongs to no tenant", hint="add a membership first")
    parse_query(query)  # fail early with a clear message
    if start and end and start > end:
        raise QueryError("the time range starts after it ends")
    return EventQuery(
        tenants=scoped,
        query=query,
        start=start,
        end=end,
        size=max(1, min(size, MAX_PAGE_SIZE)),
        cursor=cursor,
        ascending=ascending,
    )


__all__ = [
    "MAX_PAGE_SIZE",
    "And",
    "EventQuery",
    "FieldEquals",
    "FieldExists",
    "FieldRange",
    "MatchAll",
    "Node",
    "Not",
    "Or",
    "QueryError",
    "Text",
    "event_query",
    "parse_query",
]
