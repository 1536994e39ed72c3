"""The in-process target: a parsed (and pipeline-processed) Sigma rule as a Python predicate
over flat events, for the streaming engine (the store targets are in :mod:`detections.targets`).

The compiler walks pySigma's condition tree once and builds nested closures, so matching an
event costs one dict lookup per field plus the comparisons — no tree walking at match time.

Semantics (kept identical to the ES and SQL targets where they agree, see DESIGN.md §5):

* strings compare case-insensitively unless ``|cased``; ``*`` and ``?`` are wildcards and the
  whole value must match (``|contains`` etc. already added the ``*``);
* ``|re`` uses RE2 only (:mod:`soc_core.regex`; a pattern RE2 refuses, such as a look-around,
  is a :class:`~soc_core.errors.RuleError`), unanchored (search), case-sensitive unless ``|i``;
  ``|m`` and ``|s`` honoured;
* a list in the event matches when any element matches; numbers and booleans in the event are
  compared as numbers/booleans, or as their text against strings (``"4624"`` equals ``4624``);
* ``null`` matches a missing field, ``None``, ``""`` or ``[]``; ``|exists`` tests presence;
* keywords (values without a field) search ``message`` and ``event.original``, as substrings;
* ``|cidr``, ``|lt``/``|lte``/``|gt``/``|gte``/``|neq`` (numbers), ``|fieldref`` (with
  ``|startswith``/``|endswith``/``|contains``), ``|minute`` … ``|year`` on ISO timestamps.

Anything else (unresolved ``|expand`` placeholders, query expressions) raises
:class:`~soc_core.errors.RuleError` naming the rule file and the construct: a rule never
silently matches nothing.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import re2
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    SigmaCasedString,
    SigmaExists,
    SigmaFieldReference,
    SigmaNull,
    SigmaString,
    SpecialChars,
)

from soc_core.casefolding import fold
from soc_core.regex import compile_regex
from soc_core.store.sqlite_functions import fieldref_holds, timestamp_part

from .targets.walk import KEYWORD_FIELDS, ConditionWalk, Network, conditions, fieldref_mode, string_parts

Event = Mapping[str, Any]
Matcher = Callable[[Event], bool]
ValueTest = Callable[[Any], bool]

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


def compile_rule(rule: SigmaRule, *, where: str | None = None, merge_or: bool = True) -> Matcher:
    """A predicate that is true for events the rule's condition matches.

    ``rule`` should already be processed by the pipeline for its schema. ``merge_or=False``
    compiles every OR branch on its own (no merged string tests): the reference the tests hold
    the merged form to. Raises
    :class:`RuleError` (``where`` = the rule file) for conditions that cannot be parsed and
    :class:`UnsupportedConstruct` for constructs the matcher does not evaluate.
    """
    return _Compiler(where or _rule_where(rule), merge_or=merge_or).rule(rule)


def compile_trees(trees: list[object], *, where: str) -> Matcher:
    """:func:`compile_rule` of condition trees already parsed (the compiled-rule cache's)."""
    return _Compiler(where).trees(trees)


def compile_gate(rule: SigmaRule, *, value_fields: frozenset[str], where: str | None = None) -> Matcher | None:
    """A cheap necessary condition of the rule for routing, or None when there is none.

    The gate relaxes the condition tree: a leaf on one of ``value_fields`` keeps its real test,
    any other leaf that needs a value only asks that its field is present (not None), and NOT,
    ``null`` and ``|exists: false`` give "true". So the gate's answer depends only on which
    fields an event has and on the values of ``value_fields``, and whenever it is false the
    rule cannot match: a router can evaluate it once per distinct (field set, routing values)
    and cache the outcome.
    """
    where = where or _rule_where(rule)
    return compile_gate_trees(conditions(rule, where), value_fields=value_fields, where=where)


def compile_gate_trees(trees: list[object], *, value_fields: frozenset[str], where: str) -> Matcher | None:
    """:func:`compile_gate` of condition trees already parsed."""
    compiler = _Compiler(where)
    gates: list[Matcher] = []
    for tree in trees:
        gate = compiler.gate(tree, value_fields)
        if gate is None:
            return None
        gates.append(gate)
    if not gates:
        return None
    return gates[0] if len(gates) == 1 else _any_of(gates)


def needed_fields(rule: SigmaRule) -> frozenset[str]:
    """Fields every event the processed rule matches has (not None): a cheaper, coarser gate.

    AND needs what any branch needs, OR what every branch needs; NOT, ``null``,
    ``|exists: false`` and keywords need nothing.
    """
    return needed_fields_of([condition.parse() for condition in rule.detection.parsed_condition])


def needed_fields_of(trees: list[object]) -> frozenset[str]:
    """:func:`needed_fields` of condition trees already parsed."""
    found: frozenset[str] | None = None
    for tree in trees:  # several conditions are ORed
        needs = _needed(tree)
        found = needs if found is None else found & needs
    return found or frozenset()


def _needed(node: object) -> frozenset[str]:
    if isinstance(node, ConditionAND):
        return frozenset().union(*(_needed(arg) for arg in node.args))
    if isinstance(node, ConditionOR):
        return frozenset.intersection(*(_needed(arg) for arg in node.args)) if node.args else frozenset()
    if isinstance(node, ConditionFieldEqualsValueExpression):
        value = node.value
        if isinstance(value, SigmaNull) or (isinstance(value, SigmaExists) and not value.exists):
            return frozenset()
        if isinstance(value, SigmaFieldReference):
            return frozenset({node.field, value.field})
        return frozenset({node.field})
    return frozenset()  # NOT, keywords (message or event.original), anything else


def _rule_where(rule: SigmaRule) -> str:
    source = rule.source
    if source is None:
        return rule.title or "<rule>"
    return f"{source.path}:{source.line}" if source.line is not None else str(source.path)


def _any_of(matchers: list[Matcher]) -> Matcher:
    if len(matchers) == 1:
        return matchers[0]
    if len(matchers) == 2:
        first, second = matchers
        return lambda event: first(event) or second(event)
    options = tuple(matchers)

    def match(event: Event) -> bool:
        for option in options:  # noqa: SIM110 - a plain loop: any() over a generator costs more here
            if option(event):
                return True
        return False

    return match


def _all_of(matchers: list[Matcher]) -> Matcher:
    if len(matchers) == 1:
        return matchers[0]
    if len(matchers) == 2:
        first, second = matchers
        return lambda event: first(event) and second(event)
    parts = tuple(matchers)

    def match(event: Event) -> bool:
        for part in parts:  # noqa: SIM110 - a plain loop: all() over a generator costs more here
            if not part(event):
                return False
        return True

    return match


def _present(names: list[str]) -> Matcher:
    if len(names) == 1:
        name = names[0]
        return lambda event: event.get(name) is not None
    return lambda event: all(event.get(name) is not None for name in names)


def _present_any(names: tuple[str, ...]) -> Matcher:
    return lambda event: any(event.get(name) is not None for name in names)


class _Compiler(ConditionWalk[Matcher]):
    home = "detections/matcher.py"

    def __init__(self, where: str, *, merge_or: bool = True) -> None:
        super().__init__(where)
        self.merge_or = merge_or

    # condition tree ------------------------------------------------------------------------
    def all_of(self, clauses: list[Matcher]) -> Matcher:
        return _all_of(clauses)

    def any_of(self, clauses: list[Matcher]) -> Matcher:
        return _any_of(clauses)

    def negate(self, clause: Matcher) -> Matcher:
        return lambda event: not clause(event)

    def gate(self, node: object, value_fields: frozenset[str]) -> Matcher | None:
        """The relaxation described in :func:`compile_gate`; None stands for "always true"."""
        if isinstance(node, ConditionAND):
            parts = [g for g in (self.gate(arg, value_fields) for arg in node.args) if g is not None]
            if not parts:
                return None
            return parts[0] if len(parts) == 1 else _all_of(parts)
        if isinstance(node, ConditionOR):
            options: list[Matcher] = []
            for arg in node.args:
                found = self.gate(arg, value_fields)
                if found is None:
                    return None
                options.append(found)
            return options[0] if len(options) == 1 else _any_of(options)
        if isinstance(node, ConditionFieldEqualsValueExpression):
            name, value = node.field, node.value
            if isinstance(value, SigmaNull) or (isinstance(value, SigmaExists) and not value.exists):
                return None
            if name in value_fields:
                return self.field(name, value)
            names = [name, value.field] if isinstance(value, SigmaFieldReference) else [name]
            return _present(names)
        if isinstance(node, ConditionValueExpression):
            return _present_any(KEYWORD_FIELDS)
        return None  # NOT, and anything the matcher compiler would reject anyway

    def any_node(self, args: list[Any]) -> Matcher:
        """OR, with the plain case-insensitive string tests on one field merged into one test.

        SigmaHQ rules often list dozens of values for one field (``Image|endswith: [...]``):
        merged, the field is read and case-folded once, and the comparisons run in C
        (``str.endswith`` with a tuple, a set lookup, one RE2 alternation for many substrings).
        """
        if not self.merge_or:
            return super().any_node(args)
        shapes: dict[str, dict[str, list[str]]] = {}
        rest: list[Matcher] = []
        for arg in args:
            shape = _plain_shape(arg)
            if shape is None:
                rest.append(self.node(arg))
            else:
                kind, needle = shape
                shapes.setdefault(arg.field, {}).setdefault(kind, []).append(needle)
        merged = [_field_matcher(name, _folded_test(kinds)) for name, kinds in shapes.items()]
        return _any_of(merged + rest)

    # field = value -------------------------------------------------------------------------
    def null(self, name: str) -> Matcher:
        return lambda event: _is_empty(event.get(name))

    def exists(self, name: str, exists: bool) -> Matcher:
        if exists:
            return lambda event: event.get(name) is not None
        return lambda event: event.get(name) is None

    def fieldref(self, name: str, ref: SigmaFieldReference) -> Matcher:
        other_name = ref.field
        mode = fieldref_mode(ref)

        def match(event: Event) -> bool:
            lefts = [_text(v) for v in _values(event.get(name))]
            rights = [_text(v) for v in _values(event.get(other_name))]
            return any(
                left is not None and right is not None and fieldref_holds(fold(left), fold(right), mode)
                for left in lefts
                for right in rights
            )

        return match

    # one scalar event value, tested on each value of the field -----------------------------
    def string(self, name: str, value: SigmaString) -> Matcher:
        parts = string_parts(value, self.unsupported)
        return _field_matcher(name, _string_test(tuple(parts), isinstance(value, SigmaCasedString)))

    def timestamp_part(self, name: str, part: str, number: float) -> Matcher:
        return _field_matcher(name, _timestamp_part_test(part, number))

    def number(self, name: str, number: float) -> Matcher:
        return _field_matcher(name, _number_test(number))

    def boolean(self, name: str, expected: bool) -> Matcher:
        return _field_matcher(name, _bool_test(expected))

    def regex(self, name: str, pattern: str) -> Matcher:
        search = compile_regex(pattern, where=self.where)

        def test(found: Any) -> bool:
            text = _text(found)
            return text is not None and search(text)

        return _field_matcher(name, test)

    def compare(self, name: str, op: CompareOperators, number: float) -> Matcher:
        return _field_matcher(name, _compare_test(op, number))

    def cidr(self, name: str, network: Network) -> Matcher:
        return _field_matcher(name, _cidr_test(network))


# value tests -------------------------------------------------------------------------------
def _field_matcher(name: str, test: ValueTest) -> Matcher:
    def match(event: Event) -> bool:
        found = event.get(name)
        if found is None:
            return False
        if isinstance(found, list):
            return any(item is not None and test(item) for item in found)
        return test(found)

    return match


_CONTAINS_REGEX_FROM = 8  # with this many substrings one RE2 alternation beats a loop of `in`


def _plain_shape(node: object) -> tuple[str, str] | None:
    """(kind, case-folded needle) of a case-insensitive field test :func:`_folded_test` can merge."""
    if not isinstance(node, ConditionFieldEqualsValueExpression):
        return None
    value = node.value
    if not isinstance(value, SigmaString) or isinstance(value, SigmaCasedString):
        return None
    return _string_shape(tuple(value.iter_parts()))


def _string_shape(parts: tuple[Any, ...]) -> tuple[str, str] | None:
    """ "equals"/"prefix"/"suffix"/"contains" and the needle, for wildcard shapes that need no regex."""
    star = SpecialChars.WILDCARD_MULTI
    if all(isinstance(part, str) for part in parts):
        return "equals", fold("".join(parts))
    lead = bool(parts) and parts[0] == star
    trail = len(parts) > 1 and parts[-1] == star
    core = parts[int(lead) : len(parts) - int(trail)]
    if not all(isinstance(part, str) for part in core):
        return None
    needle = fold("".join(core))
    if lead and trail:
        return "contains", needle
    return ("suffix" if lead else "prefix"), needle


def _folded_test(kinds: Mapping[str, list[str]]) -> ValueTest:
    equals = frozenset(kinds.get("equals", ()))
    prefixes = tuple(kinds.get("prefix", ()))
    suffixes = tuple(kinds.get("suffix", ()))
    contains = tuple(dict.fromkeys(kinds.get("contains", ())))
    checks: list[Callable[[str], bool]] = []
    if equals:
        checks.append(equals.__contains__)
    if prefixes:
        checks.append(lambda text: text.startswith(prefixes))
    if suffixes:
        checks.append(lambda text: text.endswith(suffixes))
    if len(contains) >= _CONTAINS_REGEX_FROM:
        alternation = re2.compile("|".join(re.escape(needle) for needle in contains), options=_RE2_OPTIONS)

        def search(text: str) -> bool:
            try:
                return alternation.search(text) is not None
            except UnicodeEncodeError:  # lone surrogates: RE2 only takes valid UTF-8
                return any(needle in text for needle in contains)

        checks.append(search)
    elif len(contains) == 1:
        (needle,) = contains
        checks.append(lambda text: needle in text)
    elif contains:
        checks.append(lambda text: any(needle in text for needle in contains))
    if len(checks) == 1:
        (check,) = checks
    else:
        options = tuple(checks)

        def check(text: str) -> bool:
            for option in options:  # noqa: SIM110 - as in _any_of
                if option(text):
                    return True
            return False

    def test(found: Any) -> bool:
        text = found if found.__class__ is str else _text(found)
        return text is not None and check(fold(text))

    return test


def _text(found: Any) -> str | None:
    if isinstance(found, str):
        return found
    if isinstance(found, bool):
        return "true" if found else "false"
    if isinstance(found, int | float):
        return str(found)
    return None


def _values(found: Any) -> list[Any]:
    if found is None:
        return []
    if isinstance(found, list):
        return found
    return [found]


def _is_empty(found: Any) -> bool:
    return found is None or found in ("", [])


@lru_cache(maxsize=65536)
def _string_test(parts: tuple[Any, ...], cased: bool) -> ValueTest:
    """Fast paths for plain / prefix / suffix / substring; a regex for anything else."""
    star = SpecialChars.WILDCARD_MULTI
    if not cased:
        shape = _string_shape(parts)
        if shape is not None:
            return _folded_test({shape[0]: [shape[1]]})
    literal: Callable[[str], str] = (lambda s: s) if cased else fold
    if all(isinstance(part, str) for part in parts):
        needle = literal("".join(parts))
        return _wrap(lambda text: literal(text) == needle)
    inner = parts
    lead = bool(inner) and inner[0] == star
    trail = len(inner) > 1 and inner[-1] == star
    core = inner[int(lead) : len(inner) - int(trail)]
    if all(isinstance(part, str) for part in core):
        needle = literal("".join(core))
        if lead and trail:
            return _wrap(lambda text: needle in literal(text))
        if lead:
            return _wrap(lambda text: literal(text).endswith(needle))
        if trail:
            return _wrap(lambda text: literal(text).startswith(needle))
    pattern = "".join(
        ".*" if part == star else "." if part == SpecialChars.WILDCARD_SINGLE else re.escape(literal(part))
        for part in parts
    )
    compiled = re2.compile(f"(?s)^(?:{pattern})$", options=_RE2_OPTIONS)
    return _wrap(lambda text: compiled.search(literal(text)) is not None)


def _wrap(check: Callable[[str], bool]) -> ValueTest:
    def test(found: Any) -> bool:
        text = _text(found)
        return text is not None and check(text)

    return test


def _as_number(found: Any) -> float | None:
    if isinstance(found, bool):
        return None
    if isinstance(found, int | float):
        return found
    if isinstance(found, str):
        try:
            return float(found.strip())
        except ValueError:
            return None
    return None


def _number_test(number: float) -> ValueTest:
    def test(found: Any) -> bool:
        return _as_number(found) == number

    return test


def _bool_test(expected: bool) -> ValueTest:
    word = "true" if expected else "false"

    def test(found: Any) -> bool:
        if isinstance(found, bool):
            return found is expected
        return isinstance(found, str) and found.strip().lower() == word

    return test


_COMPARE: dict[CompareOperators, Callable[[float, float], bool]] = {
    CompareOperators.LT: lambda a, b: a < b,
    CompareOperators.LTE: lambda a, b: a <= b,
    CompareOperators.GT: lambda a, b: a > b,
    CompareOperators.GTE: lambda a, b: a >= b,
    CompareOperators.NEQ: lambda a, b: a != b,
}


def _compare_test(op: CompareOperators, number: float) -> ValueTest:
    compare = _COMPARE[op]

    def test(found: Any) -> bool:
        value = _as_number(found)
        return value is not None and compare(value, number)

    return test


@lru_cache(maxsize=4096)
def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _cidr_test(network: Network) -> ValueTest:
    def test(found: Any) -> bool:
        if not isinstance(found, str):
            return False
        address = _parse_ip(found)
        return address is not None and address.version == network.version and address in network

    return test


def _timestamp_part_test(part: str, number: float) -> ValueTest:
    def test(found: Any) -> bool:
        return isinstance(found, str) and timestamp_part(found, part) == number

    return test


__all__ = [
    "Matcher",
    "compile_gate",
    "compile_gate_trees",
    "compile_rule",
    "compile_trees",
    "needed_fields",
    "needed_fields_of",
]
