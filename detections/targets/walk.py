"""The condition walk every rule target shares, and the value helpers written once for all.

A processed Sigma rule's condition is a tree of AND/OR/NOT over ``field = value`` tests and
keywords (values without a field). :class:`ConditionWalk` visits it and asks its target to build
each node: a Python predicate (:mod:`detections.matcher`), a SQL fragment
(:mod:`detections.targets.sql`) or an Elasticsearch query (:mod:`detections.targets.elasticsearch`).
The helpers below read Sigma values the same way for every target (keywords as substrings,
regexes with their flags in front, placeholders refused), so the targets differ only in what
they build — the differential test holds them to the same hits.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

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
)

from soc_core.errors import RuleError, SocError
from soc_core.store.fields import check_field_name

Q = TypeVar("Q")  # what a target builds: a predicate, an SQL fragment, an Elasticsearch query
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Unsupported = Callable[[str], "UnsupportedConstruct"]

KEYWORD_FIELDS = ("message", "event.original")
STAR = SpecialChars.WILDCARD_MULTI
QMARK = SpecialChars.WILDCARD_SINGLE


class UnsupportedConstruct(RuleError):
    """The rule uses something a target cannot evaluate."""


def conditions(rule: SigmaRule, where: str) -> list[object]:
    """The parsed trees of the rule's conditions (several conditions are ORed)."""
    trees: list[object] = []
    for condition in rule.detection.parsed_condition:
        try:
            trees.append(condition.parse())
        except SigmaError as exc:
            raise RuleError(f"condition {condition.condition!r}: {exc}", where=where) from exc
    return trees


def as_contains(value: SigmaString) -> SigmaString:
    """``*value*`` (a keyword is a substring)."""
    if not value.startswith(STAR):
        value = STAR + value
    if not value.endswith(STAR):
        value = value + STAR
    return value


def keyword_value(value: object, unsupported: Unsupported) -> object:
    """A keyword (value without a field) as the matcher reads it: a substring, or a regex."""
    if isinstance(value, SigmaString):
        return as_contains(value)
    if isinstance(value, SigmaNumber | SigmaBool):
        return as_contains(SigmaString(str(value)))
    if isinstance(value, SigmaRegularExpression):
        return value
    raise unsupported(f"keyword value of type {type(value).__name__}")


def string_parts(value: SigmaString, unsupported: Unsupported) -> list[Any]:
    """The literal texts and wildcards of a string; an unresolved placeholder is refused."""
    parts = list(value.iter_parts())
    for part in parts:
        if isinstance(part, Placeholder):
            raise unsupported(f"unresolved placeholder %{part.name}% (|expand) — no pipeline defines it")
    return parts


def regex_pattern(value: SigmaRegularExpression, unsupported: Unsupported) -> str:
    """The pattern as every target compiles it (Sigma's flags inline in front)."""
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


def fieldref_mode(ref: SigmaFieldReference) -> str:
    """How ``|fieldref`` compares (:data:`soc_core.store.sqlite_functions.FIELDREF_MODES`)."""
    if ref.starts_with and ref.ends_with:
        return "contains"
    if ref.starts_with:
        return "startswith"
    if ref.ends_with:
        return "endswith"
    return "equals"


def query_field(name: str, unsupported: Unsupported) -> str:
    """A field name a store query can name, else unsupported."""
    try:
        return check_field_name(name)
    except SocError:
        raise unsupported(f"field name {name!r} (not a dotted field name a store can query)") from None


