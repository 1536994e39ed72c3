"""Sensor health: how far behind a sensor is, and heartbeats carrying its counters to the SOC API.

* :class:`Backlog` measures lag: seconds since the oldest event this run has read but not yet
  delivered (or dead-lettered, or dropped on purpose) was read — 0 when everything is done.
  Events a previous run left in the spool are not in it; ``spool_bytes`` shows those.
* :class:`HealthReporter` posts ``{"run_id", "counters", "problem", "interval_seconds"}`` to
  ``{api_url}/api/sensors/heartbeat`` with the sensor's SOC API key, every ``interval`` seconds,
  from its own thread. ``problem`` is why delivery fails now (the forwarder's last error: the
  store down, or events to retry with the store's reason, such as a refused index), if it does;
  the API then shows the sensor degraded with that reason. Delivery
  guarantee: none — a heartbeat that fails is logged and the next one (with newer counters)
  is sent an interval later; ingestion never waits for it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

import httpx

from sensors.config import HealthConfig
from sensors.forwarder.forwarder import Ack
from soc_core import __version__
from soc_core.secret_files import read_secret

log = logging.getLogger(__name__)

HEARTBEAT_PATH = "/api/sensors/heartbeat"
MAX_COUNTERS = 100  # what the API accepts in one heartbeat
MAX_NAME = 64
MAX_PROBLEM = 1000  # characters of the problem text the API accepts


class Backlog:
    """Read times of events not yet done, oldest first; thread-safe (the reporter reads it).

    Events read together are tracked as one chunk with one read time (one clock per chunk, not
    per event, keeps this off the per-line cost). A chunk is done when its last event is: the
    forwarder acknowledges in spool order, so by then every event of the chunk is. An event
    dropped on purpose (``drop_newest``) is acknowledged at once, out of that order; a chunk
    whose last event was dropped stops its clock early.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: OrderedDict[int, float] = OrderedDict()
        self._next = 0

    def track(self, acks: Sequence[Ack | None]) -> list[Ack | None]:
        """Start the clock for a chunk of events; their acks, the last one also stopping it."""
        if not acks:
            return []
        with self._lock:
            token = self._next
            self._next += 1
            self._pending[token] = self._clock()
        last = acks[-1]

        def done() -> None:
            with self._lock:
                self._pending.pop(token, None)
            if last is not None:
                last()

        return [*acks[:-1], done]

    def lag_seconds(self) -> int:
        with self._lock:
            if not self._pending:
                return 0
            oldest = next(iter(self._pending.values()))
        return max(0, int(self._clock() - oldest))


def heartbeat_counters(counters: Mapping[str, int]) -> dict[str, int]:
    """What the API accepts: at most 100 names of at most 64 characters, integers >= 0."""
    kept = {name: max(0, int(value)) for name, value in sorted(counters.items()) if len(name) <= MAX_NAME}
    return dict(list(kept.items())[:MAX_COUNTERS])


class HealthReporter:
    """Posts the sensor's counters every ``config.interval`` seconds until :meth:`stop`."""

    def __init__(
        self,
        config: HealthConfig,
        counters: Callable[[], Mapping[str, int]],
        *,
        api_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
        problem: Callable[[], str | None] | None = None,
    ) -> None:
        self.config = config
        self._counters = counters
        self._problem = problem
        key = api_key if api_key is not None else read_secret(config.api_key_file, what="SOC API key")
        self.run_id = uuid.uuid4().hex
        self._client = httpx.Client(
            base_url=config.api_url,
            headers={"Authorization": f"Bearer {key}", "User-Agent": f"canhgac-sensor/{__version__}"},
            timeout=config.timeout,
            transport=transport,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_problem: str | None = None
        self.sent = 0
        self.failed = 0

    def report_once(self) -> bool:
        """Send one heartbeat now; ``True`` if the API took it. Problems are logged, not raised."""
        body: dict[str, object] = {
            "run_id": self.run_id,
            "counters": heartbeat_counters(self._counters()),
            "interval_seconds": self.config.interval,  # uptime reports expect one heartbeat per interval
        }
        problem = self._problem() if self._problem is not None else None
        if problem:
            body["problem"] = problem[:MAX_PROBLEM]
        where = f"{self.config.api_url}{HEARTBEAT_PATH}"
        try:
            response = self._client.post(HEARTBEAT_PATH, json=body)
        except httpx.HTTPError as exc:
            return self._failed(f"cannot reach {where}: {exc!r}")
        if response.status_code in (401, 403):
            return self._failed(
                f"{where} refused the sensor's API key ({response.status_code}); check health.api_key_file",
                level=logging.ERROR,
            )
        if response.status_code != 200:
            return self._failed(f"{where} answered {response.status_code}: {response.text[:200]}")
        if self._last_problem is not None:
            log.info("health: heartbeats reach %s again", where)
        self._last_problem = None
        self.sent += 1
        return True

    def _failed(self, problem: str, *, level: int = logging.WARNING) -> bool:
        self.failed += 1
        if problem != self._last_problem:  # once per distinct problem, not every interval
            log.log(level, "health: %s; trying again in %.0fs", problem, self.config.interval)
        self._last_problem = problem
        return False

    def _loop(self) -> None:
        while not self._stop.wait(self.config.interval):
            self.report_once()

    def start(self) -> None:
        """Report now, then every interval from a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="sensor-health", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.report_once()
        self._loop()

    def stop(self) -> None:
        """Stop reporting and send the final counters (one try, bounded by the timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.config.timeout + 1)
            self._thread = None
        self.report_once()
        self._client.close()


__all__ = ["Backlog", "HealthReporter", "heartbeat_counters"]
