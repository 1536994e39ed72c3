"""Per-rule sample tests: ``samples/<rule-id>/match.jsonl`` and ``nomatch.jsonl`` beside a rule.

For a detection rule every event of ``match.jsonl`` must reach the rule through log-source
routing and match it; no event of ``nomatch.jsonl`` may. For a correlation rule the events of
``match.jsonl`` (in order) must make it fire at least once, and ``nomatch.jsonl`` never.
This is what ``soc rules test`` runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soc_core.errors import ParseError, RuleError

from .evaluation import Evaluator, compile_ruleset
from .loader import LoadedRule, RuleSet, rule_key

SAMPLE_FILES = ("match.jsonl", "nomatch.jsonl")


@dataclass
class SampleResult:
    rule_id: str
    title: str
    where: str
    checked: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures and self.checked > 0


def sample_dir(loaded: LoadedRule) -> Path:
    return loaded.path.parent / "samples" / loaded.id


def read_samples(path: Path) -> list[dict[str, Any]]:
    """Events of a JSON-lines file; blank lines skipped; ParseError names file:line."""
    events: list[dict[str, Any]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ParseError(f"not JSON: {exc.msg}", where=f"{path}:{number}") from exc
        if not isinstance(event, dict):
            raise ParseError("each line must be a JSON object (one event)", where=f"{path}:{number}")
        events.append(event)
    return events


def check_rule_samples(ruleset: RuleSet, loaded: LoadedRule) -> SampleResult:
    """Run one rule's sample files (rules it references come from ``ruleset``)."""
    result = SampleResult(loaded.id, loaded.title, loaded.where)
    folder = sample_dir(loaded)
    files = [folder / name for name in SAMPLE_FILES if (folder / name).is_file()]
    if not files:
        result.failures.append(f"no sample files in {folder}")
        return result
    subset = RuleSet()
    subset.rules[loaded.id] = loaded
    referencing = [loaded]  # a chained correlation needs the correlations it references, and theirs
    while referencing:
        rule = referencing.pop().rule
        for ref in getattr(rule, "referenced_rules", []):
            ref_loaded = ruleset.rules.get(rule_key(ref.rule))
            if ref_loaded is not None and ref_loaded.id not in subset.rules:
                subset.rules[ref_loaded.id] = ref_loaded
                referencing.append(ref_loaded)
    compiled = compile_ruleset(subset, only_enabled=False)
    if compiled.errors:
        result.failures.extend(error.render() for error in compiled.errors)
        return result
    for path in files:
        try:
            events = read_samples(path)
        except (ParseError, OSError) as exc:
            result.failures.append(str(exc))
            continue
        want_match = path.name == "match.jsonl"
        result.checked += len(events)
        if loaded.is_correlation:
            _check_correlation(Evaluator(compiled), loaded, events, want_match=want_match, path=path, result=result)
        else:
            _check_detection(Evaluator(compiled), loaded, events, want_match=want_match, path=path, result=result)
    return result


def _check_detection(
    evaluator: Evaluator,
    loaded: LoadedRule,
    events: list[dict[str, Any]],
    *,
    want_match: bool,
    path: Path,
    result: SampleResult,
) -> None:
    for number, event in enumerate(events, start=1):
        matched = any(rule.loaded.id == loaded.id for rule in evaluator.matching_rules(event))
        if matched != want_match:
            verb = "does not match" if want_match else "matches"
            result.failures.append(f"{path.name} event {number} ({event.get('event.id')}) {verb}")


def _check_correlation(
    evaluator: Evaluator,
    loaded: LoadedRule,
    events: list[dict[str, Any]],
    *,
    want_match: bool,
    path: Path,
    result: SampleResult,
) -> None:
    fired = [d for d in evaluator.evaluate(events) if d.rule.id == loaded.id]
    if want_match and not fired:
        result.failures.append(f"{path.name}: the {len(events)} events never make the rule fire")
    if not want_match and fired:
        groups = sorted({d.group_key for d in fired})
        result.failures.append(f"{path.name}: the rule fires for {groups}")


def check_samples(ruleset: RuleSet) -> list[SampleResult]:
    """Sample results for every rule of the set."""
    return [check_rule_samples(ruleset, loaded) for loaded in ruleset]


def samples_error(result: SampleResult) -> RuleError:
    """A failed sample result as an error for CLI output."""
    return RuleError("; ".join(result.failures) or "no samples", where=result.where)


__all__ = [
    "SAMPLE_FILES",
    "SampleResult",
    "check_rule_samples",
    "check_samples",
    "read_samples",
    "sample_dir",
    "samples_error",
]
