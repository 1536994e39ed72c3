"""The streaming Evaluator over several processes: reading and matching shared, state kept in one.

Reading a batch (JSON decoding), routing, the prefilter and the compiled matchers need no state
and are where the time goes; alerts and correlation windows need the stream order. So the
engine only *plans* a batch (:meth:`~soc_core.store.base.Store.plan_new_events`: which span of
the stream, cut into blocks, no event read) and hands the plan to the :class:`WorkerPool`'s
forked processes. Each worker, on its own store connection
(:meth:`~soc_core.store.base.Store.reopened`), claims the next block of the plan, reads and
matches it, and so on until none is left; it sends back only the events that matched something,
with their stream positions and the positions of the rules they matched (matches are rare, so
that traffic is small). Threat intel is looked up there too: each worker holds its own
:class:`~detections.intel.IntelDetector` on its connection (the lists loaded per worker,
reloaded when their generation moves) and sends back the events on a list with their
detections, so the engine never reads a batch a second time. The compiled rule set is inherited
through fork: compiled matchers are closures and do not pickle. The parent merges the matches in
stream order and hands them to :meth:`detections.evaluation.Evaluator.emit`, which writes
detections and feeds the correlation windows exactly as a single process would; so any split of
the stream gives the detections of one process (the tests check it).

Claiming is dynamic, not dealt: under host noise a worker dealt a fixed half finishes late
while the other idles. The claims go through one OS pipe shared by the workers, into which the
parent writes a token per block and one end token per worker: a read of a token is atomic, and
a worker killed mid-claim holds no lock that could stall the others. Tokens carry the batch's
serial number, so those left over from a failed batch are skipped.

Delivery: a batch's matches are emitted only after every worker has said it is done; a worker
that fails, dies or stops answering raises :class:`WorkerError` and nothing of the batch is
emitted, so the caller can evaluate it again (the engine does so in-process). Emitting is
stateful (correlation windows), so it is the one step that cannot start before the whole batch
is matched.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any

from soc_core.errors import ConfigError, SocError
from soc_core.store.base import Position, ReadPlan, Store

from .alerts import Detection
from .evaluation import Evaluator
from .intel import IntelDetector

Event = Mapping[str, Any]

DEFAULT_REPLY_TIMEOUT = 300.0  # seconds the workers may take over one batch
_TOKEN = struct.Struct("<qq")  # (batch serial, block number or _END)
_END = -1
_TOKENS_PER_WRITE = 256  # 4 KiB: a pipe write up to PIPE_BUF is atomic, so no token is torn


class WorkerError(SocError):
    """A detection worker process failed, died or stopped answering while matching a batch."""


@dataclass
class ShardResult:
    """What one worker matched of one batch: the matched events, in no order, and counters."""

    matched: list[tuple[Position, list[int], Event]] = field(default_factory=list)  # (position, rules, event)
    intel: list[tuple[Position, list[Detection], Event]] = field(default_factory=list)  # threat-intel hits
    events: int = 0
    skipped_events: int = 0
    rule_failures: dict[str, int] = field(default_factory=dict)

    def add(self, other: ShardResult) -> None:
        self.matched.extend(other.matched)
        self.intel.extend(other.intel)
        self.events += other.events
        self.skipped_events += other.skipped_events
        for rule_id, count in other.rule_failures.items():
            self.rule_failures[rule_id] = self.rule_failures.get(rule_id, 0) + count


def match_shard(evaluator: Evaluator, events: Iterable[tuple[Position, Event]]) -> ShardResult:
    """Match part of a batch: the stateless half of :meth:`Evaluator.evaluate`."""
    position_of = evaluator.router.position
    stats = evaluator.stats
    before_events, before_skipped = stats.events, stats.skipped_events
    before_failures = dict(stats.rule_failures)
    result = ShardResult()
    for position, event in events:
        rules = evaluator.stream_match(event)
        if rules:
            result.matched.append((position, [position_of[id(rule)] for rule in rules], event))
    result.events = stats.events - before_events
    result.skipped_events = stats.skipped_events - before_skipped
    result.rule_failures = {
        rule_id: count - before_failures.get(rule_id, 0)
        for rule_id, count in stats.rule_failures.items()
        if count != before_failures.get(rule_id, 0)
    }
    return result


def intel_shard(
    detector: IntelDetector, events: Iterable[tuple[Position, Event]]
) -> list[tuple[Position, list[Detection], Event]]:
    """The threat-intel detections of part of a batch, per event that has any."""
    detector.refresh()
    found = []
    for position, event in events:
        detections = detector.detect_event(event)
        if detections:
            found.append((position, detections, event))
    return found


def intel_in_order(results: Sequence[ShardResult]) -> tuple[list[Detection], list[Event]]:
    """The workers' threat-intel detections in stream order (as one process finds them), and
    the events behind them."""
    hits = sorted((item for result in results for item in result.intel), key=lambda item: item[0])
    return [detection for _, found, _ in hits for detection in found], [event for _, _, event in hits]


def emit_in_order(evaluator: Evaluator, results: Sequence[ShardResult]) -> list[Detection]:
    """Count the workers' results into ``evaluator`` and emit their matches in stream order."""
    stats = evaluator.stats
    for result in results:
        stats.events += result.events
        stats.skipped_events += result.skipped_events
        for rule_id, count in result.rule_failures.items():
            stats.rule_failures[rule_id] = stats.rule_failures.get(rule_id, 0) + count
    rules = evaluator.router.rules
    matched = sorted((item for result in results for item in result.matched), key=lambda item: item[0])
    return evaluator.emit((event, [rules[n] for n in found]) for _, found, event in matched)


