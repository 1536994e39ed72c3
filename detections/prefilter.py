"""Prefilter: skip rules whose required literals do not occur anywhere in the event.

For each processed rule we derive a set of lower-cased literals such that *any* event the rule
matches contains at least one of them in some field value (keywords included, since they search
field values too). One Aho-Corasick scan over the event's values then tells which rules can
possibly match; only those run their full matcher. Rules for which no such set can be derived
(regexes, CIDR, numbers, negations …) always run. The prefilter never changes results, only
how many matchers run — the tests check both paths agree.

Derivation over the condition tree: a string value gives its longest plain part (at least
``MIN_LITERAL`` characters); OR needs every branch to give a set and unions them; AND takes the
smallest set among its branches; NOT and every other value give nothing.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

import ahocorasick
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.rule import SigmaRule
from sigma.types import SigmaExpansion, SigmaString

MIN_LITERAL = 3
Literals = frozenset[str] | None


def rule_literals(rule: SigmaRule) -> Literals:
    """Literals one of which every event matching the processed ``rule`` contains."""
    return literals_of([condition.parse() for condition in rule.detection.parsed_condition])


def literals_of(trees: list[object]) -> Literals:
    """:func:`rule_literals` of condition trees already parsed."""
    result: set[str] = set()
    for tree in trees:  # several conditions are ORed
        found = _node(tree)
        if found is None:
            return None
        result |= found
    return frozenset(result) or None


def _node(node: object) -> Literals:
    if isinstance(node, ConditionOR):
        union: set[str] = set()
        for arg in node.args:
            found = _node(arg)
            if found is None:
                return None
            union |= found
        return frozenset(union)
    if isinstance(node, ConditionAND):
        options = [found for found in (_node(arg) for arg in node.args) if found]
        return min(options, key=len) if options else None
    if isinstance(node, ConditionFieldEqualsValueExpression | ConditionValueExpression):
        return _value(node.value)
    return None  # NOT and anything unknown


def _value(value: object) -> Literals:
    if isinstance(value, SigmaExpansion):
        union: set[str] = set()
        for inner in value.values:
            found = _value(inner)
            if found is None:
                return None
            union |= found
        return frozenset(union)
    if isinstance(value, SigmaString):
        parts = [part for part in value.iter_parts() if isinstance(part, str)]
        best = max(parts, key=len, default="")
        # lower() of non-ASCII text can change length or depend on context; stay exact
        if len(best) >= MIN_LITERAL and best.isascii():
            return frozenset({best.lower()})
    return None


class Prefilter:
    """One automaton over the literals of some rules; maps an event to the rules it may match.

    ``literal_sets[n]`` belongs to rule ``n``; :meth:`which` answers the positions of the sets
    with a literal in the event, :meth:`literals_in` the literals themselves.
    """

    def __init__(self, literal_sets: Iterable[Literals]) -> None:
        owners: dict[str, list[int]] = {}
        for position, found in enumerate(literal_sets):
            for literal in found or ():
                owners.setdefault(literal, []).append(position)
        self.automaton: Any = ahocorasick.Automaton()
        for literal in sorted(owners):
            self.automaton.add_word(literal, (literal, tuple(owners[literal])))
        self.empty = not owners
        if not self.empty:
            self.automaton.make_automaton()

    def literals_in(self, event: Mapping[str, Any]) -> set[str]:
        if self.empty:
            return set()
        return {literal for _, (literal, _owners) in self.automaton.iter(event_text(event))}

    def which(self, event: Mapping[str, Any]) -> set[int]:
        if self.empty:
            return set()
        found: set[int] = set()
        for _, (_literal, owners) in self.automaton.iter(event_text(event)):
            found.update(owners)
        return found


def event_text(event: Mapping[str, Any]) -> str:
    """Every value of the event (lists flattened) as text, lower-cased, NUL-separated.

    Composed (NFC) first, as :func:`soc_core.casefolding.fold` composes what the matcher reads:
    a few characters compose to ASCII (U+037E to ``;``), and every ASCII letter or sign ``fold``
    gives, NFC then ``lower()`` gives too, so no event the matcher accepts is filtered out.
    """
    values = list(event.values())
    # the usual case, only strings, skips the flattening
    text = "\x00".join(values if all(value.__class__ is str for value in values) else _texts(values))
    return (text if text.isascii() else unicodedata.normalize("NFC", text)).lower()


def _texts(values: Iterable[Any]) -> Iterable[str]:
    for value in values:
        if isinstance(value, str):
            yield value
        elif isinstance(value, bool):
            yield "true" if value else "false"
        elif isinstance(value, int | float):
            yield str(value)
        elif isinstance(value, list):
            yield from _texts(value)


__all__ = ["MIN_LITERAL", "Literals", "Prefilter", "event_text", "literals_of", "rule_literals"]
