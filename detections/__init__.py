"""Sigma detection: load rules, map fields per schema, match events, correlate, raise alerts.

::

    loader      YAML → RuleSet (rules by id + every RuleError with file:line)
    pipelines   pySigma processing pipelines per schema (linux, web, windows, network)
    matcher     one processed rule → Python predicate over flat ECS events
    prefilter   Aho-Corasick over the literals each rule requires
    correlation event_count / value_count / temporal / temporal_ordered, sliding windows
    alerts      alert documents and suppression (pure)
    engine      routing by log source, Evaluator (pure core), DetectionEngine (store shell)
    samples     per-rule match/nomatch sample tests
"""

from .alerts import Detection, RuleMeta, group_detections
from .correlation import CorrelationEngine, CorrelationSpec
from .engine import DetectionEngine, Evaluator, RunResult, compile_ruleset, event_logsources
from .loader import LoadedRule, RuleSet, load_rule_text, load_rules, shipped_rules_dir
from .matcher import compile_rule
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
