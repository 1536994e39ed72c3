"""The streaming Evaluator over several processes: stateless matching sharded, state kept in one.

Matching an event (routing, prefilter, compiled matchers) needs no state and is where the time
goes; alerts and correlation windows need the stream order. So the matching runs in forked
processes, each holding the compiled rule set (inherited through fork: compiled matchers are
closures and do not pickle), and a worker sends back only the stream positions of the events
that matched something and the positions of the rules they matched; matches are rare, so that
traffic is small. The parent merges them in stream order and hands them to
:meth:`detections.engine.Evaluator.emit`, which writes detections and feeds the correlation
windows exactly as a single process would. Because of that split, any partition of the stream
gives the same detections as one process (the tests check it): a partition by (tenant, group
key) is not needed for correlation correctness.

Two ways to feed the workers:

- :class:`WorkerPool` (what :class:`~detections.engine.DetectionEngine` uses with
  ``workers > 1``): the parent reads a batch, cuts it into one contiguous slice per worker and
  pipes each slice over pickled (measured cheaper end to end than orjson for these events, and
  exact for any value a store returns). Workers start once and serve batch after batch; one that
  died is started again before the next batch.
- :class:`ShardedEvaluator`: each worker reads its *own* shard through a :data:`ShardReader`
  (round-robin over a list, one file per worker …), so events are never sent to the workers;
  the matched events come back with the positions.

Delivery: both return a batch's detections only after every worker has matched its part; a
worker that fails, dies or stops answering raises :class:`WorkerError` and nothing of the batch
is emitted, so the caller can evaluate it again (the engine does so in-process).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
from collections.abc import Callable, Iterable, Mapping, Sequence
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

DEFAULT_REPLY_TIMEOUT = 300.0  # seconds a pool worker may take over its slice of one batch


class WorkerError(SocError):
    """A detection worker process failed, died or stopped answering while matching its shard."""


@dataclass
class ShardResult:
    """What one worker reports for one batch: matched positions and counters."""

    matched: list[tuple[int, list[int]]] = field(default_factory=list)  # (stream position, rule positions)
    matched_events: dict[int, Event] = field(default_factory=dict)  # by stream position
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
            result.matched.append((position, [position_of[id(rule)] for rule in rules]))
            result.matched_events[position] = event
    result.events = stats.events - before_events
    result.skipped_events = stats.skipped_events - before_skipped
    result.rule_failures = {
        rule_id: count - before_failures.get(rule_id, 0)
        for rule_id, count in stats.rule_failures.items()
        if count != before_failures.get(rule_id, 0)
    }
    return result


def emit_in_order(
    evaluator: Evaluator, results: Sequence[ShardResult], event_at: Callable[[int], Event]
) -> list[Detection]:
    """Count the shards' results into ``evaluator`` and emit their matches in stream order."""
    stats = evaluator.stats
    for result in results:
        stats.events += result.events
        stats.skipped_events += result.skipped_events
        for rule_id, count in result.rule_failures.items():
            stats.rule_failures[rule_id] = stats.rule_failures.get(rule_id, 0) + count
    rules = evaluator.router.rules
    matched = sorted((item for result in results for item in result.matched), key=lambda item: item[0])
    return evaluator.emit((event_at(position), [rules[n] for n in found]) for position, found in matched)


def _require_fork(workers: int) -> multiprocessing.context.ForkContext:
    if workers < 1:
        raise ConfigError(f"detection workers: need at least 1, not {workers}")
    if "fork" not in multiprocessing.get_all_start_methods():
        raise WorkerError("detection workers need the fork start method (compiled rules do not pickle)")
    return multiprocessing.get_context("fork")


