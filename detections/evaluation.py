"""Evaluation: compiled rules, and the :class:`Evaluator` that runs them over a stream of events.

:func:`compile_ruleset` turns a :class:`~detections.loader.RuleSet` into :class:`CompiledRule`
objects (matcher, routing gate, prefilter literals, tenant scope) and correlation specs,
collecting every error. The :class:`Evaluator` is the pure core of the engine: compiled rules,
routing (:mod:`detections.routing`) and correlation windows; events in,
:class:`~detections.alerts.Detection` out. Its stateless half (:meth:`Evaluator.stream_match`)
runs in the worker processes of :mod:`detections.workers` too; its stateful half
(:meth:`Evaluator.emit`) runs only in the engine's own process, in stream order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaRule

from soc_core.errors import RuleError
from soc_core.events import TENANT_FIELD

from .alerts import Detection, RuleMeta, detection_from_event, entities_of, trigger_of
from .correlation import CorrelationEngine, CorrelationHit, CorrelationSpec
from .loader import LoadedRule, RuleSet, RuleSummary, translate_sigma_error
from .matcher import Matcher, compile_gate_trees, compile_trees, needed_fields_of
from .pipelines import canhgac_pipeline
from .prefilter import Literals, literals_of
from .routing import ROUTING_VALUE_FIELDS, LogSource, Router
from .targets.walk import conditions

log = logging.getLogger(__name__)


@dataclass
class CompiledRule:
    loaded: LoadedRule
    meta: RuleMeta
    matcher: Matcher
    logsource: LogSource
    alerts: bool
    literals: Literals = None
    gate: Matcher | None = None
    needs: frozenset[str] = frozenset()  # fields every event the rule matches has
    scope: frozenset[str] | None = None  # the only tenants whose events it is evaluated on (None: all)


@dataclass
class CompiledRuleSet:
    rules: list[CompiledRule] = field(default_factory=list)
    correlations: list[CorrelationSpec] = field(default_factory=list)
    correlation_meta: dict[str, RuleMeta] = field(default_factory=dict)
    errors: list[RuleError] = field(default_factory=list)


def process_rule(
    loaded: LoadedRule, pipeline_factory: Callable[[], ProcessingPipeline] = canhgac_pipeline
) -> SigmaRule:
    """A private copy of a detection rule run through the pipeline for its schema."""
    rule = loaded.fresh()
    assert isinstance(rule, SigmaRule)
    try:
        pipeline_factory().apply(rule)
    except SigmaError as exc:
        raise translate_sigma_error(exc, loaded.where) from exc
    return rule


def compile_detection_rule(
    loaded: LoadedRule, pipeline_factory: Callable[[], ProcessingPipeline] = canhgac_pipeline
) -> CompiledRule:
    """The rule's matcher, gate and prefilter literals. A rule from the compiled-rule cache
    (:mod:`detections.rulecache`) brings its processed condition trees, or the reason it does
    not compile; they hold for :func:`canhgac_pipeline` only."""
    summary = loaded.summary
    if summary is not None and pipeline_factory is canhgac_pipeline:
        if summary.error is not None:
            raise summary.error
        if summary.trees is not None:
            return _deferred(loaded, summary)
    rule = process_rule(loaded, pipeline_factory)
    trees = conditions(rule, loaded.where)  # parsed once for the matcher, gate, literals and needs
    original = loaded.rule
    assert isinstance(original, SigmaRule)
    source = original.logsource
    logsource = (source.product, source.category, source.service)
    return _compiled(loaded, trees, logsource, literals_of(trees), needed_fields_of(trees))


def _compiled(
    loaded: LoadedRule, trees: list[object], logsource: LogSource, literals: Literals, needs: frozenset[str]
) -> CompiledRule:
    return CompiledRule(
        loaded=loaded,
        meta=RuleMeta.from_loaded(loaded),
        matcher=compile_trees(trees, where=loaded.where),
        logsource=logsource,
        alerts=loaded.generates_alerts,
        literals=literals,
        gate=compile_gate_trees(trees, value_fields=ROUTING_VALUE_FIELDS, where=loaded.where),
        needs=needs,
    )


def _deferred(loaded: LoadedRule, summary: RuleSummary) -> CompiledRule:
    """A cached rule whose matcher and gate are built on first use: a warm start then builds
    only the rules its events reach (these trees compiled when the entry was made, so building
    them again cannot fail but for a bug, which is logged and matches nothing)."""
    assert summary.trees is not None
    build_trees, where = summary.trees, loaded.where
    trees: list[object] = []

    def parsed() -> list[object]:
        if not trees:
            trees.extend(build_trees())
        return trees

    compiled = CompiledRule(
        loaded=loaded,
        meta=RuleMeta.from_loaded(loaded),
        matcher=_never,
        logsource=summary.logsource,
        alerts=loaded.generates_alerts,
        literals=summary.literals,
        needs=summary.needs,
    )

    def matcher(event: Mapping[str, Any]) -> bool:
        compiled.matcher = _built(lambda: compile_trees(parsed(), where=where), where) or _never
        return compiled.matcher(event)

    def gate(event: Mapping[str, Any]) -> bool:
        built = _built(lambda: compile_gate_trees(parsed(), value_fields=ROUTING_VALUE_FIELDS, where=where), where)
        compiled.gate = built or _always
        return compiled.gate(event)

    compiled.matcher, compiled.gate = matcher, gate
    return compiled


def _built(build: Callable[[], Matcher | None], where: str) -> Matcher | None:
    try:
        return build()
    except RuleError as exc:
        log.error("cached rule %s did not compile: %s", where, exc.render())
    except (LookupError, TypeError, ValueError) as exc:  # an entry of the wrong shape
        log.error("cached rule %s could not be rebuilt: %r", where, exc)
    return _never


def _never(event: Mapping[str, Any]) -> bool:
    return False


def _always(event: Mapping[str, Any]) -> bool:
    return True


def compile_ruleset(
    ruleset: RuleSet,
    *,
    pipeline_factory: Callable[[], ProcessingPipeline] = canhgac_pipeline,
    only_enabled: bool = True,
    scopes: Mapping[str, Sequence[str] | None] | None = None,
) -> CompiledRuleSet:
    """Compile every (enabled) rule; errors are collected, never raised.

    ``scopes`` (rule id → tenants, from :class:`~detections.lifecycle.RulePolicy`) limits the
    events each rule and correlation is evaluated on.
    """
    scope_of = _scope_reader(scopes or {})
    compiled = CompiledRuleSet()
    wanted = [r for r in ruleset if r.enabled or not only_enabled]
    needed: set[str] = {r.id for r in wanted if not r.is_correlation}
    specs: list[tuple[LoadedRule, CorrelationSpec]] = []
    for loaded in wanted:
        if not loaded.is_correlation:
            continue
        rule = loaded.rule
        assert isinstance(rule, SigmaCorrelationRule)
        try:
            spec = CorrelationSpec.from_rule(rule, where=loaded.where)
        except RuleError as exc:
            compiled.errors.append(exc)
            continue
        spec = replace(spec, scope=scope_of(loaded.id))
        specs.append((loaded, spec))
        needed.update(rid for rid in spec.rule_ids if rid in ruleset.rules and not ruleset.rules[rid].is_correlation)
    ok: set[str] = set()
    for rule_id in needed:
        loaded = ruleset.rules[rule_id]
        try:
            detection = compile_detection_rule(loaded, pipeline_factory)
        except RuleError as exc:
            compiled.errors.append(exc)
            continue
        detection.scope = scope_of(rule_id)
        if not detection.alerts:  # only its correlations' agencies need it
            users = [spec.scope for _, spec in specs if rule_id in spec.rule_ids]
            if users and all(user is not None for user in users):
                agencies = frozenset[str]().union(*[user for user in users if user is not None])
                detection.scope = agencies if detection.scope is None else detection.scope & agencies
        compiled.rules.append(detection)
        ok.add(rule_id)
    # a chained correlation needs the correlations it references: settle them first
    pending = list(specs)
    while pending:
        waiting = []
        for loaded, spec in pending:
            missing = [rid for rid in spec.rule_ids if rid not in ok]
            if not missing:
                compiled.correlations.append(spec)
                compiled.correlation_meta[spec.rule_id] = RuleMeta.from_loaded(loaded)
                ok.add(spec.rule_id)
            elif any(rid in {other.rule_id for _, other in pending} for rid in missing):
                waiting.append((loaded, spec))
            else:
                compiled.errors.append(
                    RuleError(
                        f"correlation disabled: referenced rules did not compile or are disabled: {missing}",
                        where=loaded.where,
                    )
                )
        if len(waiting) == len(pending):  # a cycle of correlations referencing each other
            for loaded, spec in waiting:
                compiled.errors.append(
                    RuleError(
                        f"correlation disabled: it references itself through {list(spec.rule_ids)}",
                        where=loaded.where,
                        hint="a chain of correlation rules must end in detection rules",
                    )
                )
            break
        pending = waiting
    compiled.rules.sort(key=lambda c: c.loaded.id)
    return compiled


def _scope_reader(scopes: Mapping[str, Sequence[str] | None]) -> Callable[[str], frozenset[str] | None]:
    def scope_of(rule_id: str) -> frozenset[str] | None:
        scope = scopes.get(rule_id)
        return frozenset(scope) if scope is not None else None

    return scope_of


def tenant_and_id(event: Mapping[str, Any]) -> tuple[str, str]:
    """An event's key within a batch: ``event.id`` is unique per tenant, not across tenants."""
    return str(event.get(TENANT_FIELD, "")), str(event.get("event.id", ""))


