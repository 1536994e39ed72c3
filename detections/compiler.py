"""Compile a parsed Sigma detection rule into store queries: Elasticsearch DSL and SQLite SQL.

The streaming engine evaluates rules in process (:mod:`detections.matcher`); backtests and hunts
run the same rules as store queries. All three targets walk the same pySigma condition tree and
must return the same hits for the same events (``tests/detections/test_differential.py``).

Why not the pySigma backends' output as it is
    ``LuceneBackend`` (``dsl_lucene``) emits one ``query_string``: its wildcards on our
    ``keyword`` fields are case-sensitive and its regexes anchored, and ``sqliteBackend`` reads
    columns named like the Sigma fields with ``LIKE`` (ASCII-only case folding). Both would
    disagree with the matcher, so this module builds the DSL and the SQL itself from the
    condition tree, value by value, following the matcher's semantics.

Elasticsearch (:func:`compile_es`)
    Strings: ``term``/``wildcard`` with ``case_insensitive`` (unless ``|cased``) on keyword
    fields, or a ``regexp`` spelling out every case and composition of a non-ASCII value, since
    ``case_insensitive`` folds ASCII only (:mod:`soc_core.casefolding`); ``text`` fields
    (``message``) are matched on their ``.keyword`` sub-field, whole value like the matcher.
    Regexes are translated from RE2 syntax to Lucene syntax and wrapped in ``.*….*`` because
    Lucene regexes are anchored and the matcher searches (a ``^``/``$`` at the edges drops the
    wrapper on that side). Numbers, ``|cidr``, comparisons and string
    values are compiled per field type (the live mapping when the store is at hand, ECS types
    otherwise), e.g. ``|cidr`` on a keyword field becomes a regex over dotted quads and
    ``|startswith: '10.'`` on an ``ip`` field becomes address ranges.

SQLite (:func:`compile_sql`)
    A ``WHERE`` fragment over table ``events``; every field value is read with
    ``json_each(events.doc, '$."field"')`` so list-valued fields match on any element. Value
    tests call the store's value functions (:mod:`soc_core.store.sqlite_functions`: case
    folding, number parsing, CIDR, shared with hunts) and the rule-only ones of
    :func:`register_sql_functions` (added to the store's connections by :func:`rule_hits`):
    ``REGEXP`` (RE2, unanchored), timestamp parts, field references.

Known differences, by design of the Elasticsearch mapping (tested in test_differential.py):
    * keywords (values without a field) search ``message`` and ``event.original`` in the matcher
      and in SQL; ``event.original`` is stored unindexed in Elasticsearch, so there they search
      ``message`` only;
    * a number compared with a keyword field matches its canonical spellings (``4624``,
      ``4624.0``) in Elasticsearch; the matcher and SQL also accept ``04624`` or `` 4624``;
    * Elasticsearch does not index values that do not fit the field's type (``ignore_malformed``)
      nor strings longer than 8,191 characters (``ignore_above``), so those never match there.
    Constructs a target cannot express (``|fieldref``, timestamp parts, regexes with ``\b`` or
    anchors inside, wildcards on numeric fields … in Elasticsearch) raise
    :class:`UnsupportedConstruct` naming the rule file and the construct. A regex RE2 refuses
    never gets this far (:mod:`detections.regex`).
"""

from __future__ import annotations

import importlib
import ipaddress
import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from elastic_transport import TransportError
from elasticsearch import ApiError
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
    TimestampPart,
)

from soc_core.casefolding import Wildcard, fold, lucene_pattern, needs_pattern
from soc_core.errors import RuleError, SocError, StoreError
from soc_core.events import check_tenant_id, format_timestamp, parse_timestamp
from soc_core.store.base import Store
from soc_core.store.fields import NUMERIC_TYPES, check_field_name, field_type
from soc_core.store.sqlite_functions import glob_literal

from .evaluation import process_rule
from .loader import LoadedRule
from .matcher import KEYWORD_FIELDS, ConditionWalk, UnsupportedConstruct
from .regex import compile_regex
from .routing import ROUTING_FIELDS, LogSource, event_logsources

# pySigma parses Sigma; the regex parser of the standard library parses regexes (RE2's syntax is
# a subset of it for everything we translate). Loaded by name: it is an internal module.
_sre: Any = importlib.import_module("re._parser")
_sre_c: Any = importlib.import_module("re._constants")

DslQuery = dict[str, Any]
FieldTypes = Callable[[str], str]
Q = TypeVar("Q")  # what a compiler target builds: an SQL fragment, an Elasticsearch query

MATCH_NONE: DslQuery = {"match_none": {}}
DEFAULT_LIMIT = 10_000
PAGE_SIZE = 1_000
ES_KEYWORD_FIELD = "message"  # event.original is not indexed in Elasticsearch
_STAR = SpecialChars.WILDCARD_MULTI
_QMARK = SpecialChars.WILDCARD_SINGLE


# shared helpers ------------------------------------------------------------------------------
def _conditions(rule: SigmaRule, where: str) -> list[object]:
    trees: list[object] = []
    for condition in rule.detection.parsed_condition:
        try:
            trees.append(condition.parse())
        except SigmaError as exc:
            raise RuleError(f"condition {condition.condition!r}: {exc}", where=where) from exc
    return trees


