"""Events/s of detections.workers.ShardedEvaluator with 1 vs N worker processes, in the same run.

    .venv/bin/python bench/bench_detection_scaling.py [--copies N] [--workers N] [--repeat N]

Rules: every SigmaHQ rule that compiles. Events: the OTRF Windows corpus plus the shipped rule
samples (as in bench_detection.py), repeated ``--copies`` times with fresh event ids so a run
lasts long enough to compare processes. Each figure is the best of ``--repeat`` runs of
``Evaluator.evaluate`` (one process, the reference) and of ``ShardedEvaluator.run`` with 1 and
``--workers`` workers, after one untimed warm-up run each (steady state: a long-running engine
has warm route caches; fork happens outside the timing). The runs of the three set-ups
alternate, so background load hits them alike. Not pinned: the N-worker figure needs N cores,
and the parent overlaps taking in the workers' parts with their matching, so even "1 worker"
uses a little of a second core; the one-process figure is the one-core reference. The load
average is printed before and after: a figure taken with load > 1 on 2 cores is noise.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_detection import cpu_model  # noqa: E402  (bench/ is on sys.path when run as a script)

from detections.alerts import Detection  # noqa: E402
from detections.engine import Evaluator, compile_ruleset  # noqa: E402
from detections.loader import load_rules  # noqa: E402
from detections.workers import ShardedEvaluator, ShardReader, dealt  # noqa: E402
from tests.detections.test_differential import SIGMAHQ, finish, otrf_events, shipped_sample_events  # noqa: E402

Event = Mapping[str, Any]


def corpus(copies: int) -> list[Event]:
    base = [finish(e) for e in otrf_events(3000)] + [finish(e) for e in shipped_sample_events()]
    return [{**event, "event.id": f"{event['event.id']}-{copy}"} for copy in range(copies) for event in base]


def shards(events: list[Event]) -> ShardReader:
    """Every call reads the whole shard again, so one pool serves the warm-up and the timed runs."""
    return lambda shard, count: ((position, events[position]) for position in dealt(len(events), count, shard))


def timed(run: Callable[[], list[Detection]]) -> tuple[float, int]:
    started = time.perf_counter()
    detections = run()
    return time.perf_counter() - started, len(detections)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: nproc {os.cpu_count()}, {cpu_model()}, Python {platform.python_version()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    events = corpus(args.copies)
    started = time.perf_counter()
    compiled = compile_ruleset(load_rules([SIGMAHQ.parent]), only_enabled=False)
    print(f"{len(compiled.rules)} SigmaHQ rules compiled in {time.perf_counter() - started:.1f}s; {len(events)} events")
    evaluator = Evaluator(compiled)
    pools = [ShardedEvaluator(compiled, shards(events), workers=n) for n in (1, args.workers)]
    setups: dict[str, Callable[[], list[Detection]]] = {
        "one process (Evaluator.evaluate)": lambda: evaluator.evaluate(events),
        "ShardedEvaluator, 1 worker": pools[0].run,
        f"ShardedEvaluator, {args.workers} workers": pools[1].run,
    }
    # the first run warms route caches and copy-on-write pages and is the one compared; later
    # runs replay the same events into correlation windows that already hold them
    found = {name: len(run()) for name, run in setups.items()}
    assert len(set(found.values())) == 1, f"set-ups disagree on detections: {found}"
    best: dict[str, float] = dict.fromkeys(setups, float("inf"))
    for _ in range(args.repeat):
        for name, run in setups.items():
            best[name] = min(best[name], timed(run)[0])
    for pool in pools:
        pool.close()
    one_worker = len(events) / best["ShardedEvaluator, 1 worker"]
    one_process = len(events) / best["one process (Evaluator.evaluate)"]
    for name, elapsed in best.items():
        rate = len(events) / elapsed
        print(
            f"{name}: {rate:,.0f} events/s ({found[name]} detections in the warm-up); "
            f"vs 1 worker {rate / one_worker:.2f}x, vs one process {rate / one_process:.2f}x"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
