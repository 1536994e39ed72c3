"""The streaming Evaluator over several processes: stateless matching sharded, state kept in one.

Matching an event (routing, prefilter, compiled matchers) needs no state and is where the time
goes; alerts and correlation windows need the stream order. So :class:`ShardedEvaluator`
forks ``workers`` processes, each holding the compiled rule set (inherited through fork:
compiled matchers are closures and do not pickle) and reading its *own* shard of the stream
through a :data:`ShardReader` — events are never pickled to the workers. A worker sends back
only the events that matched something, with their stream position and the positions of the
rules they matched; matches are rare, so that traffic is small. The parent merges them in
stream order and hands them to :meth:`detections.engine.Evaluator.emit`, which writes
detections and feeds the correlation windows exactly as a single process would.

Because of that split, any partition of the stream gives the same detections as one process
(the tests check it): a partition by (tenant, group key) is not needed for correlation
correctness. The reader decides the partition — round-robin over a list, a hash of the event id
over a store, one file per worker.

Delivery: :meth:`ShardedEvaluator.run` returns after every worker has finished its shard of the
batch; a worker that fails or dies raises :class:`WorkerError` and nothing of the batch is
emitted, so the caller can retry it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any

from soc_core.errors import ConfigError, SocError

from .alerts import Detection
from .engine import CompiledRuleSet, Evaluator

Event = Mapping[str, Any]
ShardReader = Callable[[int, int], Iterable[tuple[int, Event]]]
"""``reader(shard, shards)`` → the next batch of that shard as (stream position, event) pairs,
in stream order. Called in the worker process, once per :meth:`ShardedEvaluator.run`."""


class WorkerError(SocError):
    """A detection worker process failed or died while matching its shard."""


@dataclass
class ShardResult:
    """What one worker reports for one batch: matched events and counters."""

    matched: list[tuple[int, Event, list[int]]] = field(default_factory=list)
    events: int = 0
    skipped_events: int = 0
    rule_failures: dict[str, int] = field(default_factory=dict)


def match_shard(evaluator: Evaluator, events: Iterable[tuple[int, Event]]) -> ShardResult:
    """Match one shard: the stateless half of :meth:`Evaluator.evaluate`."""
    position_of = evaluator.router.position
    stats = evaluator.stats
    before_events, before_skipped = stats.events, stats.skipped_events
    before_failures = dict(stats.rule_failures)
    result = ShardResult()
    for position, event in events:
        rules = evaluator.stream_match(event)
        if rules:
            result.matched.append((position, event, [position_of[id(rule)] for rule in rules]))
    result.events = stats.events - before_events
    result.skipped_events = stats.skipped_events - before_skipped
    result.rule_failures = {
        rule_id: count - before_failures.get(rule_id, 0)
        for rule_id, count in stats.rule_failures.items()
        if count != before_failures.get(rule_id, 0)
    }
    return result


def _serve(conn: Connection, evaluator: Evaluator, reader: ShardReader, shard: int, shards: int) -> None:
    while conn.recv():
        try:
            result = match_shard(evaluator, reader(shard, shards))
        except Exception as exc:  # reported to the parent, which raises WorkerError
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        else:
            conn.send(("ok", result))
    conn.close()


class ShardedEvaluator:
    """``workers`` forked matcher processes and one :class:`Evaluator` for alerts and correlation."""

    def __init__(
        self,
        compiled: CompiledRuleSet,
        reader: ShardReader,
        *,
        workers: int = 2,
        max_keys: int = 100_000,
        max_items: int = 1_000,
    ) -> None:
        if workers < 1:
            raise ConfigError(f"detection workers: need at least 1, not {workers}")
        if "fork" not in multiprocessing.get_all_start_methods():
            raise WorkerError("detection workers need the fork start method (compiled rules do not pickle)")
        self.evaluator = Evaluator(compiled, max_keys=max_keys, max_items=max_items)
        context = multiprocessing.get_context("fork")
        self._conns: list[Connection] = []
        self._procs: list[BaseProcess] = []
        for shard in range(workers):
            parent, child = context.Pipe()
            proc = context.Process(
                target=_serve,
                args=(child, self.evaluator, reader, shard, workers),
                name=f"detection-worker-{shard}",
                daemon=True,
            )
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)

    @property
    def workers(self) -> int:
        return len(self._procs)

    def run(self) -> list[Detection]:
        """Every worker matches its next shard batch; detections in stream order."""
        for conn in self._conns:
            conn.send(True)
        results: list[ShardResult] = []
        for shard, conn in enumerate(self._conns):
            try:
                status, payload = conn.recv()
            except EOFError as exc:
                raise WorkerError(f"detection worker {shard} died (exit code {self._procs[shard].exitcode})") from exc
            if status != "ok":
                raise WorkerError(f"detection worker {shard} failed: {payload}")
            results.append(payload)
        rules = self.evaluator.router.rules
        stats = self.evaluator.stats
        for result in results:
            stats.events += result.events
            stats.skipped_events += result.skipped_events
            for rule_id, count in result.rule_failures.items():
                stats.rule_failures[rule_id] = stats.rule_failures.get(rule_id, 0) + count
        matched = sorted((item for result in results for item in result.matched), key=lambda item: item[0])
        return self.evaluator.emit((event, [rules[n] for n in positions]) for _, event, positions in matched)

    def close(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(OSError):  # that worker is gone already; join below reaps it
                conn.send(False)
            conn.close()
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join()
        self._conns, self._procs = [], []

    def __enter__(self) -> ShardedEvaluator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def round_robin(events: list[Event]) -> ShardReader:
    """A reader over an in-memory list (tests, benchmarks): shard k gets positions k, k+n, …

    Each call returns the whole shard once; later calls return nothing.
    """
    consumed: set[int] = set()

    def read(shard: int, shards: int) -> Iterable[tuple[int, Event]]:
        if shard in consumed:
            return []
        consumed.add(shard)
        return ((position, events[position]) for position in range(shard, len(events), shards))

    return read


__all__ = ["ShardReader", "ShardResult", "ShardedEvaluator", "WorkerError", "match_shard", "round_robin"]