def _contains(value: SigmaString) -> SigmaString:
    if not value.startswith(_STAR):
        value = _STAR + value
    if not value.endswith(_STAR):
        value = value + _STAR
    return value


def _keyword_value(value: object, unsupported: Callable[[str], UnsupportedConstruct]) -> object:
    """A keyword (value without a field) as the matcher reads it: a substring, or a regex."""
    if isinstance(value, SigmaString):
        return _contains(value)
    if isinstance(value, SigmaNumber | SigmaBool):
        return _contains(SigmaString(str(value)))
    if isinstance(value, SigmaRegularExpression):
        return value
    raise unsupported(f"keyword value of type {type(value).__name__}")


def _parts(value: SigmaString, unsupported: Callable[[str], UnsupportedConstruct]) -> list[Any]:
    parts = list(value.iter_parts())
    for part in parts:
        if isinstance(part, Placeholder):
            raise unsupported(f"unresolved placeholder %{part.name}% (|expand) — no pipeline defines it")
    return parts


def _regex_pattern(value: SigmaRegularExpression, unsupported: Callable[[str], UnsupportedConstruct]) -> str:
    """The pattern exactly as the matcher compiles it (inline flags in front)."""
    if value.regexp.contains_placeholder():
        raise unsupported("unresolved placeholder in regular expression (|expand)")
    prefix = "".join(
        flag
        for sigma_flag, flag in (
            (SigmaRegularExpressionFlag.IGNORECASE, "i"),
            (SigmaRegularExpressionFlag.MULTILINE, "m"),
            (SigmaRegularExpressionFlag.DOTALL, "s"),
        )
        if sigma_flag in value.flags
    )
    pattern = str(value.regexp)
    return f"(?{prefix}){pattern}" if prefix else pattern


def _field_name(name: str, unsupported: Callable[[str], UnsupportedConstruct]) -> str:
    try:
        return check_field_name(name)
    except SocError:
        raise unsupported(f"field name {name!r} (not a dotted field name a store can query)") from None


class _Target(ConditionWalk[Q]):
    """A query target of the condition walk; a target builds its own ``Q``."""

    def __init__(self, where: str, target: str) -> None:
        super().__init__(where)
        self.target = target

    def unsupported(self, construct: str) -> UnsupportedConstruct:
        return UnsupportedConstruct(
            f"unsupported construct for {self.target}: {construct}",
            where=self.where,
            hint="rewrite the rule without it, or add support in detections/compiler.py",
        )

    def keyword(self, value: object) -> Q:
        if isinstance(value, SigmaExpansion):
            return self.any_of([self.keyword(inner) for inner in value.values])
        return self.keyword_value(_keyword_value(value, self.unsupported))

    def keyword_value(self, value: object) -> Q:
        """A keyword (a value without a field name), already checked by ``_keyword_value``."""
        raise NotImplementedError


# SQLite ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SqlQuery:
    """A ``WHERE`` fragment over table ``events`` and its parameters."""

    where: str
    params: tuple[Any, ...]


_TS_PARTS: dict[str, Callable[[datetime], int]] = {
    TimestampPart.MINUTE.name: lambda moment: moment.minute,
    TimestampPart.HOUR.name: lambda moment: moment.hour,
    TimestampPart.DAY.name: lambda moment: moment.day,
    TimestampPart.WEEK.name: lambda moment: moment.isocalendar().week,
    TimestampPart.MONTH.name: lambda moment: moment.month,
    TimestampPart.YEAR.name: lambda moment: moment.year,
}


def _sql_ts_part(kind: str | None, value: Any, part: str) -> int | None:
    if kind != "text":
        return None
    try:
        return _TS_PARTS[part](parse_timestamp(str(value)))
    except SocError:
        return None


def _sql_regexp(pattern: str, text: str | None) -> int:
    # the pattern was checked when the rule compiled; RE2 objects are cached in detections.regex
    return int(text is not None and compile_regex(pattern)(text))


def _sql_fieldref(left: str | None, right: str | None, mode: str) -> int:
    if left is None or right is None:
        return 0
    if mode == "contains":
        return int(right in left)
    if mode == "startswith":
        return int(left.startswith(right))
    if mode == "endswith":
        return int(left.endswith(right))
    return int(left == right)


def register_sql_functions(conn: sqlite3.Connection) -> None:
    """The SQL functions only rules call (``REGEXP`` included), beside the store's value
    functions (:mod:`soc_core.store.sqlite_functions`); idempotent."""
    conn.create_function("sigma_ts_part", 3, _sql_ts_part, deterministic=True)
    conn.create_function("sigma_fieldref", 3, _sql_fieldref, deterministic=True)
    conn.create_function("regexp", 2, _sql_regexp, deterministic=True)


def _glob(parts: Sequence[Any], fold: bool) -> str:
    """Sigma string parts as a SQLite GLOB pattern (``*``/``?`` wildcards, the rest literal)."""
    out = []
    for part in parts:
        if part == _STAR:
            out.append("*")
        elif part == _QMARK:
            out.append("?")
        else:
            out.append(glob_literal(part, cased=not fold))
    return "".join(out)


