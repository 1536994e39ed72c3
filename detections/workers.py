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
  ``workers > 1``): the parent reads a batch, deals it out to the workers (worker k of n gets
  positions k, k+n, …, so a run of costly events is shared rather than landing on one worker)
  and pipes each share over pickled (measured cheaper end to end than orjson for these events,
  and exact for any value a store returns). Workers start once and serve batch after batch; one
  that died is started again before the next batch. :meth:`WorkerPool.submit` and
  :meth:`WorkerPool.receive` are separate so the engine can pipeline: it reads batch k+1 while
  the workers match batch k, and sends it to them before it emits batch k and writes its alerts.
- :class:`ShardedEvaluator`: each worker reads its *own* shard through a :data:`ShardReader`
  (round-robin over a list, one file per worker …), so events are never sent to the workers;
  the matched events come back with the positions, in parts of :data:`PART_EVENTS` events, so
  the parent takes them in while the workers go on matching.

Delivery: both emit a batch's detections only after every worker has matched all its part; a
worker that fails, dies or stops answering raises :class:`WorkerError` and nothing of the batch
is emitted, so the caller can evaluate it again (the engine does so in-process). Emitting is
stateful (correlation windows), so it is the one step that cannot start before the whole batch
is matched.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import signal
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from multiprocessing.reduction import ForkingPickler
from types import TracebackType
from typing import Any

from soc_core.errors import ConfigError, SocError

from .alerts import Detection
from .engine import CompiledRuleSet, Evaluator

Event = Mapping[str, Any]
ShardReader = Callable[[int, int], Iterable[tuple[int, Event]]]
"""``reader(shard, shards)`` → the next batch of that shard as (stream position, event) pairs,
in stream order. Called in the worker process, once per :meth:`ShardedEvaluator.run`."""

DEFAULT_REPLY_TIMEOUT = 300.0  # seconds a pool worker may take over its share of one batch
PART_EVENTS = 1024  # events a ShardedEvaluator worker matches before sending back what matched
# Workers are dealt blocks of consecutive positions in turn. One position at a time leaves them
# unequal wherever heavy and light events alternate (a Sysmon event, then its Security twin);
# halves, wherever they cluster. Measured on the benchmark corpus: 1.72× with single positions,
# 1.91× with blocks of 64 (two processes matching, against one).
DEAL_BLOCK = 64


