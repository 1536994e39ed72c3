"""The log sensors: file tailers (or a syslog receiver) → parsers → forwarder → store.

Each poll reads new lines from every input, parses each into exactly one event (a line no
parser understands becomes a ``parse_failure`` event keeping the raw text), and submits it to
the forwarder with an ack that moves the file's checkpoint once the event is delivered. When
the spool is full (``when_full: block``) the sensor stops reading until it has room again.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from sensors.config import ForwarderConfig, ImportConfig, InputConfig, SensorConfig, SyslogSensorConfig
from sensors.errors import SensorError
from sensors.forwarder import Backoff, Batcher, DeadLetterFile, Forwarder, Spool, StoreSink
from sensors.forwarder.forwarder import Ack
from sensors.health import Backlog
from sensors.parsers import Fields, ParseContext, ParserSpec, get_parser, windows
from sensors.parsers.context import PARSE_STATUS
from sensors.parsers.syslog import escape_control
from sensors.sources.evtx import EvtxFailure, EvtxRecord, read_evtx
from sensors.sources.evtx import fingerprint as evtx_fingerprint
from sensors.sources.jsonl import StreamLine
from sensors.sources.logfile import FileTailer, LogRecord
from sensors.sources.syslog import SyslogReceiver, SyslogRecord
from soc_core.errors import ParseError
from soc_core.events import Event, add_tag, make_event, mark_parse_failure, utcnow
from soc_core.store.base import Store

log = logging.getLogger(__name__)
MISFIT_MIN_LINES = 20  # lines of an input before its parser is judged (a short file: at its end)

TRUNCATED_TAG = "truncated"
INVALID_UTF8_FLAG = "invalid_utf8"
LOCAL_HOST = socket.gethostname()  # the files the log sensor tails are written on its own host
ORIGINAL_ENCODING = "log.original_encoding"  # "base64": event.original holds the raw bytes
# Events built between two looks at the forwarder: a batch the store has answered is followed by
# the next one at once, not after a whole poll's worth of parsing.
PUMP_EVERY = 128


def make_forwarder(state_dir: Path, options: ForwarderConfig, store: Store) -> Forwarder:
    """The forwarder every sensor uses: spool and dead letters under ``state_dir``."""
    state_dir.mkdir(parents=True, exist_ok=True)
    return Forwarder(
        StoreSink(store, dead_letters=DeadLetterFile(state_dir / "dead-letters.jsonl")),
        Spool(
            state_dir / "spool",
            max_bytes=options.spool_max_bytes,
            segment_bytes=options.spool_segment_bytes,
            fsync=options.fsync,
        ),
        batcher=Batcher(
            max_items=options.batch_max_events,
            max_bytes=options.batch_max_bytes,
            max_age=options.batch_max_age,
        ),
        when_full=options.when_full,
        backoff=Backoff(initial=options.backoff_initial, maximum=options.backoff_max),
        background=True,
    )


def offer(forwarder: Forwarder, held: deque[tuple[Event, Ack | None]]) -> bool:
    """Submit ``held`` events in order, a chunk per spool write, taking out those the forwarder
    took; ``False`` if it cannot take more now."""
    while held:
        chunk = list(itertools.islice(held, PUMP_EVERY))
        taken = forwarder.submit_many(chunk)
        for _ in range(taken):
            held.popleft()
        if taken < len(chunk):
            return False
    return True


def build_line_event(
    sensor: SensorIdentity,
    parser: ParserSpec,
    raw: bytes,
    context: ParseContext,
    *,
    source: str,
    position: str | int,
    extra: Fields,
    truncated: bool = False,
) -> tuple[Event, bool]:
    """Exactly one event for one line, parsed or not; and whether parsing failed.

    ``log.parse_status`` is ``ok``, ``partial`` (the parser's word; the raw line is kept in
    ``event.original``) or ``failed`` (tag ``parse_failure``, reason in ``error.message``).

    ``extra`` (where the line came from) overrides what the parser found.
    """
    text, original, invalid = decode_line(raw)
    failure = None
    try:
        fields = parser.parse(text, context)
    except ParseError as exc:
        fields, failure = {}, exc.message
    except Exception as exc:  # a parser bug must not lose the line or stop the sensor
        log.exception("parser %r failed on %s at %s", parser.name, source, position)
        fields, failure = {}, f"parser {parser.name} failed: {exc!r}"
    timestamp = fields.pop("@timestamp", None)
    dataset = fields.pop("event.dataset", parser.dataset)
    fields.update(extra)
    event = make_event(
        tenant=sensor.tenant,
        dataset=dataset,
        sensor_id=sensor.sensor_id,
        source=source,
        position=position,
        raw=raw,
        timestamp=timestamp if isinstance(timestamp, datetime) else None,
        fields=fields,
    )
    if failure is not None:
        event.setdefault("message", escape_control(text))
        mark_parse_failure(event, original, failure)
        event[PARSE_STATUS] = "failed"
    elif event.setdefault(PARSE_STATUS, "ok") == "partial":
        event.setdefault("event.original", original)  # defaults stand in for part of it: keep what came
    flags = []
    if truncated:
        add_tag(event, TRUNCATED_TAG)
        flags.append(TRUNCATED_TAG)
    if invalid:
        # The parsed text has U+FFFD where bytes were not UTF-8; the bytes themselves are kept.
        add_tag(event, INVALID_UTF8_FLAG)
        flags.append(INVALID_UTF8_FLAG)
        event["event.original"] = original
        event[ORIGINAL_ENCODING] = "base64"
    if flags:
        event["log.flags"] = flags
    return event, failure is not None


def decode_line(raw: bytes) -> tuple[str, str, bool]:
    """(text to parse, ``event.original``, whether ``raw`` was not UTF-8).

    Valid UTF-8 is both unchanged. Otherwise the text has U+FFFD for the bad bytes and the
    original is the raw bytes in base64, flagged by ``log.original_encoding: base64`` — an
    escape such as ``\\xff`` could not be told apart from a sender that wrote those four characters.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), base64.b64encode(raw).decode("ascii"), True
    return text, text, False


