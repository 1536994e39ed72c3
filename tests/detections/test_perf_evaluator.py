"""The optimised streaming Evaluator returns exactly what a naive evaluation returns.

Naive: for every event, every SigmaHQ rule whose log source the event can satisfy
(:func:`detections.routing.event_logsources`, no route cache, no gates, no prefilter), run
through a matcher compiled without merged OR tests. Optimised: ``Evaluator.matching_rules``
with route caching, routing gates, per-route prefilter and merged matchers. Events: the OTRF
Windows corpus and the shipped samples as they are, then variants drawn by Hypothesis (fields
dropped or set to None, values upper-cased, event codes as numbers) so the route cache sees
events that differ in exactly what it keys on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detections.evaluation import CompiledRule, CompiledRuleSet, Evaluator, compile_ruleset, process_rule
from detections.loader import load_rules
from detections.matcher import compile_rule
from detections.routing import LogSource, event_logsources
from tests.detections.test_differential import SIGMAHQ, finish, otrf_events, shipped_sample_events

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not SIGMAHQ.is_dir(), reason="SigmaHQ rules not available")]

Event = Mapping[str, Any]


class Naive:
    """Log-source filter plus unmerged matchers, rule by rule."""

    def __init__(self, compiled: CompiledRuleSet) -> None:
        self.rules: list[tuple[CompiledRule, Callable[[Event], bool]]] = [
            (rule, compile_rule(process_rule(rule.loaded), where=rule.loaded.where, merge_or=False))
            for rule in compiled.rules
        ]

    def matching(self, event: Event) -> list[str]:
        sources = event_logsources(event)
        return sorted(
            rule.meta.id
            for rule, matcher in self.rules
            if any(_satisfies(rule.logsource, source) for source in sources) and _safe(matcher, event)
        )


def _satisfies(wanted: LogSource, offered: LogSource) -> bool:
    return all(want is None or want == got for want, got in zip(wanted, offered, strict=True))


def _safe(matcher: Callable[[Event], bool], event: Event) -> bool:
    try:
        return bool(matcher(event))
    except (TypeError, ValueError, AttributeError):
        return False


@pytest.fixture(scope="module")
def engines() -> tuple[Evaluator, Naive]:
    compiled = compile_ruleset(load_rules([SIGMAHQ.parent]), only_enabled=False)
    return Evaluator(compiled), Naive(compiled)


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return [finish(e) for e in otrf_events(3000)] + [finish(e) for e in shipped_sample_events()]


def optimised(evaluator: Evaluator, event: Event) -> list[str]:
    return sorted(rule.meta.id for rule in evaluator.matching_rules(event))


def test_optimised_equals_naive_over_corpus(engines: tuple[Evaluator, Naive], events: list[dict[str, Any]]) -> None:
    evaluator, naive = engines
    assert len(events) > 2000
    hits = 0
    for event in events:
        expected = naive.matching(event)
        assert optimised(evaluator, event) == expected, event["event.id"]
        hits += len(expected)
    assert hits >= 20  # the corpus does hit SigmaHQ rules
    assert not evaluator.stats.rule_failures


@st.composite
def variants(draw: st.DrawFn, corpus: list[dict[str, Any]]) -> dict[str, Any]:
    event = dict(draw(st.sampled_from(corpus)))
    names = sorted(event)
    for name in draw(st.lists(st.sampled_from(names), max_size=4)):
        if draw(st.booleans()):
            event.pop(name, None)
        else:
            event[name] = None
    for name in draw(st.lists(st.sampled_from(names), max_size=3)):
        if isinstance(event.get(name), str):
            event[name] = event[name].upper()
    code = event.get("event.code")
    if isinstance(code, str) and code.isdigit() and draw(st.booleans()):
        event["event.code"] = int(code)
    if draw(st.booleans()):
        event["event.code"] = draw(st.sampled_from(["1", "4688", "4104", "10", "13", "5156", 4624]))
    return event


def test_optimised_equals_naive_on_variants(engines: tuple[Evaluator, Naive], events: list[dict[str, Any]]) -> None:
    evaluator, naive = engines

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(variants(events))
    def check(event: dict[str, Any]) -> None:
        assert optimised(evaluator, event) == naive.matching(event)

    check()