_SCALAR = "v.type NOT IN ('object', 'array', 'null')"
_SQL_COMPARE = {
    CompareOperators.LT: "<",
    CompareOperators.LTE: "<=",
    CompareOperators.GT: ">",
    CompareOperators.GTE: ">=",
    CompareOperators.NEQ: "!=",
}


def _sql_join(operator: str, clauses: list[str]) -> str:
    """Clauses joined as a balanced tree: SQLite limits expression depth to 1,000, and SigmaHQ
    rules list hundreds of values for one field. Order is kept, so parameters stay in place."""
    if len(clauses) == 1:
        return clauses[0]
    middle = len(clauses) // 2
    return f"({_sql_join(operator, clauses[:middle])} {operator} {_sql_join(operator, clauses[middle:])})"


class _SqlCompiler(_Target[str]):
    def __init__(self, where: str) -> None:
        super().__init__(where, "SQLite")
        self.params: list[Any] = []

    def all_of(self, clauses: list[str]) -> str:
        return _sql_join("AND", clauses)

    def any_of(self, clauses: list[str]) -> str:
        return _sql_join("OR", clauses)

    def negate(self, clause: str) -> str:
        return f"(NOT {clause})"

    def keyword_value(self, value: object) -> str:
        return _sql_join("OR", [self.field(name, value) for name in KEYWORD_FIELDS])

    def _path(self, name: str) -> str:
        return '$."' + _field_name(name, self.unsupported) + '"'

    def _any(self, name: str, predicate: str, *args: Any) -> str:
        self.params.append(self._path(name))
        self.params.extend(args)
        # fixed fragments only; field paths and values are bound parameters
        return f"EXISTS (SELECT 1 FROM json_each(events.doc, ?) AS v WHERE {_SCALAR} AND {predicate})"  # noqa: S608

    def field(self, name: str, value: object) -> str:
        if isinstance(value, SigmaNull):
            path = self._path(name)
            self.params.extend([path] * 5)
            return (
                "(COALESCE(json_type(events.doc, ?), 'null') = 'null'"
                " OR (json_type(events.doc, ?) = 'text' AND json_extract(events.doc, ?) = '')"
                " OR (json_type(events.doc, ?) = 'array' AND json_array_length(events.doc, ?) = 0))"
            )
        if isinstance(value, SigmaExists):
            self.params.append(self._path(name))
            return f"(COALESCE(json_type(events.doc, ?), 'null') {'!=' if value.exists else '='} 'null')"
        if isinstance(value, SigmaFieldReference):
            return self.fieldref(name, value)
        if isinstance(value, SigmaExpansion):
            return _sql_join("OR", [self.field(name, inner) for inner in value.values])
        if isinstance(value, SigmaString):
            return self.string(name, value)
        if isinstance(value, SigmaTimestampPart):
            return self._any(name, "sigma_ts_part(v.type, v.value, ?) = ?", value.timestamp_part.name, value.number)
        if isinstance(value, SigmaNumber):
            return self._any(name, "value_number(v.type, v.value) = ?", value.number)
        if isinstance(value, SigmaBool):
            return self._any(name, "value_bool(v.type, v.value, ?)", int(value.boolean))
        if isinstance(value, SigmaRegularExpression):
            pattern = _regex_pattern(value, self.unsupported)
            compile_regex(pattern, where=self.where)  # refused here, not inside SQLite at query time
            return self._any(name, "value_text(v.type, v.value) REGEXP ?", pattern)
        if isinstance(value, SigmaCompareExpression):
            op = _SQL_COMPARE[value.op]
            return self._any(name, f"value_number(v.type, v.value) {op} ?", value.number.number)
        if isinstance(value, SigmaCIDRExpression):
            return self._any(name, "value_in_cidr(v.type, v.value, ?)", str(value.network))
        raise self.unsupported(f"value of type {type(value).__name__} ({value!r})")

    def string(self, name: str, value: SigmaString) -> str:
        parts = _parts(value, self.unsupported)
        cased = isinstance(value, SigmaCasedString)
        text = "value_text(v.type, v.value)" if cased else "value_fold(v.type, v.value)"
        if all(isinstance(part, str) for part in parts):
            plain = "".join(parts)
            return self._any(name, f"{text} = ?", plain if cased else fold(plain))
        return self._any(name, f"{text} GLOB ?", _glob(parts, fold=not cased))

    def fieldref(self, name: str, ref: SigmaFieldReference) -> str:
        if ref.starts_with and ref.ends_with:
            mode = "contains"
        elif ref.starts_with:
            mode = "startswith"
        elif ref.ends_with:
            mode = "endswith"
        else:
            mode = "equals"
        self.params.extend([self._path(name), self._path(ref.field), mode])
        return (
            "EXISTS (SELECT 1 FROM json_each(events.doc, ?) AS a, json_each(events.doc, ?) AS b"
            " WHERE sigma_fieldref(value_fold(a.type, a.value), value_fold(b.type, b.value), ?))"
        )


def compile_sql(rule: SigmaRule, *, where: str) -> SqlQuery:
    """The processed ``rule`` as a WHERE fragment over ``events`` (several conditions ORed)."""
    compiler = _SqlCompiler(where)
    sql = _sql_join("OR", [compiler.node(tree) for tree in _conditions(rule, where)])
    return SqlQuery(sql, tuple(compiler.params))