def _require_fork(workers: int) -> multiprocessing.context.ForkContext:
    if workers < 1:
        raise ConfigError(f"detection workers: need at least 1, not {workers}")
    if "fork" not in multiprocessing.get_all_start_methods():
        raise WorkerError("detection workers need the fork start method (compiled rules do not pickle)")
    return multiprocessing.get_context("fork")


def _claimed(tokens: int, serial: int) -> Iterator[int]:
    """The blocks of batch ``serial`` this worker claims, until it reads an end token."""
    while True:
        data = b""
        while len(data) < _TOKEN.size:
            chunk = os.read(tokens, _TOKEN.size - len(data))
            if not chunk:
                raise WorkerError("the engine closed the detection workers' block pipe")
            data += chunk
        batch, block = _TOKEN.unpack(data)
        if batch != serial:
            continue  # left over from a batch that failed
        if block == _END:
            return
        yield block


class _TokenPipe:
    """The OS pipe the workers claim blocks from (see the module docstring)."""

    def __init__(self) -> None:
        self.read_end, self.write_end = os.pipe()

    def deal(self, serial: int, blocks: int, workers: int) -> None:
        tokens = [_TOKEN.pack(serial, block) for block in range(blocks)]
        tokens += [_TOKEN.pack(serial, _END)] * workers
        for start in range(0, len(tokens), _TOKENS_PER_WRITE):
            os.write(self.write_end, b"".join(tokens[start : start + _TOKENS_PER_WRITE]))

    def close(self) -> None:
        for end in (self.read_end, self.write_end):
            with contextlib.suppress(OSError):
                os.close(end)


