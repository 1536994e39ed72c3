"""The Elasticsearch target: a processed Sigma rule as query DSL over the event indices.

The pySigma Lucene backend emits one ``query_string``: its wildcards on our ``keyword`` fields
are case-sensitive and its regexes anchored, so it would disagree with the matcher. This target
builds the DSL from the condition tree, value by value, following the matcher's semantics:

* strings: ``term``/``wildcard`` with ``case_insensitive`` (unless ``|cased``) on keyword
  fields, or a ``regexp`` spelling out every case and composition of a non-ASCII value, since
  ``case_insensitive`` folds ASCII only (:mod:`soc_core.casefolding`); ``text`` fields
  (``message``) are matched on their ``.keyword`` sub-field, whole value like the matcher;
* regexes are translated to Lucene syntax (:mod:`detections.targets.lucene_regex`);
* numbers, ``|cidr``, comparisons and string values are compiled per field type (the live
  mapping, from :meth:`~soc_core.store.elasticsearch.ElasticsearchStore.field_types`, ECS
  types otherwise), e.g. ``|cidr`` on a keyword field becomes a regex over dotted quads and
  ``|startswith: '10.'`` on an ``ip`` field becomes address ranges.

Known differences, by design of the Elasticsearch mapping (tested in test_differential.py):
    * keywords (values without a field) search ``message`` and ``event.original`` in the matcher
      and in SQL; ``event.original`` is stored unindexed in Elasticsearch, so here they search
      ``message`` only;
    * a number compared with a keyword field matches its canonical spellings (``4624``,
      ``4624.0``) here; the matcher and SQL also accept ``04624`` or `` 4624``;
    * Elasticsearch does not index values that do not fit the field's type (``ignore_malformed``)
      nor strings longer than 8,191 characters (``ignore_above``), so those never match here.
    Constructs it cannot express (``|fieldref``, timestamp parts, regexes with ``\\b`` or
    anchors inside, wildcards on numeric fields …) raise
    :class:`~detections.targets.walk.UnsupportedConstruct` naming the rule file and the construct.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    SigmaCasedString,
    SigmaFieldReference,
    SigmaString,
)

from soc_core.casefolding import Wildcard, lucene_pattern, needs_pattern
from soc_core.regex import compile_regex
from soc_core.store.fields import NUMERIC_TYPES, FieldTypes, field_type

from .lucene_regex import LuceneRegex
from .walk import QMARK, STAR, ConditionWalk, Network, query_field, string_parts

DslQuery = dict[str, Any]

MATCH_NONE: DslQuery = {"match_none": {}}
ES_KEYWORD_FIELD = "message"  # event.original is not indexed in Elasticsearch


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


class _EsCompiler(ConditionWalk[DslQuery]):
    target: ClassVar[str] = "Elasticsearch"
    home: ClassVar[str] = "detections/targets/elasticsearch.py"

    def __init__(self, where: str, field_types: FieldTypes) -> None:
        super().__init__(where)
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
        return super().field(query_field(name, self.unsupported), value)

    def _mapped(self, name: str) -> tuple[str, str]:
        """The field to query and its type: a ``text`` field through its ``.keyword``."""
        kind = self.field_types(name)
        return (f"{name}.keyword", "keyword") if kind == "text" else (name, kind)

    def null(self, name: str) -> DslQuery:
        target, kind = self._mapped(name)
        clauses = [_not({"exists": {"field": name}})]
        if kind == "keyword":
            clauses.append({"term": {target: ""}})
        return _any_of(clauses)

    def exists(self, name: str, exists: bool) -> DslQuery:
        query = {"exists": {"field": name}}
        return query if exists else _not(query)

    def fieldref(self, name: str, ref: SigmaFieldReference) -> DslQuery:
        raise self.unsupported(f"|fieldref ({name} vs {ref.field}): needs a script")

    def timestamp_part(self, name: str, part: str, number: float) -> DslQuery:
        raise self.unsupported(f"timestamp part |{part.lower()} on {name}: needs a script")

    def string(self, name: str, value: SigmaString) -> DslQuery:
        target, kind = self._mapped(name)
        parts = string_parts(value, self.unsupported)
        cased = isinstance(value, SigmaCasedString)
        plain = all(isinstance(part, str) for part in parts)
        text = "".join(part if isinstance(part, str) else "" for part in parts)
        if kind == "keyword":
            if not cased and needs_pattern(text):
                pattern = lucene_pattern(
                    Wildcard.ANY_RUN if part == STAR else Wildcard.ANY_ONE if part == QMARK else part for part in parts
                )
                return {"regexp": {target: {"value": pattern, "flags": "NONE", "max_determinized_states": 100_000}}}
            if plain:
                body: dict[str, Any] = {"value": text}
                query = "term"
            else:
                pattern = "".join(
                    "*" if part == STAR else "?" if part == QMARK else _wildcard_escape(part) for part in parts
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
            if len(parts) == 2 and parts[1] == STAR and isinstance(parts[0], str):
                ranges = _ipv4_prefix_ranges(parts[0])
                if ranges is not None:
                    return _any_of([{"range": {target: {"gte": lo, "lte": hi}}} for lo, hi in ranges] or [MATCH_NONE])
            raise self.unsupported(f"string pattern {value} on ip field {name} (only IPv4 prefixes such as '10.')")
        if kind == "boolean":
            matches = [b for b in (True, False) if _string_matches(parts, cased, "true" if b else "false")]
            return _any_of([{"term": {target: b}} for b in matches] or [MATCH_NONE])
        raise self.unsupported(f"string value on {kind} field {name}")

    def number(self, name: str, number: float) -> DslQuery:
        target, kind = self._mapped(name)
        if kind == "keyword":
            return {"terms": {target: _number_texts(number)}}
        if kind in NUMERIC_TYPES:
            return {"term": {target: number}}
        if kind in ("boolean", "ip", "date"):
            return MATCH_NONE  # the matcher reads neither booleans nor addresses/dates as numbers
        raise self.unsupported(f"number on {kind} field {name}")

    def boolean(self, name: str, expected: bool) -> DslQuery:
        target, kind = self._mapped(name)
        if kind == "keyword":
            return {"term": {target: {"value": "true" if expected else "false", "case_insensitive": True}}}
        if kind == "boolean":
            return {"term": {target: expected}}
        return MATCH_NONE

    def regex(self, name: str, pattern: str) -> DslQuery:
        target, kind = self._mapped(name)
        search = compile_regex(pattern, where=self.where)  # what RE2 refuses, no target runs
        if kind == "boolean":
            matches = [b for b in (True, False) if search("true" if b else "false")]
            return _any_of([{"term": {target: b}} for b in matches] or [MATCH_NONE])
        if kind != "keyword":
            raise self.unsupported(f"regular expression on {kind} field {name}")
        lucene, insensitive = LuceneRegex(self.unsupported).translate(pattern)
        body: dict[str, Any] = {"value": lucene, "flags": "NONE", "max_determinized_states": 100_000}
        if insensitive:
            body["case_insensitive"] = True
        return {"regexp": {target: body}}

    def compare(self, name: str, op: CompareOperators, number: float) -> DslQuery:
        target, kind = self._mapped(name)
        if kind in NUMERIC_TYPES:
            if op == CompareOperators.NEQ:
                return _all_of([{"exists": {"field": target}}, _not({"term": {target: number}})])
            bound = {CompareOperators.LT: "lt", CompareOperators.LTE: "lte", CompareOperators.GT: "gt"}.get(op, "gte")
            return {"range": {target: {bound: number}}}
        if kind in ("boolean", "ip", "date"):
            return MATCH_NONE
        raise self.unsupported(f"numeric comparison on {kind} field {name}")

    def cidr(self, name: str, network: Network) -> DslQuery:
        target, kind = self._mapped(name)
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
    pattern = "".join(".*" if p == STAR else "." if p == QMARK else re.escape(p) for p in parts)
    return compile_regex(f"{'(?s)' if cased else '(?is)'}^(?:{pattern})$")(text)


def compile_es(rule: SigmaRule, *, where: str, field_types: FieldTypes = field_type) -> DslQuery:
    """The processed ``rule`` as an Elasticsearch query (DSL) over the event indices.

    ``field_types`` names each field's mapped type; it defaults to the ECS types of the index
    template (other fields are keywords).
    """
    return _EsCompiler(where, field_types).rule(rule)


class _FieldNames(ConditionWalk[frozenset[str]]):
    """The fields a rule's condition tests (keywords: ``message``), whatever the value."""

    target: ClassVar[str] = "Elasticsearch"

    def all_of(self, clauses: list[frozenset[str]]) -> frozenset[str]:
        return frozenset().union(*clauses)

    def any_of(self, clauses: list[frozenset[str]]) -> frozenset[str]:
        return self.all_of(clauses)

    def negate(self, clause: frozenset[str]) -> frozenset[str]:
        return clause

    def field(self, name: str, value: object) -> frozenset[str]:
        return frozenset({name})

    def keyword_value(self, value: object) -> frozenset[str]:
        return frozenset({ES_KEYWORD_FIELD})


def rule_fields(rule: SigmaRule, where: str) -> list[str]:
    """Field names a processed rule's conditions name (keywords: ``message``)."""
    return sorted(_FieldNames(where).rule(rule))


__all__ = ["DslQuery", "compile_es", "rule_fields"]