# Elasticsearch -----------------------------------------------------------------------------
def _any_of(clauses: list[DslQuery]) -> DslQuery:
    if len(clauses) == 1:
        return clauses[0]
    return {"bool": {"should": clauses, "minimum_should_match": 1}}


def _all_of(clauses: list[DslQuery]) -> DslQuery:
    if len(clauses) == 1:
        return clauses[0]
    return {"bool": {"filter": clauses}}


def _not(clause: DslQuery) -> DslQuery:
    return {"bool": {"must_not": [clause]}}


def _wildcard_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?\\" else c for c in text)


def _lucene_char(char: str) -> str:
    """One literal character in Lucene regex syntax (every ASCII non-alphanumeric escaped)."""
    if char.isascii() and not char.isalnum():
        return "\\" + char
    return char


_SPACE = " \t\n\r\f"  # RE2's \s
_CATEGORIES = {
    "CATEGORY_DIGIT": ("0-9", False),
    "CATEGORY_NOT_DIGIT": ("0-9", True),
    "CATEGORY_WORD": ("a-zA-Z0-9_", False),
    "CATEGORY_NOT_WORD": ("a-zA-Z0-9_", True),
    "CATEGORY_SPACE": ("".join(_lucene_char(c) for c in _SPACE), False),
    "CATEGORY_NOT_SPACE": ("".join(_lucene_char(c) for c in _SPACE), True),
}


class _LuceneRegex:
    """RE2/Python regex syntax → Lucene ``regexp`` syntax, as a search (unanchored) over a value."""

    def __init__(self, unsupported: Callable[[str], UnsupportedConstruct]) -> None:
        self.unsupported = unsupported
        self.flags = 0

    def translate(self, pattern: str) -> tuple[str, bool]:
        """The Lucene regex and whether it must run case-insensitively."""
        try:
            parsed = _sre.parse(pattern)
        except Exception as exc:
            raise self.unsupported(f"regular expression {pattern!r} ({exc})") from exc
        self.flags = parsed.state.flags
        items = list(parsed)
        if len(items) == 1 and items[0][0] == _sre_c.BRANCH:
            alternatives = [list(alt) for alt in items[0][1][1]]
            body = "|".join(f"({self.search(alt)})" for alt in alternatives)
        else:
            body = self.search(items)
        return body, bool(self.flags & _sre_c.SRE_FLAG_IGNORECASE)

    def search(self, items: list[Any]) -> str:
        c = _sre_c
        multiline = bool(self.flags & c.SRE_FLAG_MULTILINE)
        start = ".*"
        if items and items[0][0] == c.AT and items[0][1] in (c.AT_BEGINNING, c.AT_BEGINNING_STRING):
            start = "(.*\n)?" if multiline and items[0][1] == c.AT_BEGINNING else ""
            items = items[1:]
        if items and items[-1][0] == c.BRANCH:
            # the parser factors common prefixes out of alternatives (``^a$|^b`` → ``^(a$|b)``):
            # each alternative then decides its own end
            alternatives = "|".join(self.tail(list(alt)) for alt in items[-1][1][1])
            return start + self.sequence(items[:-1]) + f"({alternatives})"
        return start + self.tail(items)

    def tail(self, items: list[Any]) -> str:
        c = _sre_c
        end = ".*"
        if items and items[-1][0] == c.AT and items[-1][1] in (c.AT_END, c.AT_END_STRING):
            end = "(\n.*)?" if self.flags & c.SRE_FLAG_MULTILINE and items[-1][1] == c.AT_END else ""
            items = items[:-1]
        return self.sequence(items) + end

    def sequence(self, items: Sequence[Any]) -> str:
        return "".join(self.item(op, arg) for op, arg in items)

    def item(self, op: Any, arg: Any) -> str:
        c = _sre_c
        if op == c.LITERAL:
            return _lucene_char(chr(arg))
        if op == c.NOT_LITERAL:
            return f"[^{''.join(_lucene_char(v) for v in self.variants(chr(arg)))}]"
        if op == c.ANY:
            return "." if self.flags & c.SRE_FLAG_DOTALL else "[^\n]"
        if op == c.IN:
            return self.char_class(arg)
        if op in (c.MAX_REPEAT, c.MIN_REPEAT):
            low, high, sub = arg
            inner = self.sequence(list(sub))
            if len(sub) != 1 or next(iter(sub))[0] in (c.MAX_REPEAT, c.MIN_REPEAT):
                inner = f"({inner})"
            if (low, high) == (0, c.MAXREPEAT):
                return inner + "*"
            if (low, high) == (1, c.MAXREPEAT):
                return inner + "+"
            if (low, high) == (0, 1):
                return inner + "?"
            if high == c.MAXREPEAT:
                return f"{inner}{{{low},}}"
            return f"{inner}{{{low}}}" if low == high else f"{inner}{{{low},{high}}}"
        if op == c.SUBPATTERN:
            _group, add_flags, del_flags, sub = arg
            if add_flags or del_flags:
                raise self.unsupported("regex with scoped inline flags (?i:…)")
            return f"({self.sequence(list(sub))})"
        if op == c.BRANCH:
            # the parser factors prefixes out (``e|ec`` → ``e(|c)``) and Lucene never matches an
            # empty alternative, so an empty branch becomes an optional group
            rendered = [self.sequence(list(alt)) for alt in arg[1]]
            present = [text for text in rendered if text]
            if len(present) == len(rendered):
                return "(" + "|".join(rendered) + ")"
            return "(" + "|".join(present) + ")?" if present else ""
        raise self.unsupported(f"regex construct {op} (anchors inside, look-arounds, back-references, \\b …)")

    @property
    def ignore_case(self) -> bool:
        return bool(self.flags & _sre_c.SRE_FLAG_IGNORECASE)

    def variants(self, char: str) -> list[str]:
        """Lucene's ``case_insensitive`` folds literals only, not classes: add the other case."""
        if not self.ignore_case:
            return [char]
        return list(dict.fromkeys([char, char.lower(), char.upper()]))

    def range_variants(self, low: int, high: int) -> list[tuple[int, int]]:
        ranges = [(low, high)]
        if self.ignore_case:
            for start, end, shift in ((ord("A"), ord("Z"), 32), (ord("a"), ord("z"), -32)):
                lo, hi = max(low, start), min(high, end)
                if lo <= hi:
                    ranges.append((lo + shift, hi + shift))
        return ranges

    def char_class(self, members: Sequence[Any]) -> str:
        c = _sre_c
        negate = False
        out: list[str] = []
        negated_categories: list[str] = []
        for op, arg in members:
            if op == c.NEGATE:
                negate = True
            elif op == c.LITERAL:
                out.extend(_lucene_char(v) for v in self.variants(chr(arg)))
            elif op == c.RANGE:
                for low, high in self.range_variants(arg[0], arg[1]):
                    out.append(f"{_lucene_char(chr(low))}-{_lucene_char(chr(high))}")
            elif op == c.CATEGORY and str(arg) in _CATEGORIES:
                chars, inverted = _CATEGORIES[str(arg)]
                (negated_categories if inverted else out).append(chars)
            else:
                raise self.unsupported(f"regex character class member {op} {arg}")
        if negated_categories:
            if out or negate or len(negated_categories) > 1:
                raise self.unsupported("regex character class mixing \\D/\\W/\\S with other members")
            return f"[^{negated_categories[0]}]"
        return f"[{'^' if negate else ''}{''.join(out)}]"


