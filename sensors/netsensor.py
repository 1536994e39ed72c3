"""The network sensor: packet source → :class:`PacketAnalyzer` → events → forwarder → store.

The same forwarder as the log sensors (spool, batches, at-least-once) carries the events. A
pcap import uses deterministic event ids (file path + packet index), so importing the same
file twice stores each event once; live capture mixes a per-run id into the positions.

Loss accounting, every ``interval`` seconds (and at stop): a health dict with the kernel's
received and dropped counts (``PACKET_STATISTICS``; received includes dropped), the frames the
sensor read, decoded, left unsupported or failed to decode, and the loss ratio. When the loss
ratio (dropped / received) is above ``loss_threshold`` the sensor also stores a health event
(``event.dataset: canhgac.sensor_health``, ``event.kind: metric``). A restart starts a new
``run_id``, so a gap between runs is visible in the health reports.

The same numbers reach the SOC API through :class:`~sensors.health.HealthReporter`:
:meth:`NetworkSensor.heartbeat_counters` is its ``counters`` callable (the CLI wires it with
``--health-api-url``/``--health-key-file`` or a YAML ``health:`` section). A heartbeat carries
the run's totals as of the latest interval report (or pcap chunk, or stop) and, as
``kernel_received``/``kernel_dropped``, the worst interval since the previous heartbeat — the
API's loss ratio, hence its ``degraded`` status, follows exactly the sensor's own per-interval
verdict. In the API's terms ``kernel_received`` excludes the dropped packets; the totals are
``kernel_received_total`` (including drops, as the kernel counts) and ``kernel_dropped_total``.
Heartbeats use the sensor's ``run_id``, so the API counts a restart when it changes.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sensors.config import ForwarderConfig
from sensors.packets.analyzer import AnalyzerOptions, PacketAnalyzer, Record
from sensors.pipeline import make_forwarder
from sensors.sources.network import CaptureError, Frame, KernelStats, LiveCapture, PcapFile
from soc_core.events import Event, check_tenant_id, make_event, utcnow
from soc_core.store.base import Store

log = logging.getLogger(__name__)

HEALTH_DATASET = "canhgac.sensor_health"


@dataclass(frozen=True)
class NetSensorSettings:
    tenant: str
    sensor_id: str
    state_dir: Path
    interval: float = 10.0
    loss_threshold: float = 0.10
    analyzer: AnalyzerOptions = field(default_factory=AnalyzerOptions)
    forwarder: ForwarderConfig = field(default_factory=ForwarderConfig)


class NetworkSensor:
    """Turn frames into events in ``store``; see the module docstring."""

    def __init__(
        self,
        settings: NetSensorSettings,
        store: Store,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_health: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        check_tenant_id(settings.tenant)
        self.settings = settings
        self._clock = clock
        self.on_health = on_health
        self.run_id = uuid.uuid4().hex[:16]
        self.analyzer = PacketAnalyzer(settings.analyzer)
        self.forwarder = make_forwarder(settings.state_dir, settings.forwarder, store)
        self._held: deque[Event] = deque()
        self._interval_index = 0
        self._last_report = clock()
        self._reported = dict.fromkeys(("packets", "decoded", "unsupported", "decode_errors"), 0)
        self.health_reports: list[dict[str, Any]] = []
        self.health_events = 0
        self.kernel_totals = KernelStats(0, 0)
        # What heartbeats read from the reporter's thread: replaced (never mutated) under the lock.
        self._lock = threading.Lock()
        self._published: dict[str, int] = {}
        self._worst: KernelStats | None = None  # worst interval since the previous heartbeat
        self._heartbeat_kernel: KernelStats | None = None
        self._publish()

    # ------------------------------------------------------------------------- frames
    def feed(self, frames: Iterable[Frame], *, source: str, first_position: int = 0) -> int:
        """Analyse frames (positions count from ``first_position``); returns the next position."""
        feed = self.analyzer.feed
        position = first_position
        for frame in frames:
            feed(frame.timestamp, frame.data, frame.wire_len, frame.linktype, position)
            position += 1
        self._queue(self.analyzer.drain(), source)
        return position

    def _queue(self, records: list[Record], source: str) -> None:
        settings = self.settings
        prefix = "" if source.startswith("pcap:") else f"{self.run_id}:"
        for record in records:
            self._held.append(
                record_event(record, tenant=settings.tenant, sensor_id=settings.sensor_id, source=source, prefix=prefix)
            )

    def deliver(self, *, flush: bool = False) -> bool:
        """Submit held events and pump the forwarder; ``False`` while the spool is full."""
        while self._held:
            if not self.forwarder.submit(self._held[0]):
                self.forwarder.pump(flush=True)
                return False
            self._held.popleft()
        self.forwarder.pump(flush=flush)
        return True

    # ---------------------------------------------------------------------- pcap files
    def import_pcap(
        self, path: str | Path, *, progress: Callable[[int, int], None] | None = None, chunk: int = 2048
    ) -> dict[str, int]:
        """Read a whole pcap/pcapng file, deliver its events; the analyzer counters after it.

        A file that breaks off (a record that cannot be framed) raises :class:`CaptureError`
        after the packets read before the damage are analysed and delivered, and its flows ended,
        so a batch import can report the file and go on with the next one.
        """
        failure: CaptureError | None = None

        def readable(pcap: PcapFile) -> Iterator[Frame]:
            nonlocal failure
            try:
                yield from pcap
            except CaptureError as exc:
                failure = exc

        with PcapFile(path) as pcap:
            source = f"pcap:{pcap.path.resolve()}"
            position = 0
            frames = readable(pcap)
            while True:
                batch = [frame for _, frame in zip(range(chunk), frames, strict=False)]
                if not batch:
                    break
                position = self.feed(batch, source=source, first_position=position)
                while not self.deliver():
                    time.sleep(0.01)  # spool full: wait for the store to catch up
                self._publish()
                if progress is not None:
                    progress(pcap.position, pcap.size)
            self.analyzer.flush()
            self._queue(self.analyzer.drain(), source)
            counters = self.analyzer.stats()
            counters["truncated_records"] = pcap.truncated
        while not self.deliver(flush=True):
            time.sleep(0.01)
        self._publish()
        if failure is not None:
            raise failure
        return counters

    # ---------------------------------------------------------------------- live capture
    def run_live(self, capture: LiveCapture, stop: threading.Event, *, batch: int = 512) -> bool:
        """Capture until ``stop`` is set, then drain what the socket holds, flush flows and deliver."""
        source = f"iface:{capture.interface}"
        position = 0
        self._last_report = self._clock()
        while not stop.is_set():
            if self._held and not self.deliver():
                time.sleep(0.005)  # store behind: stop reading, the kernel counts what it drops
            else:
                frames = capture.read(batch, timeout=0.1)
                position = self.feed(frames, source=source, first_position=position)
                if not frames:
                    self.analyzer.expire(time.time())
                    self._queue(self.analyzer.drain(), source)
                self.deliver()
            if self._clock() - self._last_report >= self.settings.interval:
                self.report(capture.kernel_stats())
        capture.close_intake()  # under traffic the queue would never empty otherwise
        while True:
            frames = capture.read(batch, timeout=0.05)
            if not frames:
                break
            position = self.feed(frames, source=source, first_position=position)
            self.deliver()
        self.analyzer.flush()
        self._queue(self.analyzer.drain(), source)
        self.report(capture.kernel_stats())
        return self.close()

    # --------------------------------------------------------------------------- health
    def report(self, kernel: KernelStats | None = None) -> dict[str, Any]:
        """The health dict of the interval since the last report (see the module docstring)."""
        now = self._clock()
        counters = self.analyzer.counters
        delta = {name: counters[name] - self._reported[name] for name in self._reported}
        self._reported = {name: counters[name] for name in self._reported}
        self.analyzer.new_interval()
        health: dict[str, Any] = {
            "run_id": self.run_id,
            "interval": self._interval_index,
            "seconds": round(now - self._last_report, 3),
            "received": delta["packets"],
            "decoded": delta["decoded"],
            "unsupported": delta["unsupported"],
            "decode_errors": delta["decode_errors"],
            "flows_active": len(self.analyzer.flows),
            "flows_evicted": self.analyzer.flows.stats["flows_evicted"],
        }
        loss = 0.0
        if kernel is not None:
            health["kernel_received"] = kernel.received
            health["kernel_dropped"] = kernel.dropped
            loss = _loss(kernel)
            self.kernel_totals = KernelStats(
                self.kernel_totals.received + kernel.received, self.kernel_totals.dropped + kernel.dropped
            )
        health["loss_ratio"] = round(loss, 4)
        health["degraded"] = loss > self.settings.loss_threshold
        self._interval_index += 1
        self._last_report = now
        self.health_reports.append(health)
        del self.health_reports[:-100]
        if health["degraded"]:
            log.warning("capture loss %.1f%% above %.1f%%: %s", loss * 100, self.settings.loss_threshold * 100, health)
            self._health_event(health)
        self._publish(kernel)
        if self.on_health is not None:
            self.on_health(health)
        return health

    def _publish(self, kernel: KernelStats | None = None) -> None:
        """Snapshot the counters for heartbeats (taken on the sensor's thread, so consistent)."""
        published = self.counters()
        published["intervals"] = self._interval_index
        published["kernel_received_total"] = self.kernel_totals.received
        published["kernel_dropped_total"] = self.kernel_totals.dropped
        with self._lock:
            self._published = published
            if kernel is not None and (self._worst is None or _loss(kernel) > _loss(self._worst)):
                self._worst = kernel

    def heartbeat_counters(self) -> dict[str, int]:
        """The counters of the next heartbeat (see the module docstring); safe from any thread."""
        with self._lock:
            counters = dict(self._published)
            if self._worst is not None:
                self._heartbeat_kernel, self._worst = self._worst, None
            kernel = self._heartbeat_kernel  # no interval ended since: repeat the last verdict
        if kernel is not None:
            counters["kernel_received"] = kernel.received - kernel.dropped
            counters["kernel_dropped"] = kernel.dropped
        return counters

    def _health_event(self, health: dict[str, Any]) -> None:
        fields: dict[str, Any] = {
            "event.module": "canhgac",
            "event.category": ["host"],
            "event.type": ["info"],
            "event.action": "capture-loss",
            "event.reason": f"capture loss {health['loss_ratio']:.1%} above {self.settings.loss_threshold:.0%}",
            "canhgac.sensor.status": "degraded",
            "canhgac.sensor.type": "network",
        }
        fields.update({f"canhgac.sensor.{name}": value for name, value in health.items() if name != "degraded"})
        event = make_event(
            tenant=self.settings.tenant,
            dataset=HEALTH_DATASET,
            sensor_id=self.settings.sensor_id,
            source="health",
            position=f"{self.run_id}:{health['interval']}",
            raw=repr(sorted(health.items())).encode(),
            timestamp=utcnow(),
            fields=fields,
            kind="metric",
        )
        self._held.append(event)
        self.health_events += 1

    # -------------------------------------------------------------------------- lifecycle
    def close(self) -> bool:
        """Deliver what is held and spooled within the shutdown timeout."""
        self.deliver(flush=True)
        deadline = time.monotonic() + self.settings.forwarder.shutdown_timeout
        while self._held and time.monotonic() < deadline:
            if not self.deliver(flush=True):
                time.sleep(0.01)
        closed = self.forwarder.close(max(deadline - time.monotonic(), 0.0)) and not self._held
        self._publish()
        return closed

    def counters(self) -> dict[str, int]:
        counters = self.forwarder.counters()
        counters.update(self.analyzer.stats())
        counters["health_events"] = self.health_events
        return counters


def record_event(record: Record, *, tenant: str, sensor_id: str, source: str, prefix: str = "") -> Event:
    """One analyzer record as an event (``prefix`` before its position: the run id of a live capture)."""
    event = make_event(
        tenant=tenant,
        dataset=record.dataset,
        sensor_id=sensor_id,
        source=source,
        position=prefix + record.position,
        raw=record.raw,
        timestamp=datetime.fromtimestamp(record.timestamp, UTC),
        fields=record.fields,
    )
    event["event.module"] = "network"
    event["observer.type"] = "sensor"
    return event


def _loss(kernel: KernelStats) -> float:
    return kernel.dropped / kernel.received if kernel.received else 0.0


__all__ = ["HEALTH_DATASET", "NetSensorSettings", "NetworkSensor", "record_event"]