def dealt(count: int, shards: int, shard: int) -> Iterator[int]:
    """The positions of ``shard`` among ``count``: blocks dealt round-robin, in stream order.

    Blocks are :data:`DEAL_BLOCK` long, shorter for small batches so that every worker gets
    several (a batch of fewer than 8 × ``shards`` events is dealt one position at a time).
    """
    block = max(1, min(DEAL_BLOCK, count // (8 * shards)))
    for start in range(shard * block, count, shards * block):
        yield from range(start, min(start + block, count))


class WorkerError(SocError):
    """A detection worker process failed, died or stopped answering while matching its shard."""


@dataclass
class ShardResult:
    """What one worker reports for (part of) one batch: matched positions and counters."""

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
    """A pool worker: ``(positions, events)`` in, :class:`ShardResult` out, until ``None`` or EOF."""
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
        positions, events = message
        try:
            result = match_shard(evaluator, zip(positions, events, strict=True))
        except Exception as exc:  # reported to the engine, which raises WorkerError
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        else:
            result.matched_events = {}  # the engine holds the batch
            conn.send(("ok", result))


@dataclass(frozen=True)
class PackedBatch:
    """A batch already pickled into one message per worker (see :meth:`WorkerPool.pack`)."""

    events: Sequence[Event]
    messages: list[bytes]


@dataclass(frozen=True)
class MatchedBatch:
    """A batch every worker has matched, not yet emitted (see :meth:`WorkerPool.receive`)."""

    events: Sequence[Event]
    results: list[ShardResult]


@dataclass
class _Submitted:
    events: Sequence[Event]
    due: list[int]  # workers that were sent their share and owe a reply
    problems: list[str]


class WorkerPool:
    """``workers`` forked processes matching the batches one engine reads, for ``evaluator``.

    Started once; a worker found dead before a batch is started again (counted in
    :attr:`restarts`). :meth:`evaluate` deals a batch out to the workers and emits the matches
    through ``evaluator`` in stream order, or raises :class:`WorkerError` having emitted
    nothing. It is :meth:`submit`, :meth:`receive` and :meth:`emit` in a row; a caller that
    calls them itself can do other work while the workers match, such as emitting the previous
    batch. One batch at a time is in the workers' hands. Whatever happens, every worker left
    running is idle once the batch is received or dropped: one whose reply will not be read is
    stopped, so no stale reply can answer a later batch.
    """

    def __init__(self, evaluator: Evaluator, *, workers: int, reply_timeout: float = DEFAULT_REPLY_TIMEOUT) -> None:
        self._context = _require_fork(workers)
        self.evaluator = evaluator
        self.reply_timeout = reply_timeout
        self.restarts = 0
        self._conns: list[Connection | None] = [None] * workers
        self.processes: list[BaseProcess | None] = [None] * workers
        self._submitted: _Submitted | None = None
        try:
            for slot in range(workers):
                self._start(slot)
        except WorkerError:
            self.close()
            raise

    @property
    def workers(self) -> int:
        return len(self.processes)

    @property
    def pending(self) -> Sequence[Event] | None:
        """The events of the batch submitted and not yet received, if any."""
        return self._submitted.events if self._submitted is not None else None

    def evaluate(self, events: Sequence[Event]) -> list[Detection]:
        """Detections for one batch, as :meth:`Evaluator.evaluate` would give them."""
        self.submit(events)
        return self.emit(self.receive())

    def pack(self, events: Sequence[Event]) -> PackedBatch:
        """Pickle a batch for :meth:`submit` (done ahead, while the workers are busy, it costs them nothing)."""
        messages = []
        for slot in range(min(self.workers, len(events))):
            positions = list(dealt(len(events), self.workers, slot))
            messages.append(bytes(ForkingPickler.dumps((positions, [events[p] for p in positions]))))
        return PackedBatch(events, messages)

    def submit(self, batch: Sequence[Event] | PackedBatch) -> None:
        """Send a batch to the workers (dealt in blocks, see :func:`dealt`) and return at once.

        A batch submitted before and not received is dropped: its workers are stopped.
        """
        packed = batch if isinstance(batch, PackedBatch) else self.pack(batch)
        self.drop()
        for slot, proc in enumerate(self.processes):
            if proc is None or not proc.is_alive():
                self._stop(slot)
                self._start(slot)
                self.restarts += 1
        submitted = _Submitted(packed.events, [], [])
        for slot, message in enumerate(packed.messages):
            conn = self._conns[slot]
            assert conn is not None
            try:
                conn.send_bytes(message)
            except Exception as exc:  # whatever it was, that share is not being matched
                submitted.problems.append(f"worker {slot}: cannot send its share: {type(exc).__name__}: {exc}")
                self._stop(slot)
            else:
                submitted.due.append(slot)
        self._submitted = submitted

    def receive(self) -> MatchedBatch:
        """Wait for every worker's share of the submitted batch; :class:`WorkerError` if any failed."""
        submitted, self._submitted = self._submitted, None
        if submitted is None:
            raise WorkerError("no batch was submitted to the detection workers", hint="call submit first")
        problems = submitted.problems
        results: list[ShardResult] = []
        due = submitted.due
        try:
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
        return MatchedBatch(submitted.events, results)

    def emit(self, matched: MatchedBatch) -> list[Detection]:
        """Count a received batch into the evaluator and emit its matches in stream order."""
        return emit_in_order(self.evaluator, matched.results, matched.events.__getitem__)

    def drop(self) -> None:
        """Forget the batch submitted and not received, if any: its workers are stopped."""
        submitted, self._submitted = self._submitted, None
        if submitted is not None:
            for slot in submitted.due:
                self._stop(slot)

    def close(self) -> None:
        """Ask every worker to exit, then stop any that has not within 5 s. Idempotent."""
        self._submitted = None
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
    """A shard worker: for each request, its shard in parts of :data:`PART_EVENTS`, then ``done``."""
    while conn.recv():
        try:
            events = iter(reader(shard, shards))
            while (part := match_shard(evaluator, itertools.islice(events, PART_EVENTS))).events:
                conn.send(("part", part))
        except Exception as exc:  # reported to the parent, which raises WorkerError
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        else:
            conn.send(("done", None))
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
        """Every worker matches its next shard batch; detections in stream order.

        The parts the workers send are taken in as they come; emitting waits for the last one,
        and a failed worker (after the others have finished) raises :class:`WorkerError`.
        """
        problems: list[str] = []
        running: dict[Connection, int] = {}
        for shard, conn in enumerate(self._conns):
            try:
                conn.send(True)
            except OSError as exc:
                problems.append(f"detection worker {shard} is gone ({exc}; exit code {self._procs[shard].exitcode})")
            else:
                running[conn] = shard
        parts: list[ShardResult] = []
        events: dict[int, Event] = {}
        while running:
            for ready in wait(list(running)):
                assert isinstance(ready, Connection)
                try:
                    status, payload = ready.recv()
                except EOFError:
                    shard = running.pop(ready)
                    self._procs[shard].join(timeout=5)
                    problems.append(f"detection worker {shard} died (exit code {self._procs[shard].exitcode})")
                    continue
                if status == "part":
                    parts.append(payload)
                    events.update(payload.matched_events)
                    continue
                shard = running.pop(ready)
                if status != "done":
                    problems.append(f"detection worker {shard} failed: {payload}")
        if problems:
            raise WorkerError("; ".join(problems))
        return emit_in_order(self.evaluator, parts, events.__getitem__)

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


def round_robin(events: Sequence[Event]) -> ShardReader:
    """A reader over an in-memory list (tests, benchmarks): blocks dealt in turn, see :func:`dealt`.

    Each call returns the whole shard once; later calls return nothing.
    """
    consumed: set[int] = set()

    def read(shard: int, shards: int) -> Iterable[tuple[int, Event]]:
        if shard in consumed:
            return []
        consumed.add(shard)
        return ((position, events[position]) for position in dealt(len(events), shards, shard))

    return read


__all__ = [
    "DEFAULT_REPLY_TIMEOUT",
    "PART_EVENTS",
    "MatchedBatch",
    "PackedBatch",
    "ShardReader",
    "ShardResult",
    "ShardedEvaluator",
    "WorkerError",
    "WorkerPool",
    "dealt",
    "emit_in_order",
    "match_shard",
    "round_robin",
]