_OCTET = "([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])"


def _octets_regex(values: range) -> str:
    if values == range(256):
        return _OCTET
    return "(" + "|".join(str(v) for v in values) + ")"


def _ipv4_cidr_regex(network: ipaddress.IPv4Network) -> str:
    """A Lucene regex matching the dotted-quad text of every address in ``network``."""
    first = network.network_address.packed
    last = network.broadcast_address.packed
    octets = [_octets_regex(range(lo, hi + 1)) for lo, hi in zip(first, last, strict=True)]
    return "\\.".join(octets)


def _ipv4_prefix_ranges(prefix: str) -> list[tuple[str, str]] | None:
    """Address ranges whose dotted-quad text starts with ``prefix`` (needs a dot), else None."""
    if "." not in prefix:
        return None
    pieces = prefix.split(".")
    full, partial = pieces[:-1], pieces[-1]
    if len(full) > 3 or not all(p.isdigit() and str(int(p)) == p and int(p) < 256 for p in full):
        return None
    if partial and not partial.isdigit():
        return None
    candidates = [v for v in range(256) if str(v).startswith(partial)] if partial else list(range(256))
    if not candidates:
        return []
    fixed = [int(p) for p in full]
    free = 3 - len(fixed)
    runs: list[tuple[int, int]] = []
    for value in candidates:
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    ranges = []
    for low, high in runs:
        lo = ".".join(str(o) for o in [*fixed, low, *([0] * free)])
        hi = ".".join(str(o) for o in [*fixed, high, *([255] * free)])
        ranges.append((lo, hi))
    return ranges


def _number_texts(number: float) -> list[str]:
    if float(number).is_integer():
        whole = int(number)
        return [str(whole), f"{whole}.0"]
    return [str(float(number))]


