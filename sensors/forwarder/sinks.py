"""Where the forwarder delivers: sinks report one outcome per event.

A sink translates its backend's answer into ``delivered`` (stored, including "already
stored"), ``retry`` (transient, try again later) or ``dead_letter`` (will never be accepted;
kept in a dead-letter file with the reason). A batch-wide outage is raised as
:class:`~soc_core.errors.StoreUnavailable`, and the forwarder keeps everything and backs off.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import orjson

from soc_core.events import Event, utcnow
from soc_core.events import format_timestamp as iso
from soc_core.store.base import PreparedEvents, Store

log = logging.getLogger(__name__)

DeliveryStatus = Literal["delivered", "retry", "dead_letter"]


@dataclass(frozen=True)
class Outcome:
    status: DeliveryStatus
    reason: str | None = None
    duplicate: bool = False


DELIVERED = Outcome("delivered")
DELIVERED_DUPLICATE = Outcome("delivered", duplicate=True)


class Sink(Protocol):
    """Delivers batches; ``send`` returns one :class:`Outcome` per event, in order.

    ``send`` is ``deliver(prepare(…))``: ``prepare`` does the work that needs no store
    (checking, serialising), so a forwarder can do it while the previous batch is on the wire.
    """

    def prepare(self, events: Sequence[Event], encoded: Sequence[bytes] | None = None) -> PreparedEvents: ...

    def deliver(self, prepared: PreparedEvents) -> list[Outcome]: ...

    def send(self, events: Sequence[Event], encoded: Sequence[bytes] | None = None) -> list[Outcome]: ...


class DeadLetterFile:
    """Append-only JSONL of events a sink will never accept: ``{"time", "reason", "event"}``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def write(self, rejected: Sequence[tuple[Event, str]]) -> None:
        """Append and flush; an ``OSError`` propagates so nothing is acknowledged."""
        if not rejected:
            return
        now = iso(utcnow())
        lines = b"".join(
            orjson.dumps({"time": now, "reason": reason, "event": event}, default=str) + b"\n"
            for event, reason in rejected
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as handle:
            handle.write(lines)
            handle.flush()


class StoreSink:
    """Write to a :class:`~soc_core.store.base.Store` through ``add_events``.

    Guarantee: an event is ``delivered`` only when the store said created or duplicate, and
    ``dead_letter`` only once it is in the dead-letter file. The caller owns (and closes) the
    store.

    The store's (idempotent) ``setup`` — tables, index templates — runs here, before the first
    write, not when the sensor starts: a sensor must start and spool while its store is down.
    Until it succeeds, ``send`` raises what ``setup`` raised (``StoreUnavailable`` while the
    store is unreachable), so the forwarder keeps the batch and backs off as for a failed write.
    """

    def __init__(self, store: Store, *, dead_letters: DeadLetterFile) -> None:
        self.store = store
        self.dead_letters = dead_letters
        self._store_ready = False

    def send(self, events: Sequence[Event], encoded: Sequence[bytes] | None = None) -> list[Outcome]:
        """Outcomes per event; ``encoded`` (the events as the spool holds them) saves re-encoding."""
        return self.deliver(self.prepare(events, encoded))

    def prepare(self, events: Sequence[Event], encoded: Sequence[bytes] | None = None) -> PreparedEvents:
        return self.store.prepare_events(events, encoded=encoded)

    def deliver(self, prepared: PreparedEvents) -> list[Outcome]:
        if not self._store_ready:
            self.store.setup()
            self._store_ready = True
            log.info("store %s is set up; delivering", self.store.name)
        result = self.store.add_prepared(prepared)  # StoreUnavailable propagates: back off
        events = prepared.events
        items = result.items
        if len(items) != len(events):
            log.error(
                "store %s answered %d results for %d events; retrying the unanswered ones",
                self.store.name,
                len(items),
                len(events),
            )
        outcomes: list[Outcome] = []
        rejected: list[tuple[Event, str]] = []
        for index, event in enumerate(events):
            item = items[index] if index < len(items) else None
            if item is None:
                outcomes.append(Outcome("retry", "no result from the store"))
            elif item.stored:
                outcomes.append(DELIVERED_DUPLICATE if item.status == "duplicate" else DELIVERED)
            elif item.status == "rejected":
                reason = item.reason or "rejected by the store"
                rejected.append((event, reason))
                outcomes.append(Outcome("dead_letter", reason))
            else:
                outcomes.append(Outcome("retry", item.reason))
        try:
            self.dead_letters.write(rejected)
        except OSError as exc:
            log.error("cannot write dead letters to %s: %s", self.dead_letters.path, exc)
            reason = f"dead-letter file not writable: {exc}"
            outcomes = [Outcome("retry", reason) if o.status == "dead_letter" else o for o in outcomes]
        return outcomes


__all__ = ["DeadLetterFile", "DeliveryStatus", "Outcome", "Sink", "StoreSink"]
