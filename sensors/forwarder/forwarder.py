"""The forwarder: spool every event, deliver batches to a sink, acknowledge what is done.

Delivery guarantee: at least once; the spool cursor and the acks move in spool order.

* ``submit`` persists the event in the spool. When the spool is full, ``when_full: block``
  (default) refuses it — the caller pauses its source and offers it again later — and
  ``drop_newest`` drops it, counts it and acknowledges it (dropped on purpose).
* ``pump`` sends batches (count, bytes or age, see :class:`Batcher`). Per-item outcomes:
  delivered and dead-lettered items are done; ``retry`` items are sent again after an
  exponential backoff; a :class:`~soc_core.errors.StoreError` (the store is down) keeps the
  whole batch and backs off.
* Only when every item of a batch is done does the spool cursor move past it, and then each
  event's ``ack`` callback runs — in submission order — so sources move their checkpoints
  only over delivered data. Events left in the spool by an earlier run are delivered again
  (the deterministic event ids make that harmless); they have no ack callbacks.
* With ``background=True`` the sink's ``send`` runs in one sender thread, so the source keeps
  reading, parsing and spooling while a batch is on the wire (the store's answer is waited
  for without holding the GIL). Everything else — outcomes, spool commits, acks — still
  happens in the caller's thread, inside :meth:`pump`, so sources need no locking. While the
  store keeps up, :data:`WINDOW` batches are with the sender at once — one on the wire, the
  next queued behind it, so no request waits for the caller's next ``pump`` — and one while
  it fails. A batch done before an earlier one waits for it: the cursor and the acks never
  pass a batch that is not done.
* Events submitted in this run are kept (up to :data:`DECODED_CACHE` of them) as the objects
  given, so a batch does not decode what it just encoded; the spool still holds every byte.
  Sinks serialise them the way the spool does (orjson, unknown types as ``str``).

The forwarder never changes an event; the store sets ``event.ingested``.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field
from typing import Literal

import orjson

from sensors.errors import SpoolError, SpoolFull
from sensors.forwarder.batcher import Batch, Batcher
from sensors.forwarder.sinks import Outcome, Sink
from sensors.forwarder.spool import Position, Spool
from soc_core.errors import ConfigError, StoreError, StoreUnavailable
from soc_core.events import Event, encode_event
from soc_core.store.base import PreparedEvents

log = logging.getLogger(__name__)

WhenFull = Literal["block", "drop_newest"]
WHEN_FULL: tuple[WhenFull, ...] = ("block", "drop_newest")
Ack = Callable[[], None]
COUNTERS = (
    "events_in",
    "events_out",
    "duplicates",
    "spooled",
    "dropped",
    "dead_lettered",
    "retried",
    "store_failures",
    "spool_errors",
    "spool_full",
    "batches",
)
DECODED_CACHE = 8192  # submitted events kept as objects, bounded so a long outage cannot grow memory
# Batches handed to the sender thread at once while the store keeps up: one on the wire and the
# next queued behind it, so the store never waits for the source between two requests.
WINDOW = 2


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with proportional jitter, capped at ``maximum`` seconds."""

    initial: float = 0.2
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.1

    def delay(self, attempt: int) -> float:
        base = min(self.maximum, self.initial * self.factor ** max(attempt - 1, 0))
        return base * (1 + self.jitter * random.random())  # noqa: S311 - jitter, not secrecy


@dataclass
class _InFlight:
    last: Position
    events: list[Event]
    encoded: list[bytes]  # each event as the spool holds it
    todo: list[int]  # indices not delivered or dead-lettered yet
    attempt: int = 0
    next_try: float = 0.0
    answer: Future[list[Outcome]] | None = None  # with the sender thread, not yet settled

    def to_send(self) -> tuple[list[Event], list[bytes]]:
        """The events still to do, and their spool bytes."""
        return [self.events[index] for index in self.todo], [self.encoded[index] for index in self.todo]


@dataclass
class _Acks:
    """Ack callbacks by spool position, in submission (= position) order."""

    queue: deque[tuple[Position, Ack]] = field(default_factory=deque)

    def add(self, position: Position, ack: Ack) -> None:
        self.queue.append((position, ack))

    def release(self, upto: Position) -> None:
        while self.queue and self.queue[0][0] <= upto:
            self.queue.popleft()[1]()


_Job = tuple[Future[list[Outcome]], PreparedEvents]