class _EsCompiler(_Target[DslQuery]):
    def __init__(self, where: str, field_types: FieldTypes) -> None:
        super().__init__(where, "Elasticsearch")
        self.field_types = field_types

    def all_of(self, clauses: list[DslQuery]) -> DslQuery:
        return _all_of(clauses)

    def any_of(self, clauses: list[DslQuery]) -> DslQuery:
        return _any_of(clauses)

    def negate(self, clause: DslQuery) -> DslQuery:
        return _not(clause)

    def keyword_value(self, value: object) -> DslQuery:
        return self.field(ES_KEYWORD_FIELD, value)

    def field(self, name: str, value: object) -> DslQuery:
        name = _field_name(name, self.unsupported)
        kind = self.field_types(name)
        target = name
        if kind == "text":
            target, kind = f"{name}.keyword", "keyword"
        if isinstance(value, SigmaNull):
            clauses = [_not({"exists": {"field": name}})]
            if kind == "keyword":
                clauses.append({"term": {target: ""}})
            return _any_of(clauses)
        if isinstance(value, SigmaExists):
            exists = {"exists": {"field": name}}
            return exists if value.exists else _not(exists)
        if isinstance(value, SigmaExpansion):
            return _any_of([self.field(name, inner) for inner in value.values])
        if isinstance(value, SigmaFieldReference):
            raise self.unsupported(f"|fieldref ({name} vs {value.field}): needs a script")
        if isinstance(value, SigmaTimestampPart):
            raise self.unsupported(f"timestamp part |{value.timestamp_part.name.lower()} on {name}: needs a script")
        if isinstance(value, SigmaString):
            return self.string(name, target, kind, value)
        if isinstance(value, SigmaNumber):
            return self.number(name, target, kind, value.number)
        if isinstance(value, SigmaBool):
            return self.boolean(target, kind, value.boolean)
        if isinstance(value, SigmaRegularExpression):
            return self.regex(name, target, kind, value)
        if isinstance(value, SigmaCompareExpression):
            return self.compare(name, target, kind, value.op, value.number.number)
        if isinstance(value, SigmaCIDRExpression):
            return self.cidr(name, target, kind, value.network)
        raise self.unsupported(f"value of type {type(value).__name__} ({value!r})")

    def string(self, name: str, target: str, kind: str, value: SigmaString) -> DslQuery:
        parts = _parts(value, self.unsupported)
        cased = isinstance(value, SigmaCasedString)
        plain = all(isinstance(part, str) for part in parts)
        text = "".join(part if isinstance(part, str) else "" for part in parts)
        if kind == "keyword":
            if not cased and needs_pattern(text):
                pattern = lucene_pattern(
                    Wildcard.ANY_RUN if part == _STAR else Wildcard.ANY_ONE if part == _QMARK else part
                    for part in parts
                )
                return {"regexp": {target: {"value": pattern, "flags": "NONE", "max_determinized_states": 100_000}}}
            if plain:
                body: dict[str, Any] = {"value": text}
                query = "term"
            else:
                pattern = "".join(
                    "*" if part == _STAR else "?" if part == _QMARK else _wildcard_escape(part) for part in parts
                )
                body, query = {"value": pattern}, "wildcard"
            if not cased:
                body["case_insensitive"] = True
            return {query: {target: body}}
        if kind in NUMERIC_TYPES:
            if not plain:
                raise self.unsupported(f"wildcard string {value} on numeric field {name}")
            number = _as_number_text(text)
            return {"term": {target: number}} if number is not None else MATCH_NONE
        if kind == "ip":
            if plain:
                try:
                    address = ipaddress.ip_address(text)
                except ValueError:
                    return MATCH_NONE
                if str(address) != (text if cased else text.lower()):
                    return MATCH_NONE  # the matcher compares text; only canonical text can equal it
                return {"term": {target: str(address)}}
            if len(parts) == 2 and parts[1] == _STAR and isinstance(parts[0], str):
                ranges = _ipv4_prefix_ranges(parts[0])
                if ranges is not None:
                    return _any_of([{"range": {target: {"gte": lo, "lte": hi}}} for lo, hi in ranges] or [MATCH_NONE])
            raise self.unsupported(f"string pattern {value} on ip field {name} (only IPv4 prefixes such as '10.')")
        if kind == "boolean":
            matches = [b for b in (True, False) if _string_matches(parts, cased, "true" if b else "false")]
            return _any_of([{"term": {target: b}} for b in matches] or [MATCH_NONE])
        raise self.unsupported(f"string value on {kind} field {name}")

    def number(self, name: str, target: str, kind: str, number: float) -> DslQuery:
        if kind == "keyword":
            return {"terms": {target: _number_texts(number)}}
        if kind in NUMERIC_TYPES:
            return {"term": {target: number}}
        if kind in ("boolean", "ip", "date"):
            return MATCH_NONE  # the matcher reads neither booleans nor addresses/dates as numbers
        raise self.unsupported(f"number on {kind} field {name}")

    @staticmethod
    def boolean(target: str, kind: str, expected: bool) -> DslQuery:
        if kind == "keyword":
            return {"term": {target: {"value": "true" if expected else "false", "case_insensitive": True}}}
        if kind == "boolean":
            return {"term": {target: expected}}
        return MATCH_NONE

    def regex(self, name: str, target: str, kind: str, value: SigmaRegularExpression) -> DslQuery:
        pattern = _regex_pattern(value, self.unsupported)
        search = compile_regex(pattern, where=self.where)  # what RE2 refuses, no target runs
        if kind == "boolean":
            matches = [b for b in (True, False) if search("true" if b else "false")]
            return _any_of([{"term": {target: b}} for b in matches] or [MATCH_NONE])
        if kind != "keyword":
            raise self.unsupported(f"regular expression on {kind} field {name}")
        lucene, insensitive = _LuceneRegex(self.unsupported).translate(pattern)
        body: dict[str, Any] = {"value": lucene, "flags": "NONE", "max_determinized_states": 100_000}
        if insensitive:
            body["case_insensitive"] = True
        return {"regexp": {target: body}}

    def compare(self, name: str, target: str, kind: str, op: CompareOperators, number: float) -> DslQuery:
        if kind in NUMERIC_TYPES:
            if op == CompareOperators.NEQ:
                return _all_of([{"exists": {"field": target}}, _not({"term": {target: number}})])
            bound = {CompareOperators.LT: "lt", CompareOperators.LTE: "lte", CompareOperators.GT: "gt"}.get(op, "gte")
            return {"range": {target: {bound: number}}}
        if kind in ("boolean", "ip", "date"):
            return MATCH_NONE
        raise self.unsupported(f"numeric comparison on {kind} field {name}")

    def cidr(
        self, name: str, target: str, kind: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network
    ) -> DslQuery:
        if kind == "ip":
            return {"term": {target: str(network)}}
        if kind == "keyword":
            if isinstance(network, ipaddress.IPv4Network):
                return {"regexp": {target: {"value": _ipv4_cidr_regex(network), "flags": "NONE"}}}
            raise self.unsupported(f"IPv6 |cidr on keyword field {name}")
        return MATCH_NONE


