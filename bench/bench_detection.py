"""Events/s through the streaming Evaluator vs the naive baseline, in the same run, on one core.

    .venv/bin/python bench/bench_detection.py [--events N] [--naive-events N] [--repeat N]

(a) the shipped rules, (b) every SigmaHQ rule that compiles. Events: OTRF Windows captures
mapped to our fields (the differential test's converter) plus the shipped rule samples. The
baseline runs every rule's matcher, compiled without merged OR tests, on every event: no
log-source routing, no gates, no prefilter. The streaming figure is given cold (a fresh
Evaluator per run: every route built during the run) and warm (route caches filled, as in a
long-running engine).
Results go to BENCHMARKS.md by hand.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from detections.evaluation import CompiledRuleSet, Evaluator, compile_ruleset, process_rule  # noqa: E402
from detections.loader import load_rules, shipped_rules_dir  # noqa: E402
from detections.matcher import compile_rule  # noqa: E402
from tests.detections.test_differential import (  # noqa: E402
    SIGMAHQ,
    finish,
    otrf_events,
    shipped_sample_events,
)

Event = Mapping[str, Any]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def rate(run: Callable[[Sequence[Event]], int], events: Sequence[Event], repeat: int) -> tuple[float, int]:
    """Best events/s over ``repeat`` runs, and the matches of the last run."""
    best = 0.0
    matches = 0
    for _ in range(repeat):
        started = time.perf_counter()
        matches = run(events)
        elapsed = time.perf_counter() - started
        best = max(best, len(events) / elapsed)
    return best, matches


def streaming(compiled: CompiledRuleSet, *, warm: bool) -> Callable[[Sequence[Event]], int]:
    """Cold: a fresh Evaluator per run (route caches empty); warm: one Evaluator, already run."""
    kept = Evaluator(compiled)

    def run(events: Sequence[Event]) -> int:
        evaluator = kept if warm else Evaluator(compiled)
        return sum(len(evaluator.matching_rules(event)) for event in events)

    return run


def naive(compiled: CompiledRuleSet) -> Callable[[Sequence[Event]], int]:
    """Every rule's matcher as first written (no merged OR tests) on every event."""
    matchers = [compile_rule(process_rule(rule.loaded), merge_or=False) for rule in compiled.rules]

    def run(events: Sequence[Event]) -> int:
        return sum(1 for event in events for matcher in matchers if matcher(event))

    return run


def bench(name: str, compiled: CompiledRuleSet, events: list[Event], naive_events: int, repeat: int) -> None:
    cold, fast_matches = rate(streaming(compiled, warm=False), events, repeat)
    warm_run = streaming(compiled, warm=True)
    warm_run(events)
    warm, _ = rate(warm_run, events, repeat)
    subset = events[:naive_events]
    slow, _ = rate(naive(compiled), subset, 1)
    print(
        f"{name}: {len(compiled.rules)} rules ({len(compiled.errors)} did not compile); "
        f"streaming cold {cold:,.0f} events/s, warm {warm:,.0f} events/s over {len(events)} events "
        f"({fast_matches} matches); naive {slow:,.1f} events/s over {len(subset)} events; "
        f"ratio cold {cold / slow:,.1f}x, warm {warm / slow:,.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--naive-events", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    print(f"machine: nproc {os.cpu_count()}, {cpu_model()}, Python {platform.python_version()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    events: list[Event] = [finish(e) for e in otrf_events(args.events)] + [finish(e) for e in shipped_sample_events()]
    events = events[: args.events]
    shipped = compile_ruleset(load_rules([shipped_rules_dir()]), only_enabled=False)
    bench("shipped rules", shipped, events, args.naive_events * 10, args.repeat)
    if SIGMAHQ.is_dir():
        started = time.perf_counter()
        ruleset = load_rules([SIGMAHQ.parent])
        compiled = compile_ruleset(ruleset, only_enabled=False)
        print(f"loaded and compiled SigmaHQ in {time.perf_counter() - started:.1f}s")
        bench("SigmaHQ rules", compiled, events, args.naive_events, args.repeat)


if __name__ == "__main__":
    main()