class ConditionWalk(Generic[Q]):
    """Walks a rule's condition tree (and/or/not, field = value, keyword) into a ``Q``."""

    target: ClassVar[str] = ""  # named in messages: "unsupported construct for SQLite: …"
    home: ClassVar[str] = "detections/targets"  # where support for a construct would go

    def __init__(self, where: str) -> None:
        self.where = where

    def unsupported(self, construct: str) -> UnsupportedConstruct:
        scope = f" for {self.target}" if self.target else ""
        return UnsupportedConstruct(
            f"unsupported construct{scope}: {construct}",
            where=self.where,
            hint=f"rewrite the rule without it, or add support in {self.home}",
        )

    def rule(self, rule: SigmaRule) -> Q:
        """The whole rule: its conditions ORed."""
        return self.trees(conditions(rule, self.where))

    def trees(self, trees: list[object]) -> Q:
        """Condition trees already parsed (:func:`conditions`), ORed."""
        return self.any_of([self.node(tree) for tree in trees])

    def node(self, node: object) -> Q:
        if isinstance(node, ConditionAND):
            return self.all_of([self.node(arg) for arg in node.args])
        if isinstance(node, ConditionOR):
            return self.any_node(node.args)
        if isinstance(node, ConditionNOT):
            return self.negate(self.node(node.args[0]))
        if isinstance(node, ConditionFieldEqualsValueExpression):
            return self.field(node.field, node.value)
        if isinstance(node, ConditionValueExpression):
            return self.keyword(node.value)
        if node is None:
            raise self.unsupported("empty detection (every item dropped by the pipeline)")
        raise self.unsupported(f"condition node {type(node).__name__}")

    def any_node(self, args: list[Any]) -> Q:
        """An OR of condition nodes (a target may look at them before compiling each)."""
        return self.any_of([self.node(arg) for arg in args])

    def keyword(self, value: object) -> Q:
        if isinstance(value, SigmaExpansion):
            return self.any_of([self.keyword(inner) for inner in value.values])
        return self.keyword_value(keyword_value(value, self.unsupported))

    def keyword_value(self, value: object) -> Q:
        """A keyword, already read by :func:`keyword_value`: by default, on every keyword field."""
        return self.any_of([self.field(name, value) for name in KEYWORD_FIELDS])

    def field(self, name: str, value: object) -> Q:
        """``name`` = ``value``: one method of the target per kind of Sigma value."""
        if isinstance(value, SigmaExpansion):
            return self.any_of([self.field(name, inner) for inner in value.values])
        if isinstance(value, SigmaNull):
            return self.null(name)
        if isinstance(value, SigmaExists):
            return self.exists(name, value.exists)
        if isinstance(value, SigmaFieldReference):
            return self.fieldref(name, value)
        if isinstance(value, SigmaString):
            return self.string(name, value)
        if isinstance(value, SigmaTimestampPart):
            return self.timestamp_part(name, value.timestamp_part.name, value.number)
        if isinstance(value, SigmaNumber):
            return self.number(name, value.number)
        if isinstance(value, SigmaBool):
            return self.boolean(name, value.boolean)
        if isinstance(value, SigmaRegularExpression):
            return self.regex(name, regex_pattern(value, self.unsupported))
        if isinstance(value, SigmaCompareExpression):
            return self.compare(name, value.op, value.number.number)
        if isinstance(value, SigmaCIDRExpression):
            return self.cidr(name, value.network)
        raise self.unsupported(f"value of type {type(value).__name__} ({value!r})")

    # what each target builds ---------------------------------------------------------------
    def all_of(self, clauses: list[Q]) -> Q:
        raise NotImplementedError

    def any_of(self, clauses: list[Q]) -> Q:
        raise NotImplementedError

    def negate(self, clause: Q) -> Q:
        raise NotImplementedError

    def null(self, name: str) -> Q:
        """Missing, ``None``, ``""`` or ``[]``."""
        raise NotImplementedError

    def exists(self, name: str, exists: bool) -> Q:
        raise NotImplementedError

    def fieldref(self, name: str, ref: SigmaFieldReference) -> Q:
        raise NotImplementedError

    def string(self, name: str, value: SigmaString) -> Q:
        raise NotImplementedError

    def timestamp_part(self, name: str, part: str, number: float) -> Q:
        """``|minute`` … ``|year`` (``part``: ``MINUTE`` … ``YEAR``)."""
        raise NotImplementedError

    def number(self, name: str, number: float) -> Q:
        raise NotImplementedError

    def boolean(self, name: str, expected: bool) -> Q:
        raise NotImplementedError

    def regex(self, name: str, pattern: str) -> Q:
        """``|re``, ``pattern`` with its flags inline (:func:`regex_pattern`)."""
        raise NotImplementedError

    def compare(self, name: str, op: CompareOperators, number: float) -> Q:
        raise NotImplementedError

    def cidr(self, name: str, network: Network) -> Q:
        raise NotImplementedError


__all__ = [
    "KEYWORD_FIELDS",
    "QMARK",
    "STAR",
    "ConditionWalk",
    "Network",
    "UnsupportedConstruct",
    "as_contains",
    "conditions",
    "fieldref_mode",
    "keyword_value",
    "query_field",
    "regex_pattern",
    "string_parts",
]