class SensorIdentity(Protocol):
    @property
    def tenant(self) -> str: ...

    @property
    def sensor_id(self) -> str: ...


@dataclass
class _Input:
    config: InputConfig
    tailer: FileTailer
    parser: ParserSpec
    context_zone: ZoneInfo
    held: deque[tuple[Event, Ack | None]] = field(default_factory=deque)
    lines: int = 0
    failures: int = 0
    misfit_reported: bool = False


class LogSensor:
    """Run the inputs of a :class:`SensorConfig` into ``store``.

    ``run(stop)`` follows the files until ``stop`` is set, then flushes within the shutdown
    timeout; ``run_until_idle()`` imports what is there now and returns (one-shot imports,
    tests). Call ``close()`` when done with a sensor that was only stepped.
    """

    def __init__(
        self,
        config: SensorConfig,
        store: Store,
        *,
        now: Callable[[], datetime] = utcnow,
        max_records: int = 1000,
    ) -> None:
        self.config = config
        self._now = now
        self.max_records = max_records
        self.forwarder = make_forwarder(config.state_dir, config.forwarder, store)
        self.inputs = [self._input(item) for item in config.inputs]
        self.parse_failures = 0
        self.backlog = Backlog()
        self._last_commit = 0.0

    def _input(self, item: InputConfig) -> _Input:
        tailer = FileTailer(
            item.paths,
            state_path=self.config.state_dir / "checkpoints" / f"{item.key}.json",
            from_beginning=item.from_beginning,
            exclude=item.exclude,
            fingerprint_bytes=item.fingerprint_bytes,
            max_line_bytes=item.max_line_bytes,
        )
        return _Input(item, tailer, get_parser(item.parser), ZoneInfo(item.timezone))

    def forget_checkpoints(self) -> None:
        """Before the first step: every file starts as new (``from_beginning`` or its end)."""
        for source in self.inputs:
            source.tailer.forget()

    # ------------------------------------------------------------------------ running
    def step(self, *, final: bool = False) -> int:
        """One round: read, parse, submit, deliver. Returns lines read + events completed."""
        progressed = 0
        for source in self.inputs:
            if not self._offer(source):
                continue  # spool full or failing: leave the file where it is
            if self.forwarder.saturated:
                break  # the store is behind: the files wait where they are
            records = source.tailer.poll(self.max_records, final=final)
            progressed += len(records)
            context = ParseContext(now=self._now(), tz=source.context_zone, host=LOCAL_HOST)
            for start in range(0, len(records), PUMP_EVERY):
                chunk = records[start : start + PUMP_EVERY]
                acks = self.backlog.track([partial(source.tailer.ack, record.token) for record in chunk])
                events = [self.build_event(source, record, context) for record in chunk]
                source.held.extend(zip(events, acks, strict=True))
                self._offer(source)
                progressed += self.forwarder.pump()
            self._check_fit(source, final=False)
        progressed += self.forwarder.pump(flush=final)
        self._commit(force=False)
        return progressed

    def _offer(self, source: _Input) -> bool:
        """Submit held events in order; ``False`` if the forwarder cannot take more now."""
        return offer(self.forwarder, source.held)

    def _commit(self, *, force: bool) -> None:
        now = time.monotonic()
        if force or now - self._last_commit >= self.config.checkpoint_interval:
            for source in self.inputs:
                source.tailer.commit()
            self._last_commit = now

    @property
    def idle(self) -> bool:
        """Nothing held back and everything spooled delivered."""
        return self.forwarder.drained and not any(source.held for source in self.inputs)

    def run(self, stop: threading.Event) -> bool:
        """Follow the inputs until ``stop`` is set; then flush. ``True`` if all was delivered."""
        while not stop.is_set():
            if self.step() == 0:
                if self.forwarder.sending:
                    self.forwarder.wait(self.config.poll_interval)
                else:
                    stop.wait(self.config.poll_interval)
        return self.close()

    def run_until_idle(self, *, timeout: float | None = None) -> dict[str, int]:
        """Read every input to its end and deliver everything; the counters when done.

        Also yields a last line without a newline. Raises :class:`SensorError` if ``timeout``
        seconds pass first (the store is down, say); what was read stays spooled.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.step(final=True) == 0:
                if self.idle:
                    self._commit(force=True)
                    break
                self.forwarder.idle_wait(0.02)  # the store answering, or backing off from a failing one
            if deadline is not None and time.monotonic() > deadline:
                self._commit(force=True)
                raise SensorError(
                    f"not idle after {timeout}s: {self.forwarder.last_error or 'still delivering'}",
                    hint="check that the store is reachable; spooled events are kept",
                )
        return self.counters()

    def _check_fit(self, source: _Input, *, final: bool) -> None:
        """Say once when an input's parser fails on most of its lines: the wrong ``parser`` for
        those files (dpkg.log read as auth), whose events are stored but nothing matches them.
        Judged after :data:`MISFIT_MIN_LINES` lines, or at the end of a short file."""
        enough = source.lines >= MISFIT_MIN_LINES or (final and source.lines > 0)
        if source.misfit_reported or not enough or source.failures * 2 <= source.lines:
            return
        source.misfit_reported = True
        log.warning(
            "parser %r does not fit %s: it failed on %d of %d lines; choose the parser of those files",
            source.parser.name,
            ", ".join(source.config.paths),
            source.failures,
            source.lines,
        )

    def close(self) -> bool:
        """Flush within the shutdown timeout, save checkpoints, close files and the spool."""
        for source in self.inputs:
            self._offer(source)
            self._check_fit(source, final=True)
        drained = self.forwarder.close(self.config.forwarder.shutdown_timeout)
        if not drained:
            log.warning("shutdown: undelivered events stay in the spool for the next run")
        for source in self.inputs:
            source.tailer.close()
        return drained

    # ---------------------------------------------------------------------- the events
    def build_event(self, source: _Input, record: LogRecord, context: ParseContext) -> Event:
        """Exactly one event per line, parsed or not."""
        event, failed = build_line_event(
            self.config,
            source.parser,
            record.raw,
            context,
            source=record.source,
            position=record.offset,
            extra={"log.file.path": record.path, "log.offset": record.offset},
            truncated=record.truncated,
        )
        self.parse_failures += failed
        source.lines += 1
        source.failures += failed
        return event

    # -------------------------------------------------------------------------- health
    def counters(self) -> dict[str, int]:
        """Forwarder, spool and tailer counters plus parse failures, for health reports."""
        counters = self.forwarder.counters()
        counters["parse_failures"] = self.parse_failures
        counters["lag_seconds"] = self.backlog.lag_seconds()
        for source in self.inputs:
            for name, value in source.tailer.stats.items():
                counters[name] = counters.get(name, 0) + value
        return counters

    def bytes_acknowledged(self) -> int:
        """Sum of checkpoint offsets over every input (progress of one-shot imports)."""
        return sum(entry["offset"] for source in self.inputs for entry in source.tailer.checkpoints().values())


class SyslogSensor:
    """A :class:`SyslogReceiver` → parser → forwarder → store, stepped from one thread.

    The receiver reads sockets in its own thread into a bounded queue; :meth:`step` takes
    records from it, builds one event per message and spools it. No acks: the network cannot
    be re-read, so a message is safe once spooled. When the spool is full (``block``) the events
    wait here and the receiver's queue fills, which stops it reading (see
    :mod:`sensors.sources.syslog`).
    """

    def __init__(self, config: SyslogSensorConfig, store: Store, *, now: Callable[[], datetime] = utcnow) -> None:
        self.config = config
        self._now = now
        self.forwarder = make_forwarder(config.state_dir, config.forwarder, store)
        self.parser = get_parser(config.parser)
        self.zone = ZoneInfo(config.timezone)
        self.receiver = SyslogReceiver(
            config.listeners(),
            max_message_bytes=config.max_message_bytes,
            max_connections=config.max_connections,
            idle_timeout=config.idle_timeout,
            queue_size=config.queue_size,
            udp_receive_buffer=config.udp_receive_buffer,
        )
        self.held: deque[tuple[Event, Ack | None]] = deque()
        self.parse_failures = 0
        self.backlog = Backlog()

    def start(self) -> None:
        self.receiver.start()

    def step(self, timeout: float = 0.0, max_records: int = 1000) -> int:
        """Take received messages, spool their events, deliver; returns messages + events done.

        Waits at most ``timeout`` for something to do: messages to arrive or, while a batch is
        with the sender thread, the store's answer — so spooled batches go out back to back.
        """
        progressed = 0
        # While the store keeps up but is behind, messages wait in the receiver's bounded queue
        # (as they would behind a synchronous send) rather than run far ahead into the spool.
        if self._offer() and not self.forwarder.saturated:
            waiting_for_store = self.forwarder.handed_off
            records = self.receiver.get(max_records, 0.0 if waiting_for_store else timeout)
            progressed += len(records)
            context = ParseContext(now=self._now(), tz=self.zone)
            for start in range(0, len(records), PUMP_EVERY):
                chunk = records[start : start + PUMP_EVERY]
                acks = self.backlog.track([None] * len(chunk))
                self.held.extend(zip([self.build_event(record, context) for record in chunk], acks, strict=True))
                self._offer()
                progressed += self.forwarder.pump()
        progressed += self.forwarder.pump(flush=not self.held and self.receiver.queued == 0)
        if progressed == 0 and self.forwarder.sending:
            self.forwarder.wait(timeout)
        return progressed

    def _offer(self) -> bool:
        return offer(self.forwarder, self.held)

    def build_event(self, record: SyslogRecord, context: ParseContext) -> Event:
        extra: Fields = {
            "log.source.address": record.peer,
            "log.syslog.transport": record.protocol,
            "log.syslog.peer.ip": record.peer_ip,
            "log.syslog.peer.port": record.peer_port,
            "observer.ingress.port": record.local_port,
        }
        event, failed = build_line_event(
            self.config,
            self.parser,
            record.raw,
            context,
            source=f"syslog/{record.protocol}/{record.peer}/{self.receiver.run_id}",
            position=record.sequence,
            extra=extra,
            truncated=record.truncated,
        )
        self.parse_failures += failed
        if self.config.keep_original:
            event.setdefault("event.original", decode_line(record.raw)[1])
        return event

    def run(self, stop: threading.Event) -> bool:
        """Receive until ``stop`` is set; then stop listening and deliver what was received."""
        self.start()
        while not stop.is_set():
            self.step(timeout=0.1)
        return self.close()

    def close(self) -> bool:
        """Stop the receiver, spool everything it queued, flush within the shutdown timeout."""
        self.receiver.stop()
        deadline = time.monotonic() + self.config.forwarder.shutdown_timeout
        while (self.held or self.receiver.queued) and time.monotonic() < deadline:
            if self.step() == 0:
                self.forwarder.idle_wait(0.02)
        left = len(self.held) + self.receiver.queued
        if left:
            log.error("shutdown: %d received syslog messages could not be spooled and are lost", left)
        return self.forwarder.close(self.config.forwarder.shutdown_timeout) and not left

    def counters(self) -> dict[str, int]:
        counters = self.forwarder.counters()
        counters.update(self.receiver.counters())
        counters["parse_failures"] = self.parse_failures
        counters["held"] = len(self.held)
        counters["lag_seconds"] = self.backlog.lag_seconds()
        return counters


def evtx_events(sensor: SensorIdentity, path: Path) -> Iterator[Event | EvtxFailure]:
    """The events of one .evtx file, as ``soc sensor evtx`` builds them; damaged parts as failures."""
    identity = f"evtx/{evtx_fingerprint(path)}"
    for item in read_evtx(path):
        yield item if isinstance(item, EvtxFailure) else evtx_record_event(sensor, item, identity, str(path))


def evtx_record_event(sensor: SensorIdentity, record: EvtxRecord, identity: str, path: str) -> Event:
    """One EVTX record through the Windows parser into an event (a parse failure is marked)."""
    failure = None
    try:
        fields = windows.from_evtx(json.loads(record.data))
    except ParseError as exc:
        fields, failure = {}, exc.message
    except Exception as exc:  # a parser bug must not lose the record or stop the import
        log.exception("windows parser failed on %s record %d", path, record.record_id)
        fields, failure = {}, f"windows parser failed: {exc!r}"
    timestamp = fields.pop("@timestamp", None)
    dataset = fields.pop("event.dataset", windows.DATASET)
    fields["log.file.path"] = path
    event = make_event(
        tenant=sensor.tenant,
        dataset=dataset,
        sensor_id=sensor.sensor_id,
        source=identity,
        position=record.record_id,
        raw=b"",  # (sensor, file fingerprint, record id) identify a record on their own
        timestamp=timestamp if isinstance(timestamp, datetime) else None,
        fields=fields,
    )
    if failure is not None:
        mark_parse_failure(event, record.data, failure)
    return event


class EventImport:
    """A one-shot import of a finite source (EVTX files, stdin) through the forwarder.

    :meth:`submit` spools an event, delivering batches while the spool is full (``block``);
    :meth:`finish` delivers the rest. Guarantee: at least once from the spool on; the sources
    are re-read from the start on a re-run, and their deterministic ids make that harmless.
    """

    def __init__(self, config: ImportConfig, store: Store, *, now: Callable[[], datetime] = utcnow) -> None:
        self.config = config
        self.now = now
        self.zone = ZoneInfo(config.timezone)
        self.forwarder = make_forwarder(config.state_dir, config.forwarder, store)
        self.stats = {"records": 0, "read_failures": 0, "parse_failures": 0}

    def context(self) -> ParseContext:
        return ParseContext(now=self.now(), tz=self.zone)

    def submit(self, event: Event) -> None:
        self.stats["records"] += 1
        self.stats["parse_failures"] += "parse_failure" in (event.get("tags") or ())
        while not self.forwarder.submit(event):
            if self.forwarder.pump(flush=True) == 0:
                self.forwarder.idle_wait(0.02)  # spool full: the store answering, or backing off
        self.forwarder.pump()
        while self.forwarder.saturated:  # read no further ahead than the store can take
            self.forwarder.wait(1.0)
            self.forwarder.pump()

    def lines(self, lines: Iterable[StreamLine], parser: ParserSpec, *, source: str) -> None:
        """Parse and submit every line of a stream (stdin)."""
        context = self.context()
        for line in lines:
            event, _ = build_line_event(
                self.config,
                parser,
                line.raw,
                context,
                source=source,
                position=line.offset,
                extra={"log.offset": line.offset, "log.file.path": source},
                truncated=line.truncated,
            )
            self.submit(event)

    def evtx_file(self, path: Path) -> int:
        """Import every record of one .evtx file; damaged chunks/records are counted."""
        records = 0
        for item in evtx_events(self.config, path):
            if isinstance(item, EvtxFailure):
                self.stats["read_failures"] += 1
                log.warning("%s", item.reason)
                continue
            records += 1
            self.submit(item)
        return records

    def evtx_event(self, record: EvtxRecord, identity: str, path: str) -> Event:
        return evtx_record_event(self.config, record, identity, path)

    def finish(self) -> bool:
        """Deliver everything spooled; ``True`` if all of it went within the shutdown timeout."""
        return self.forwarder.close(self.config.forwarder.shutdown_timeout)

    def counters(self) -> dict[str, int]:
        counters = self.forwarder.counters()
        counters.update(self.stats)
        return counters


__all__ = [
    "TRUNCATED_TAG",
    "EventImport",
    "LogSensor",
    "SensorIdentity",
    "SyslogSensor",
    "build_line_event",
    "evtx_events",
    "evtx_record_event",
    "make_forwarder",
]