class _Sender:
    """One daemon thread running ``sink.send`` calls in order, answering through futures.

    A daemon, unlike a ``ThreadPoolExecutor`` worker, so a process whose shutdown timeout has
    passed exits even while a request to a frozen store is still waiting for its own timeout.

    A ``KeyboardInterrupt`` is only ever raised in the main thread, out of ``pump``/``close``:
    the spool moves only past batches whose answer was taken there, so what was on the wire
    stays spooled and goes again next run (same ids, stored once).
    """

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="forwarder-send", daemon=True)
        self._thread.start()

    def submit(self, prepared: PreparedEvents) -> Future[list[Outcome]]:
        future: Future[list[Outcome]] = Future()
        self._jobs.put((future, prepared))
        return future

    def stop(self) -> None:
        self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, prepared = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(self._sink.deliver(prepared))
            except Exception as exc:  # handed to the caller's thread: a StoreError backs off, a bug raises there
                future.set_exception(exc)


class Forwarder:
    """Spool → batches → sink, with acknowledgements; see the module docstring."""

    def __init__(
        self,
        sink: Sink,
        spool: Spool,
        *,
        batcher: Batcher[tuple[Position, bytes]] | None = None,
        when_full: WhenFull = "block",
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        background: bool = False,
    ) -> None:
        if when_full not in WHEN_FULL:
            raise ConfigError(f"unknown when_full {when_full!r}", hint=f"use one of {WHEN_FULL}")
        self.sink = sink
        self.spool = spool
        self.batcher: Batcher[tuple[Position, bytes]] = batcher if batcher is not None else Batcher()
        self.when_full = when_full
        self.backoff = backoff if backoff is not None else Backoff()
        self._clock = clock
        self._sleep = sleep
        self._acks = _Acks()
        self._ready: deque[Batch[tuple[Position, bytes]]] = deque()
        self._window: deque[_InFlight] = deque()  # batches built and not finished, in spool order
        # submitted in this run and still in memory: not read back yet (in spool order), and read
        # back (moved here by the read or the skip, taken when the batch is built)
        self._unread: deque[tuple[Position, bytes, Event]] = deque()
        self._read: dict[Position, Event] = {}
        self._sender = _Sender(sink) if background else None
        self._counters = dict.fromkeys(COUNTERS, 0)
        self.last_error: str | None = None

    # ------------------------------------------------------------------------- intake
    def submit(self, event: Event, ack: Ack | None = None) -> bool:
        """Take responsibility for ``event``; ``False`` means "not now, offer it again"."""
        return self.submit_many([(event, ack)]) == 1

    def submit_many(self, items: Sequence[tuple[Event, Ack | None]]) -> int:
        """Take responsibility for the first events of ``items``, spooled with one write.

        Returns how many were taken (spooled, or dropped and acknowledged under
        ``drop_newest``); the rest mean "not now, offer them again".
        """
        payloads = [encode_event(event) for event, _ in items]
        done = 0
        while done < len(items):
            taken = self._take(items, payloads, done)
            if not taken:
                break
            done += taken
        return done

    def _take(self, items: Sequence[tuple[Event, Ack | None]], payloads: list[bytes], start: int) -> int:
        """Spool ``items[start:]`` (or a prefix); how many were taken."""
        try:
            positions = self.spool.append_many(payloads[start:] if start else payloads)
        except SpoolFull:
            self._counters["spool_full"] += 1
            if self.when_full == "block":
                return 0
            self._counters["dropped"] += 1  # drop_newest: this one does not fit; the next may
            self._counters["events_in"] += 1
            ack = items[start][1]
            if ack is not None:
                ack()
            return 1
        except SpoolError as exc:
            self._counters["spool_errors"] += 1
            if self.last_error != exc.message:
                log.error("%s", exc)
            self.last_error = exc.message
            return 0
        self._counters["events_in"] += len(positions)
        self._counters["spooled"] += len(positions)
        room = DECODED_CACHE - len(self._unread) - len(self._read)
        for offset, position in enumerate(positions):
            event, ack = items[start + offset]
            if offset < room:
                self._unread.append((position, payloads[start + offset], event))
            if ack is not None:
                self._acks.add(position, ack)
        return len(positions)

    # ----------------------------------------------------------------------- delivery
    @property
    def drained(self) -> bool:
        """Everything spooled has been delivered or dead-lettered."""
        return not self._window and not self._ready and not self.spool.uncommitted

    @property
    def backing_off(self) -> bool:
        return any(batch.attempt > 0 for batch in self._window)

    @property
    def sending(self) -> bool:
        """A batch is with the sender thread and not answered yet."""
        return any(batch.answer is not None and not batch.answer.done() for batch in self._window)

    @property
    def handed_off(self) -> bool:
        """A batch was given to the sender thread and its answer not yet taken by :meth:`pump`."""
        return any(batch.answer is not None for batch in self._window)

    def wait(self, timeout: float) -> None:
        """Block until a batch with the sender is answered, for at most ``timeout`` seconds."""
        answers = [batch.answer for batch in self._window if batch.answer is not None]
        if answers:
            wait_for(answers, timeout=timeout, return_when=FIRST_COMPLETED)

    def idle_wait(self, timeout: float) -> None:
        """Nothing to do for the caller: wait for the store's answer, or ``timeout`` seconds."""
        if self.sending:
            self.wait(timeout)
        else:
            self._sleep(timeout)

    @property
    def backlog(self) -> int:
        """Events submitted in this run and not yet delivered or dead-lettered."""
        done = self._counters["events_out"] + self._counters["dead_lettered"]
        return max(0, self._counters["spooled"] - done)

    @property
    def saturated(self) -> bool:
        """The store is up but behind: a source that can be re-read should pause reading.

        Four batches are already waiting; reading further ahead gains nothing while the store
        answers (and would outrun the decoded cache). During an outage (backing off) this stays
        ``False``, so sources keep filling the spool — a rotated file is then still safe.
        """
        return not self.backing_off and self.backlog >= 4 * self.batcher.max_items

    def pump(self, *, flush: bool = False, max_batches: int = 8) -> int:
        """Send what is ready (everything waiting if ``flush``); returns events completed.

        In background mode batches are handed to the sender thread — up to :data:`WINDOW` at
        once while the store keeps up, one while it fails — and their answers are taken by a
        later call, so this returns without waiting for the store. Without a sender thread it
        sends up to ``max_batches`` batches, one at a time, and waits for each answer.
        """
        if self._sender is None:
            return self._pump_inline(flush, max_batches)
        now = self._clock()
        for batch in self._window:
            if batch.answer is not None and batch.answer.done():
                answer, batch.answer = batch.answer, None
                self._settle(batch, now, answer)
        completed = self._finish_done()
        depth = 1 if self.backing_off else WINDOW
        while len(self._window) < depth and (built := self._next_batch(now, flush)) is not None:
            self._window.append(built)
        for batch in self._window:  # in spool order: the sender thread sends in the order given
            if batch.todo and batch.answer is None and now >= batch.next_try:
                # prepared here, while the batch before it is on the wire
                batch.answer = self._sender.submit(self.sink.prepare(*batch.to_send()))
        return completed

    def _pump_inline(self, flush: bool, max_batches: int) -> int:
        completed = 0
        for _ in range(max_batches):
            now = self._clock()
            if not self._window:
                batch = self._next_batch(now, flush)
                if batch is None:
                    break
                self._window.append(batch)
            batch = self._window[0]
            if now < batch.next_try:
                break
            self._attempt(batch, now)
            finished = self._finish_done()
            if not finished:
                break
            completed += finished
        return completed

    def _finish_done(self) -> int:
        """Commit the spool past the batches done at the head of the window and run their acks,
        in order; how many events they held. A later batch done before an earlier one waits."""
        completed = 0
        while self._window and not self._window[0].todo:
            batch = self._window.popleft()
            if batch.attempt:
                log.info("delivery resumed after %d failed attempts", batch.attempt)
            self.spool.commit(batch.last)
            self._acks.release(batch.last)
            self._counters["batches"] += 1
            self.last_error = None
            completed += len(batch.events)
        return completed

    def _next_batch(self, now: float, flush: bool) -> _InFlight | None:
        unread = self._unread
        while not self._ready and self.batcher.room > 0 and self.spool.unread:
            if unread and self.spool.skip(unread[0][0], len(unread[0][1])):
                # the next record is still in memory: no need to read it back from disk
                position, payload, event = unread.popleft()
                self._read[position] = event
                self._ready.extend(self.batcher.add((position, payload), len(payload), now))
                continue
            for position, payload in self.spool.read(1):
                while unread and unread[0][0] < position:
                    unread.popleft()  # never read back (a damaged record, say): never needed
                if unread and unread[0][0] == position:
                    self._read[position] = unread.popleft()[2]
                self._ready.extend(self.batcher.add((position, payload), len(payload), now))
        if not self._ready and (flush or self.batcher.due(now)):
            waiting = self.batcher.flush()
            if waiting is not None:
                self._ready.append(waiting)
        if not self._ready:
            return None
        batch = self._ready.popleft()
        events: list[Event] = []
        for position, payload in batch.items:
            if position in self._read:
                events.append(self._read.pop(position))
            else:  # the spool checked the frame's checksum, so this decodes what submit() encoded
                events.append(orjson.loads(payload))
        encoded = [payload for _, payload in batch.items]
        return _InFlight(batch.items[-1][0], events, encoded, list(range(len(events))))

    def _attempt(self, inflight: _InFlight, now: float) -> None:
        """Send the items still to do, in this thread, and take the answer."""
        future: Future[list[Outcome]] = Future()
        try:
            future.set_result(self.sink.send(*inflight.to_send()))
        except StoreError as exc:
            future.set_exception(exc)
        self._settle(inflight, now, future)

    def _settle(self, inflight: _InFlight, now: float, answer: Future[list[Outcome]]) -> None:
        """Take the sink's answer for ``inflight``: what is done leaves its ``todo``.

        A :class:`StoreError` keeps the batch and backs off; any other exception is a bug and
        propagates (to the caller's thread, in background mode too). The spool and the acks
        move later, in order (:meth:`_finish_done`).
        """
        try:
            outcomes = answer.result()
        except StoreError as exc:
            self._counters["store_failures"] += 1
            kind = "unavailable" if isinstance(exc, StoreUnavailable) else "failed"
            self._later(inflight, now, f"store {kind}: {exc}")
            return
        retry: list[int] = []
        why: str | None = None
        for position, index in enumerate(inflight.todo):
            outcome = outcomes[position] if position < len(outcomes) else None
            if outcome is None or outcome.status == "retry":
                retry.append(index)
                why = why or (outcome.reason if outcome is not None else "no result from the store")
            elif outcome.status == "dead_letter":
                self._counters["dead_lettered"] += 1
            else:
                self._counters["events_out"] += 1
                self._counters["duplicates"] += outcome.duplicate
        inflight.todo = retry
        if retry:
            self._counters["retried"] += len(retry)
            # the store's reason (a refused index: shard limit, closed index…) is what the
            # sensor's health reports as its problem
            self._later(inflight, now, f"{len(retry)} events to retry: {(why or 'no reason given')[:300]}")

    def _later(self, inflight: _InFlight, now: float, reason: str) -> None:
        inflight.attempt += 1
        delay = self.backoff.delay(inflight.attempt)
        inflight.next_try = now + delay
        if inflight.attempt == 1 or self.last_error != reason:
            log.warning("delivery: %s; retrying in %.1fs (attempt %d)", reason, delay, inflight.attempt)
        self.last_error = reason

    # ---------------------------------------------------------------------- lifecycle
    def close(self, timeout: float = 10.0) -> bool:
        """Deliver what is spooled, for at most ``timeout`` seconds; ``True`` if all went.

        What is left stays in the spool (and unacknowledged at the source) for the next run.
        """
        deadline = self._clock() + timeout
        while not self.drained:
            self.pump(flush=True)
            now = self._clock()
            if self.drained or now >= deadline:
                break
            if self.sending:
                self.wait(deadline - now)
                continue
            waiting = [batch.next_try for batch in self._window if batch.todo and batch.answer is None]
            wait = min(waiting) - now if waiting else 0.0
            self._sleep(min(max(wait, 0.01), deadline - now))
        if self._sender is not None:
            # A send still on the wire past the deadline is abandoned: its events stay in the
            # spool, unacknowledged, and go again next run (same ids, so stored once).
            self._sender.stop()
        drained = self.drained
        self.spool.close()
        return drained

    def counters(self) -> dict[str, int]:
        """Health counters: the forwarder's, the spool's, and its size on disk."""
        counters = dict(self._counters)
        counters.update(self.spool.stats)
        counters["spool_bytes"] = self.spool.size
        return counters


__all__ = ["COUNTERS", "WHEN_FULL", "Ack", "Backoff", "Forwarder", "WhenFull"]
