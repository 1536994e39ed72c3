"""The log sensor: file tailers → parsers → forwarder → store, in one thread.

Each poll reads new lines from every input, parses each into exactly one event (a line no
parser understands becomes a ``parse_failure`` event keeping the raw text), and submits it to
the forwarder with an ack that moves the file's checkpoint once the event is delivered. When
the spool is full (``when_full: block``) the sensor stops reading until it has room again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from zoneinfo import ZoneInfo

from sensors.config import InputConfig, SensorConfig
from sensors.errors import SensorError
from sensors.forwarder import Backoff, Batcher, DeadLetterFile, Forwarder, Spool, StoreSink
from sensors.parsers import ParseContext, ParserSpec, get_parser
from sensors.parsers.syslog import escape_control
from sensors.sources.logfile import FileTailer, LogRecord
from soc_core.errors import ParseError
from soc_core.events import Event, add_tag, make_event, mark_parse_failure, utcnow
from soc_core.store.base import Store

log = logging.getLogger(__name__)

TRUNCATED_TAG = "truncated"


@dataclass
class _Input:
    config: InputConfig
    tailer: FileTailer
    parser: ParserSpec
    context_zone: ZoneInfo
    held: deque[tuple[Event, int]] = field(default_factory=deque)


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
        state = config.state_dir
        state.mkdir(parents=True, exist_ok=True)
        options = config.forwarder
        self.forwarder = Forwarder(
            StoreSink(store, dead_letters=DeadLetterFile(state / "dead-letters.jsonl")),
            Spool(
                state / "spool",
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
        )
        self.inputs = [self._input(item) for item in config.inputs]
        self.parse_failures = 0
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

    # ------------------------------------------------------------------------ running
    def step(self, *, final: bool = False) -> int:
        """One round: read, parse, submit, deliver. Returns lines read + events completed."""
        progressed = 0
        for source in self.inputs:
            if not self._offer(source):
                continue  # spool full or failing: leave the file where it is
            records = source.tailer.poll(self.max_records, final=final)
            progressed += len(records)
            context = ParseContext(now=self._now(), tz=source.context_zone)
            source.held.extend((self.build_event(source, record, context), record.token) for record in records)
            self._offer(source)
        progressed += self.forwarder.pump(flush=final)
        self._commit(force=final)
        return progressed

    def _offer(self, source: _Input) -> bool:
        """Submit held events in order; ``False`` if the forwarder cannot take more now."""
        while source.held:
            event, token = source.held[0]
            if not self.forwarder.submit(event, partial(source.tailer.ack, token)):
                return False
            source.held.popleft()
        return True

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
                    break
                time.sleep(0.02)  # backing off from a failing store
            if deadline is not None and time.monotonic() > deadline:
                self._commit(force=True)
                raise SensorError(
                    f"not idle after {timeout}s: {self.forwarder.last_error or 'still delivering'}",
                    hint="check that the store is reachable; spooled events are kept",
                )
        return self.counters()

    def close(self) -> bool:
        """Flush within the shutdown timeout, save checkpoints, close files and the spool."""
        for source in self.inputs:
            self._offer(source)
        drained = self.forwarder.close(self.config.forwarder.shutdown_timeout)
        if not drained:
            log.warning("shutdown: undelivered events stay in the spool for the next run")
        for source in self.inputs:
            source.tailer.close()
        return drained

    # ---------------------------------------------------------------------- the events
    def build_event(self, source: _Input, record: LogRecord, context: ParseContext) -> Event:
        """Exactly one event per line, parsed or not."""
        text = record.raw.decode("utf-8", errors="backslashreplace")
        failure = None
        try:
            fields = source.parser.parse(text, context)
        except ParseError as exc:
            fields, failure = {}, exc.message
        except Exception as exc:  # a parser bug must not lose the line or stop the sensor
            log.exception("parser %r failed on %s:%d", source.parser.name, record.path, record.offset)
            fields, failure = {}, f"parser {source.parser.name} failed: {exc!r}"
        timestamp = fields.pop("@timestamp", None)
        dataset = fields.pop("event.dataset", source.parser.dataset)
        fields["log.file.path"] = record.path
        fields["log.offset"] = record.offset
        event = make_event(
            tenant=self.config.tenant,
            dataset=dataset,
            sensor_id=self.config.sensor_id,
            source=record.source,
            position=record.offset,
            raw=record.raw,
            timestamp=timestamp if isinstance(timestamp, datetime) else None,
            fields=fields,
        )
        if failure is not None:
            self.parse_failures += 1
            event.setdefault("message", escape_control(text))
            mark_parse_failure(event, text, failure)
        if record.truncated:
            add_tag(event, TRUNCATED_TAG)
            event["log.flags"] = [TRUNCATED_TAG]
        return event

    # -------------------------------------------------------------------------- health
    def counters(self) -> dict[str, int]:
        """Forwarder, spool and tailer counters plus parse failures, for health reports."""
        counters = self.forwarder.counters()
        counters["parse_failures"] = self.parse_failures
        for source in self.inputs:
            for name, value in source.tailer.stats.items():
                counters[name] = counters.get(name, 0) + value
        return counters

    def bytes_acknowledged(self) -> int:
        """Sum of checkpoint offsets over every input (progress of one-shot imports)."""
        return sum(entry["offset"] for source in self.inputs for entry in source.tailer.checkpoints().values())


__all__ = ["TRUNCATED_TAG", "LogSensor"]