@dataclass
class EvaluatorStats:
    events: int = 0
    matches: int = 0
    correlation_hits: int = 0
    skipped_events: int = 0
    rule_failures: dict[str, int] = field(default_factory=dict)


class Evaluator:
    """Pure core: compiled rules + routing + correlation windows; events in, detections out."""

    def __init__(
        self,
        compiled: CompiledRuleSet,
        *,
        max_keys: int = 100_000,
        max_items: int = 1_000,
        use_prefilter: bool = True,
    ) -> None:
        self.compiled = compiled
        self.router: Router[CompiledRule] = Router(compiled.rules)
        self.correlation = CorrelationEngine(compiled.correlations, max_keys=max_keys, max_items=max_items)
        self.stats = EvaluatorStats()
        self.use_prefilter = use_prefilter

    def candidates(self, event: Mapping[str, Any]) -> Iterable[CompiledRule]:
        """Rules routed to the event, minus those whose required literals it lacks."""
        route = self.router.route(event)
        if not self.use_prefilter:
            return route.rules
        if not route.gated:
            return route.always
        found = route.prefilter.which(event)
        if not found:
            return route.always
        gated = route.gated
        return [*route.always, *(gated[position] for position in sorted(found))]

    def matching_rules(self, event: Mapping[str, Any]) -> list[CompiledRule]:
        matched = []
        for rule in self.candidates(event):
            try:
                if rule.matcher(event):
                    matched.append(rule)
            except (TypeError, ValueError, AttributeError) as exc:
                failures = self.stats.rule_failures
                failures[rule.meta.id] = failures.get(rule.meta.id, 0) + 1
                log.warning("rule %s failed on event %s: %s", rule.meta.id, event.get("event.id"), exc)
        return matched

    def evaluate(self, events: Iterable[Mapping[str, Any]]) -> list[Detection]:
        return self.emit((event, self.stream_match(event)) for event in events)

    def stream_match(self, event: Mapping[str, Any]) -> list[CompiledRule]:
        """The rules an event of the stream matches (none for an event without a tenant), counted."""
        self.stats.events += 1
        tenant = event.get(TENANT_FIELD)
        if not isinstance(tenant, str) or not tenant:
            self.stats.skipped_events += 1
            return []
        return self.matching_rules(event)

    def emit(self, matches: Iterable[tuple[Mapping[str, Any], Sequence[CompiledRule]]]) -> list[Detection]:
        """Detections and correlation hits for (event, matched rules) pairs in stream order.

        The stateful half of :meth:`evaluate`: :mod:`detections.workers` matches in several
        processes and feeds the results here, in stream order, so correlations see what a
        single process would.
        """
        detections: list[Detection] = []
        by_id: dict[tuple[str, str], Mapping[str, Any]] = {}  # ids are unique per tenant only
        for event, matched in matches:
            if not matched:
                continue
            self.stats.matches += len(matched)
            by_id[tenant_and_id(event)] = event
            for rule in matched:
                if rule.alerts:
                    detections.append(detection_from_event(rule.meta, event))
                for hit in self.correlation.feed(rule.meta.id, event):
                    self.stats.correlation_hits += 1
                    detections.append(self._from_hit(hit, event, by_id))
        return detections

    def _from_hit(
        self, hit: CorrelationHit, trigger: Mapping[str, Any], by_id: Mapping[tuple[str, str], Mapping[str, Any]]
    ) -> Detection:
        window_events = [by_id[(hit.tenant, eid)] for eid in hit.event_ids if (hit.tenant, eid) in by_id] or [trigger]
        entities = entities_of(window_events)
        for name, value in hit.group.items():
            values = entities.setdefault(name, [])
            if str(value) not in values:
                values.insert(0, str(value))
        return Detection(
            rule=self.compiled.correlation_meta[hit.rule_id],
            tenant=hit.tenant,
            group=dict(hit.group),
            event_ids=list(hit.event_ids),
            count=hit.count,
            first_seen=hit.first_seen,
            last_seen=hit.last_seen,
            entities=entities,
            fresh=hit.fresh,
            distinct=hit.distinct,
            trigger=trigger_of(trigger),
        )


__all__ = [
    "CompiledRule",
    "CompiledRuleSet",
    "Evaluator",
    "EvaluatorStats",
    "compile_detection_rule",
    "compile_ruleset",
    "process_rule",
    "tenant_and_id",
]
