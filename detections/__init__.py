"""Sigma detection: load rules, map fields per schema, match events, correlate, raise alerts.

The module map, one line per module of the package and of its subpackages (a subpackage's
modules as ``package.module``; ``tests/detections/test_i10_3_layout.py`` checks it is complete)::

    loader      YAML → RuleSet (rules by id + every RuleError with file:line)
    pipelines   pySigma processing pipelines per schema (linux, web, windows, network)
    matcher     one processed rule → Python predicate over flat ECS events; routing gates
    targets/    the rule targets over one condition walk (RE2 itself is soc_core.regex):
    targets.walk           ConditionWalk and the value helpers every target shares
    targets.sql            one processed rule → a WHERE fragment for the SQLite store
    targets.lucene_regex   RE2 regex syntax → Lucene regexp syntax
    targets.elasticsearch  one processed rule → query DSL for the Elasticsearch store
    targets.query          a loaded rule as the Store's RuleQuery (Store.rule_query_pages)
    prefilter   Aho-Corasick over the literals each rule requires
    routing     log-source table, ROUTING_FIELDS, Router: which rules an event meets
    evaluation  CompiledRule, compile_ruleset, Evaluator (pure core: events in, detections out)
    correlation event_count / value_count / temporal / temporal_ordered, sliding windows, chaining
    alerts      alert documents and suppression (pure)
    intel       IntelDetector: events on a threat-intel list become detections (intel.lookup)
    workers     WorkerPool: the Evaluator's matching over forked processes
    watchdog    a slow batch's slowest rules
    engine      DetectionEngine: the store shell (batches, checkpoint, alert writes)
    rulecache   the compiled-rule cache: loaded + processed rules on disk, signed JSON, per rule file
    lifecycle   custom rules, enable/disable, tenant scopes and exceptions (versioned)
    backtest    a rule over stored history through Store.rule_query_pages, routed as the engine does
    coverage    the detection-coverage table: ATT&CK technique, rules, detected from log / wire / both
    samples     per-rule match/nomatch sample tests
    cli         ``soc rules``: check, list, test, import, backtest
"""

from .alerts import Detection, RuleMeta, group_detections
from .correlation import CorrelationEngine, CorrelationSpec
from .engine import DetectionEngine, RunResult
from .evaluation import Evaluator, compile_ruleset
from .loader import LoadedRule, RuleSet, load_rule_text, load_rules, shipped_rules_dir
from .matcher import compile_rule
from .routing import event_logsources
from .samples import SampleResult, check_rule_samples, check_samples

__all__ = [
    "CorrelationEngine",
    "CorrelationSpec",
    "Detection",
    "DetectionEngine",
    "Evaluator",
    "LoadedRule",
    "RuleMeta",
    "RuleSet",
    "RunResult",
    "SampleResult",
    "check_rule_samples",
    "check_samples",
    "compile_rule",
    "compile_ruleset",
    "event_logsources",
    "group_detections",
    "load_rule_text",
    "load_rules",
    "shipped_rules_dir",
]