def _serve(
    conn: Connection,
    evaluator: Evaluator,
    store: Store,
    tokens: _TokenPipe,
    inherited: Sequence[Connection],
    *,
    intel: IntelDetector | None,
) -> None:
    """A pool worker: ``(serial, plan)`` in, the :class:`ShardResult` of the blocks it claimed
    out, until ``None`` or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the engine's to handle: it stops us
    for other in inherited:
        other.close()  # the engine's ends of the pipes: else its death would not reach us as EOF
    os.close(tokens.write_end)
    reader: Store | None = None  # never the engine's own connections, inherited through fork
    detector: IntelDetector | None = None
    while True:
        try:
            message = conn.recv()
        except (EOFError, ConnectionResetError):
            return  # the engine is gone
        if message is None:
            return
        serial, plan = message
        try:
            if reader is None:
                reader = store.reopened()
                detector = intel.bound_to(reader) if intel is not None else None
            result = ShardResult()
            for block in _claimed(tokens.read_end, serial):
                part = list(reader.read_plan(plan, [block]))
                result.add(match_shard(evaluator, part))
                if detector is not None:
                    result.intel.extend(intel_shard(detector, part))
        except Exception as exc:  # reported to the engine, which raises WorkerError
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        else:
            conn.send(("ok", result))


@dataclass
class _Submitted:
    plan: ReadPlan
    due: list[int]  # workers that were sent the plan and owe a reply
    problems: list[str]


class WorkerPool:
    """``workers`` forked processes reading and matching the batches ``store`` plans, for ``evaluator``
    (and looking the events up in the threat-intel lists, given ``intel``: each worker a copy of it).

    Started once; a worker found dead before a batch is started again (counted in
    :attr:`restarts`). :meth:`evaluate` has the workers read and match a plan and emits the
    matches through ``evaluator`` in stream order, or raises :class:`WorkerError` having
    emitted nothing. It is :meth:`submit`, :meth:`receive` and :meth:`emit` in a row; a caller
    that calls them itself can do other work while the workers match, such as emitting the
    previous batch. One batch at a time is in the workers' hands. Whatever happens, every
    worker left running is idle once the batch is received or dropped: one whose reply will not
    be read is stopped, so no stale reply can answer a later batch.
    """

    def __init__(
        self,
        evaluator: Evaluator,
        store: Store,
        *,
        workers: int,
        reply_timeout: float = DEFAULT_REPLY_TIMEOUT,
        intel: IntelDetector | None = None,
    ) -> None:
        self._context = _require_fork(workers)
        self.evaluator = evaluator
        self.store = store
        self.intel = intel
        self.reply_timeout = reply_timeout
        self.restarts = 0
        self._serial = 0
        self._tokens = _TokenPipe()
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
    def pending(self) -> ReadPlan | None:
        """The plan submitted and not yet received, if any."""
        return self._submitted.plan if self._submitted is not None else None

    def evaluate(self, plan: ReadPlan) -> list[Detection]:
        """Detections for one planned batch, as :meth:`Evaluator.evaluate` would give them."""
        self.submit(plan)
        return self.emit(self.receive())

    def submit(self, plan: ReadPlan) -> None:
        """Send a plan to the workers, deal its blocks and return at once.

        A batch submitted before and not received is dropped: its workers are stopped.
        """
        self.drop()
        for slot, proc in enumerate(self.processes):
            if proc is None or not proc.is_alive():
                self._stop(slot)
                self._start(slot)
                self.restarts += 1
        self._serial += 1
        submitted = _Submitted(plan, [], [])
        for slot, conn in enumerate(self._conns):
            assert conn is not None
            try:
                conn.send((self._serial, plan))
            except Exception as exc:  # whatever it was, that worker is not matching
                submitted.problems.append(f"worker {slot}: cannot send it the batch: {type(exc).__name__}: {exc}")
                self._stop(slot)
            else:
                submitted.due.append(slot)
        if submitted.due:  # else nobody would read the tokens: the pipe could fill up
            self._tokens.deal(self._serial, len(plan.blocks), self.workers)
        self._submitted = submitted

    def receive(self) -> list[ShardResult]:
        """Wait for every worker's part of the submitted batch; :class:`WorkerError` if any failed."""
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
        return results

    def emit(self, results: Sequence[ShardResult]) -> list[Detection]:
        """Count a received batch into the evaluator and emit its matches in stream order."""
        return emit_in_order(self.evaluator, results)

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
        self._tokens.close()

    def _start(self, slot: int) -> None:
        parent, child = self._context.Pipe()
        inherited = [parent, *(conn for conn in self._conns if conn is not None)]
        proc = self._context.Process(
            target=_serve,
            args=(child, self.evaluator, self.store, self._tokens, inherited),
            kwargs={"intel": self.intel},
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


__all__ = [
    "DEFAULT_REPLY_TIMEOUT",
    "ShardResult",
    "WorkerError",
    "WorkerPool",
    "emit_in_order",
    "intel_in_order",
    "intel_shard",
    "match_shard",
]