def _as_number_text(text: str) -> int | float | None:
    """The number whose text (as the matcher writes numbers) is exactly ``text``."""
    try:
        whole = int(text)
    except ValueError:
        pass
    else:
        return whole if str(whole) == text else None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if str(number) == text else None


def _string_matches(parts: Sequence[Any], cased: bool, text: str) -> bool:
    pattern = "".join(".*" if p == _STAR else "." if p == _QMARK else _re_escape(p) for p in parts)
    return compile_regex(f"{'(?s)' if cased else '(?is)'}^(?:{pattern})$")(text)


def _re_escape(text: str) -> str:
    import re  # noqa: PLC0415 - only this helper needs it

    return re.escape(text)


def compile_es(rule: SigmaRule, *, where: str, field_types: FieldTypes = field_type) -> DslQuery:
    """The processed ``rule`` as an Elasticsearch query (DSL) over the event indices.

    ``field_types`` names each field's mapped type; it defaults to the ECS types of the index
    template (other fields are keywords).
    """
    compiler = _EsCompiler(where, field_types)
    return _any_of([compiler.node(tree) for tree in _conditions(rule, where)])


# entry points --------------------------------------------------------------------------------
def _detection_rule(loaded: LoadedRule) -> SigmaRule:
    if loaded.is_correlation:
        raise RuleError("correlation rules do not compile to one store query", where=loaded.where)
    return process_rule(loaded)


def rule_sql(loaded: LoadedRule) -> SqlQuery:
    """A detection rule, through a fresh pipeline, as SQL for the SQLite store."""
    return compile_sql(_detection_rule(loaded), where=loaded.where)


def rule_es_query(loaded: LoadedRule, *, field_types: FieldTypes = field_type) -> DslQuery:
    """A detection rule, through a fresh pipeline, as an Elasticsearch query."""
    return compile_es(_detection_rule(loaded), where=loaded.where, field_types=field_types)


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


def rule_hits(
    store: Store,
    loaded: LoadedRule,
    *,
    tenants: tuple[str, ...] | None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
    routed: bool = True,
) -> list[str]:
    """Ids of stored events the rule matches, oldest first (see :func:`store_hits`)."""
    hits = store_hits(store, loaded, tenants=tenants, start=start, end=end, limit=limit, routed=routed)
    return [hit.id for hit in hits]


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

    The rule's condition runs in the store (SQL on SQLite, DSL on Elasticsearch); with
    ``routed`` the hits are also restricted, as in the streaming engine, to events the rule's
    log source routes to. At most ``limit`` hits, ordered by ``@timestamp`` then id.
    """
    for tenant in tenants or ():
        check_tenant_id(tenant)
    if store.name == "sqlite":
        pages = _sqlite_pages(store, loaded, tenants=tenants, start=start, end=end)
    elif store.name == "elasticsearch":
        pages = _es_pages(store, loaded, tenants=tenants, start=start, end=end)
    else:
        raise StoreError(f"rule queries are not implemented for the {store.name!r} store")
    logsource = _logsource(loaded)
    hits: list[Hit] = []
    for page in pages:
        for hit, routing in page:
            if not routed or routes_to(logsource, routing):
                hits.append(hit)
                if len(hits) >= limit:
                    return hits
    return hits


Row = tuple[Hit, dict[str, Any]]


def _sqlite_pages(
    store: Store,
    loaded: LoadedRule,
    *,
    tenants: tuple[str, ...] | None,
    start: datetime | None,
    end: datetime | None,
) -> Iterator[list[Row]]:
    from soc_core.store.sqlite import SqliteStore  # noqa: PLC0415 - dispatch on store.name

    assert isinstance(store, SqliteStore)
    store.add_connection_hook(register_sql_functions)
    query = rule_sql(loaded)
    clauses = [query.where]
    params: list[Any] = list(query.params)
    if tenants is not None:
        clauses.append(f"events.tenant IN ({','.join('?' * len(tenants))})")
        params.extend(tenants)
    if start is not None:
        clauses.append("events.ts >= ?")
        params.append(format_timestamp(start))
    if end is not None:
        clauses.append("events.ts < ?")
        params.append(format_timestamp(end))
    routing = ", ".join(f"json_extract(events.doc, '$.\"{name}\"')" for name in ROUTING_FIELDS)
    after: tuple[str, str] | None = None
    while True:
        page_clauses, page_params = list(clauses), list(params)
        if after is not None:
            page_clauses.append("(events.ts, events.id) > (?, ?)")
            page_params.extend(after)
        # fixed fragments only; every value is a bound parameter
        sql = f"SELECT events.id, events.ts, {routing} FROM events WHERE {' AND '.join(page_clauses)} "  # noqa: S608
        rows = store.select(
            sql + "ORDER BY events.ts, events.id LIMIT ?",
            [*page_params, PAGE_SIZE],
        )
        if not rows:
            return
        yield [(Hit(row[0], row[1]), dict(zip(ROUTING_FIELDS, row[2:], strict=True))) for row in rows]
        if len(rows) < PAGE_SIZE:
            return
        after = (rows[-1][1], rows[-1][0])


def es_field_types(store: Store, names: Sequence[str]) -> FieldTypes:
    """Field types from the live mapping of the store's event indices, ECS types otherwise.

    A field mapped differently in different indices is read as ``keyword`` if any index maps it
    so (the dynamic template's choice for strings).
    """
    from soc_core.store.elasticsearch import ElasticsearchStore  # noqa: PLC0415 - dispatch on store.name

    assert isinstance(store, ElasticsearchStore)
    live: dict[str, set[str]] = {}
    if names:
        try:
            response = store.client.indices.get_field_mapping(
                index=store.events_pattern, fields=list(names), allow_no_indices=True, ignore_unavailable=True
            )
        except (ApiError, TransportError) as exc:
            raise StoreError(f"cannot read the event mapping: {exc}", where=store.url) from exc
        for index in response.body.values():
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


def rule_fields(rule: SigmaRule, where: str) -> list[str]:
    """Field names a processed rule's conditions name (keywords: ``message``)."""
    names: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, ConditionFieldEqualsValueExpression):
            names.add(node.field)
        elif isinstance(node, ConditionValueExpression):
            names.add(ES_KEYWORD_FIELD)
        elif isinstance(node, ConditionAND | ConditionOR | ConditionNOT):
            for arg in node.args:
                walk(arg)

    for tree in _conditions(rule, where):
        walk(tree)
    return sorted(names)


