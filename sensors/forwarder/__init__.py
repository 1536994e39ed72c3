"""Batching, spooling and delivery of events to a store (see :mod:`.forwarder`)."""

from __future__ import annotations

from sensors.forwarder.batcher import Batch, Batcher
from sensors.forwarder.forwarder import COUNTERS, WHEN_FULL, Backoff, Forwarder, WhenFull
from sensors.forwarder.sinks import DeadLetterFile, Outcome, Sink, StoreSink
from sensors.forwarder.spool import Position, Spool

__all__ = [
    "COUNTERS",
    "WHEN_FULL",
    "Backoff",
    "Batch",
    "Batcher",
    "DeadLetterFile",
    "Forwarder",
    "Outcome",
    "Position",
    "Sink",
    "Spool",
    "StoreSink",
    "WhenFull",
]
