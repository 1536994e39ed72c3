"""Events/s through DetectionEngine from a store with 1 vs N worker processes, in the same run.

    .venv/bin/python bench/bench_detection_scaling.py [--copies N] [--workers N] [--repeat N]
                                                      [--limit N] [--es URL]

Rules: every SigmaHQ rule that compiles. Events: the OTRF Windows corpus plus the shipped rule
samples (as in bench_detection.py), repeated ``--copies`` times with fresh event ids, written
into a store: SQLite in a temporary directory, or Elasticsearch at ``--es`` (indices under a
throwaway prefix, deleted at the end). Each set-up — ``detection.workers`` 1 (one process: the
one-core reference) and ``--workers`` — has its own store holding the same events and its own
engine, kept for the whole run as in a long-running server (warm route caches, workers forked
once). A run is ``DetectionEngine.run_until_idle`` in batches of ``--limit`` from an empty
checkpoint and empty correlation windows: the whole path — planning, reading and decoding the
events, matching, emitting, writing alerts (the warm-up run creates them; timed runs update
them, alike in both set-ups) and saving checkpoints. Each set-up gets one untimed warm-up run,
then the best of ``--repeat`` runs, the set-ups alternating so background load hits them
alike. Both set-ups must find the same detections and alerts. The load average is printed
before and after: on 2 cores a figure taken at load > 1 is noise.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_detection import cpu_model  # noqa: E402  (bench/ is on sys.path when run as a script)

from detections.engine import CHECKPOINT_ID, CHECKPOINT_KIND, DetectionEngine, RunResult  # noqa: E402
from detections.loader import RuleSet, load_rules  # noqa: E402
from soc_core.events import Event  # noqa: E402
from soc_core.store import ElasticsearchStore, SqliteStore, Store  # noqa: E402
from tests.detections.test_differential import SIGMAHQ, finish, otrf_events, shipped_sample_events  # noqa: E402

WRITE_CHUNK = 5000


def corpus(copies: int) -> list[Event]:
    base = [finish(e) for e in otrf_events(3000)] + [finish(e) for e in shipped_sample_events()]
    return [{**event, "event.id": f"{event['event.id']}-{copy}"} for copy in range(copies) for event in base]


@contextmanager
def filled_store(events: list[Event], *, es: str | None, where: Path) -> Iterator[Store]:
    """A new store holding ``events``, removed afterwards."""
    store: Store
    if es:
        store = ElasticsearchStore(es, prefix="bench" + uuid.uuid4().hex[:10], request_timeout=120)
    else:
        store = SqliteStore(where / f"{uuid.uuid4().hex}.db")
    store.setup()
    try:
        for start in range(0, len(events), WRITE_CHUNK):
            result = store.add_events(events[start : start + WRITE_CHUNK])
            assert all(item.stored for item in result.items), "the store refused events"
        yield store
    finally:
        if isinstance(store, ElasticsearchStore):  # concrete names: action.destructive_requires_name
            for name in store.client.indices.get(index=f"{store.prefix}-*", allow_no_indices=True):
                store.client.indices.delete(index=name)
            for template in ("events", "docs", "docs-checkpoints"):
                store.client.indices.delete_index_template(name=f"{store.prefix}-{template}")
        store.close()


def rewind(engine: DetectionEngine, empty_windows: dict[str, Any]) -> None:
    """Back to the start of the stream with empty correlation windows, as a restart would load them."""
    engine.store.put_doc(CHECKPOINT_KIND, CHECKPOINT_ID, {"checkpoint": None, "correlation": empty_windows})
    engine.load_state()


def timed(engine: DetectionEngine, empty_windows: dict[str, Any], limit: int) -> tuple[float, RunResult]:
    rewind(engine, empty_windows)
    started = time.perf_counter()
    result = engine.run_until_idle(limit=limit)
    return time.perf_counter() - started, result


def alerts_of(store: Store) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    cursor = None
    while True:
        page = store.list_docs("alerts", size=1000, cursor=cursor)
        found.extend((doc.id, doc.body.get("rule.id"), doc.body.get("count")) for doc in page.items)
        if page.next_cursor is None:
            return sorted(found)
        cursor = page.next_cursor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--limit", type=int, default=5000, help="events per batch (detection.batch_size)")
    parser.add_argument("--es", metavar="URL", help="an Elasticsearch node instead of SQLite")
    args = parser.parse_args()
    print(f"machine: nproc {os.cpu_count()}, {cpu_model()}, Python {platform.python_version()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    events = corpus(args.copies)
    started = time.perf_counter()
    rules: RuleSet = load_rules([SIGMAHQ.parent])
    print(f"{len(rules.rules)} SigmaHQ rules loaded in {time.perf_counter() - started:.1f}s; {len(events)} events")
    counts = {"one process (workers=1)": 1, f"{args.workers} workers": args.workers}
    with ExitStack() as stack:
        where = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-scaling-")))
        engines: dict[str, DetectionEngine] = {}
        for name, workers in counts.items():
            store = stack.enter_context(filled_store(events, es=args.es, where=where))
            engines[name] = stack.enter_context(DetectionEngine(rules, store, workers=workers))
        first = next(iter(engines.values()))
        print(
            f"{len(first.compiled.rules)} rules compiled ({len(first.errors)} did not); "
            f"{'Elasticsearch ' + args.es if args.es else 'SQLite'} store; batches of {args.limit}"
        )
        empty_windows = first.evaluator.correlation.snapshot()
        # the warm-up: route caches filled, workers forked, alerts created
        found = {name: timed(engine, empty_windows, args.limit)[1] for name, engine in engines.items()}
        best: dict[str, float] = dict.fromkeys(engines, float("inf"))
        for _ in range(args.repeat):
            for name, engine in engines.items():
                elapsed, result = timed(engine, empty_windows, args.limit)
                best[name] = min(best[name], elapsed)
                assert (result.events, result.detections) == (found[name].events, found[name].detections)
        alerts = {name: alerts_of(engine.store) for name, engine in engines.items()}
    summary = {name: (result.events, result.detections, result.redone_in_process) for name, result in found.items()}
    assert len(set(summary.values())) == 1, f"set-ups disagree (events, detections, batches redone): {summary}"
    assert len({tuple(found) for found in alerts.values()}) == 1, "set-ups wrote different alerts"
    reference = len(events) / best["one process (workers=1)"]
    for name, elapsed in best.items():
        rate = len(events) / elapsed
        print(
            f"{name}: {rate:,.0f} events/s ({found[name].detections} detections, "
            f"{len(alerts[name])} alerts); vs one process {rate / reference:.2f}x"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