def _es_pages(
    store: Store,
    loaded: LoadedRule,
    *,
    tenants: tuple[str, ...] | None,
    start: datetime | None,
    end: datetime | None,
) -> Iterator[list[Row]]:
    from soc_core.store.elasticsearch import ElasticsearchStore  # noqa: PLC0415 - dispatch on store.name

    assert isinstance(store, ElasticsearchStore)
    rule = _detection_rule(loaded)
    query = compile_es(rule, where=loaded.where, field_types=es_field_types(store, rule_fields(rule, loaded.where)))
    filters: list[DslQuery] = [query]
    if tenants is not None:
        filters.append({"terms": {"organization.id": list(tenants)}})
        index = ",".join(f"{store.prefix}-events-{tenant}-*" for tenant in tenants)
    else:
        index = store.events_pattern
    span: dict[str, str] = {}
    if start is not None:
        span["gte"] = format_timestamp(start)
    if end is not None:
        span["lt"] = format_timestamp(end)
    if span:
        filters.append({"range": {"@timestamp": span}})
    search_after: list[Any] | None = None
    while True:
        extra: dict[str, Any] = {"search_after": search_after} if search_after else {}
        try:
            response = store.client.search(
                index=index,
                query={"bool": {"filter": filters}},
                sort=[{"@timestamp": "asc"}, {"event.id": "asc"}],
                source_includes=["@timestamp", *ROUTING_FIELDS],
                size=PAGE_SIZE,
                track_total_hits=False,
                ignore_unavailable=True,
                allow_no_indices=True,
                **extra,
            )
        except (ApiError, TransportError) as exc:
            raise StoreError(f"rule query failed: {exc}", where=loaded.where) from exc
        body = response.body
        shards = body.get("_shards", {})
        if shards.get("failed"):
            reasons = json.dumps(shards.get("failures", [])[:2])[:500]
            raise StoreError(f"rule query failed on {shards['failed']} shard(s): {reasons}", where=loaded.where)
        hits = body["hits"]["hits"]
        if not hits:
            return
        yield [(Hit(hit["_id"], str(hit["_source"].get("@timestamp"))), _flat_routing(hit["_source"])) for hit in hits]
        if len(hits) < PAGE_SIZE:
            return
        search_after = hits[-1]["sort"]


def _flat_routing(source: Mapping[str, Any]) -> dict[str, Any]:
    """Routing fields of a ``_source`` filtered by dotted names (flat, or nested by ES)."""
    found: dict[str, Any] = {}
    for name in ROUTING_FIELDS:
        if name in source:
            found[name] = source[name]
            continue
        node: Any = source
        for part in name.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is not None:
            found[name] = node
    return found


__all__ = [
    "DEFAULT_LIMIT",
    "DslQuery",
    "FieldTypes",
    "Hit",
    "SqlQuery",
    "compile_es",
    "compile_sql",
    "es_field_types",
    "register_sql_functions",
    "routes_to",
    "rule_es_query",
    "rule_fields",
    "rule_hits",
    "rule_sql",
    "store_hits",
]