def _serve_batches(conn: Connection, evaluator: Evaluator, inherited: Sequence[Connection]) -> None:
    """A pool worker: ``(offset, events)`` in, :class:`ShardResult` out, until ``None`` or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the engine's to handle: it stops us
    for other in inherited:
        other.close()  # the engine's ends of the pipes: else its death would not reach us as EOF
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return  # the engine is gone
        if message is None:
            return
        offset, events = message
        try:
            result = match_shard(evaluator, enumerate(events, start=offset))
        except Exception as exc:  # reported to the engine, which raises WorkerError
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        else:
            result.matched_events = {}  # the engine holds the batch
            conn.send(("ok", result))


class WorkerPool:
    """``workers`` forked processes matching the batches one engine reads, for ``evaluator``.

    Started once; a worker found dead before a batch is started again (counted in
    :attr:`restarts`). :meth:`evaluate` cuts a batch into one contiguous slice per worker and
    emits the matches through ``evaluator`` in stream order, or raises :class:`WorkerError`
    having emitted nothing. Either way every worker left running is idle afterwards: one whose
    reply will not be read is stopped, so no stale reply can answer a later batch.
    """

    def __init__(self, evaluator: Evaluator, *, workers: int, reply_timeout: float = DEFAULT_REPLY_TIMEOUT) -> None:
        self._context = _require_fork(workers)
        self.evaluator = evaluator
        self.reply_timeout = reply_timeout
        self.restarts = 0
        self._conns: list[Connection | None] = [None] * workers
        self.processes: list[BaseProcess | None] = [None] * workers
        try:
            for slot in range(workers):
                self._start(slot)
        except WorkerError:
            self.close()
            raise

    @property
    def workers(self) -> int:
        return len(self.processes)

    def evaluate(self, events: Sequence[Event]) -> list[Detection]:
        """Detections for one batch, as :meth:`Evaluator.evaluate` would give them."""
        for slot, proc in enumerate(self.processes):
            if proc is None or not proc.is_alive():
                self._stop(slot)
                self._start(slot)
                self.restarts += 1
        size = max(1, -(-len(events) // self.workers))
        problems: list[str] = []
        results: list[ShardResult] = []
        due: list[int] = []  # workers that were sent a slice and owe a reply
        try:
            for slot, start in enumerate(range(0, len(events), size)):
                conn = self._conns[slot]
                assert conn is not None
                try:
                    conn.send((start, list(events[start : start + size])))
                except Exception as exc:  # whatever it was, that slice is not being matched
                    problems.append(f"worker {slot}: cannot send its slice: {type(exc).__name__}: {exc}")
                    self._stop(slot)
                else:
                    due.append(slot)
            while due:
                reply = self._receive(due[0])
                due.pop(0)
                if isinstance(reply, str):
                    problems.append(reply)
                else:
                    results.append(reply)
        finally:
            for slot in due:
                self._stop(slot)
        if problems:
            raise WorkerError("; ".join(problems), hint="the engine evaluates that batch in-process")
        return emit_in_order(self.evaluator, results, events.__getitem__)

    def close(self) -> None:
        """Ask every worker to exit, then stop any that has not within 5 s. Idempotent."""
        for conn in self._conns:
            if conn is not None:
                with contextlib.suppress(OSError):  # that worker is gone already
                    conn.send(None)
        for slot, proc in enumerate(self.processes):
            if proc is not None:
                proc.join(timeout=5)
            self._stop(slot)

    def _start(self, slot: int) -> None:
        parent, child = self._context.Pipe()
        inherited = [parent, *(conn for conn in self._conns if conn is not None)]
        proc = self._context.Process(
            target=_serve_batches,
            args=(child, self.evaluator, inherited),
            name=f"detection-worker-{slot}",
            daemon=True,
        )
        try:
            proc.start()
        except OSError as exc:
            parent.close()
            raise WorkerError(f"cannot start detection worker {slot}: {exc}") from exc
        finally:
            child.close()
        self._conns[slot], self.processes[slot] = parent, proc

    def _stop(self, slot: int) -> int | None:
        """Close a worker's pipe and make sure the process is gone; its exit code."""
        conn, proc = self._conns[slot], self.processes[slot]
        self._conns[slot] = self.processes[slot] = None
        if conn is not None:
            conn.close()
        if proc is None:
            return None
        if proc.is_alive():
            proc.kill()
        proc.join()
        return proc.exitcode

    def _receive(self, slot: int) -> ShardResult | str:
        """The worker's result, or what went wrong (the worker then is stopped unless it answered)."""
        conn, proc = self._conns[slot], self.processes[slot]
        assert conn is not None and proc is not None
        try:
            if not conn.poll(self.reply_timeout):
                self._stop(slot)
                return f"worker {slot} (pid {proc.pid}) gave no answer in {self.reply_timeout:g} s and was stopped"
            status, payload = conn.recv()
        except (EOFError, OSError):
            return f"worker {slot} (pid {proc.pid}) died (exit code {self._stop(slot)})"
        if status != "ok":
            return f"worker {slot} failed: {payload}"
        assert isinstance(payload, ShardResult)
        return payload

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


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
    """``workers`` forked matcher processes reading their own shards, and one :class:`Evaluator`
    for alerts and correlation."""

    def __init__(
        self,
        compiled: CompiledRuleSet,
        reader: ShardReader,
        *,
        workers: int = 2,
        max_keys: int = 100_000,
        max_items: int = 1_000,
    ) -> None:
        context = _require_fork(workers)
        self.evaluator = Evaluator(compiled, max_keys=max_keys, max_items=max_items)
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
        events = {position: event for result in results for position, event in result.matched_events.items()}
        return emit_in_order(self.evaluator, results, events.__getitem__)

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


__all__ = [
    "DEFAULT_REPLY_TIMEOUT",
    "ShardReader",
    "ShardResult",
    "ShardedEvaluator",
    "WorkerError",
    "WorkerPool",
    "emit_in_order",
    "match_shard",
    "round_robin",
]
