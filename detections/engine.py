"""The streaming detection engine: new events in, alerts out, one pass over every enabled rule.

The pure core is :class:`~detections.evaluation.Evaluator` (compiled rules, routing by
:mod:`detections.routing`, correlation windows; events in, :class:`~detections.alerts.Detection`
out). :class:`DetectionEngine` is the thin shell around it that reads events from a
:class:`~soc_core.store.base.Store`, writes alerts and persists the checkpoint together with the
correlation state, so a restart neither misses nor re-evaluates events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any

from sigma.processing.pipeline import ProcessingPipeline

from soc_core.errors import ConfigError, Conflict, NotFound
from soc_core.events import format_timestamp, utcnow
from soc_core.store.base import Doc, DocWrite, ReadPlan, Store

from .alerts import DEFAULT_WINDOW, OPEN_STATUSES, Detection, group_detections
from .evaluation import Evaluator, compile_ruleset, tenant_and_id
from .intel import IntelDetector
from .lifecycle import RulePolicy
from .loader import RuleSet
from .pipelines import canhgac_pipeline
from .watchdog import report_slow_batch, time_rules
from .workers import WorkerError, WorkerPool, intel_in_order

log = logging.getLogger(__name__)

CHECKPOINT_KIND = "checkpoints"
CHECKPOINT_ID = "detection-engine"
OPEN_CACHE_SIZE = 10_000


@dataclass
class RunResult:
    events: int = 0
    detections: int = 0
    alerts_created: int = 0
    alerts_updated: int = 0
    redone_in_process: int = 0  # batches the worker processes failed and this process evaluated


class DetectionEngine:
    """Reads new events from a store, evaluates them, writes alerts and the checkpoint.

    Delivery: the checkpoint and correlation state are saved in one document after the alerts
    of a batch are written. A crash in between re-evaluates that batch on restart; alert ids
    are deterministic and merged event ids de-duplicated, so the replay updates the same alerts.

    Each batch is planned (:meth:`~soc_core.store.base.Store.plan_new_events`), then read.
    With ``workers`` > 1 that many forked processes (:class:`~detections.workers.WorkerPool`,
    started at the first batch) read and match the plan's blocks themselves, and this process
    emits the matches in stream order, so alerts and correlations are those of ``workers=1``.
    The batches are pipelined: while the workers match batch k this process plans batch k+1,
    and sends it to them before emitting batch k and writing its alerts; that planned batch is
    the next one :meth:`run_batch` evaluates (planned again if the checkpoint did not reach it).
    A batch the workers fail is read and evaluated again in this process (counted in
    :attr:`RunResult.redone_in_process`) — never lost nor doubled, since nothing of it was
    emitted. :meth:`close` stops the workers.
    """

    def __init__(
        self,
        rules: RuleSet,
        store: Store,
        *,
        suppression: timedelta = DEFAULT_WINDOW,
        max_keys: int = 100_000,
        max_items: int = 1_000,
        clock: Callable[[], Any] = utcnow,
        pipeline_factory: Callable[[], ProcessingPipeline] = canhgac_pipeline,
        policy: RulePolicy | None = None,
        workers: int = 1,
        slow_batch_seconds: float | None = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        if workers < 1:
            raise ConfigError(f"detection workers: need at least 1, not {workers}")
        self.store = store
        self.policy = policy or RulePolicy()
        self.suppression = suppression
        self.clock = clock
        self.compiled = compile_ruleset(rules, pipeline_factory=pipeline_factory, scopes=self.policy.scopes)
        self.errors = self.compiled.errors
        self.evaluator = Evaluator(self.compiled, max_keys=max_keys, max_items=max_items)
        self.checkpoint: str | None = None
        self._state_loaded = False
        self._open: dict[str, tuple[dict[str, Any], str]] = {}
        self.workers = workers
        # the watchdog (detections.watchdog): a batch over this many seconds is logged with its slowest rules
        self.slow_batch_seconds = slow_batch_seconds
        self.timer = timer
        self._pool: WorkerPool | None = None
        # the next batch, planned while the workers matched the last one: (planned after, limit, plan, checkpoint)
        self._ahead: tuple[str | None, int, ReadPlan, str] | None = None
        self.intel = IntelDetector(store)  # threat-intel lists raise alerts too (detections.intel)

    def load_state(self) -> None:
        """Read the checkpoint and correlation windows saved by the previous run."""
        try:
            doc = self.store.get_doc(CHECKPOINT_KIND, CHECKPOINT_ID)
        except NotFound:
            self.checkpoint = None
        else:
            self.checkpoint = doc.body.get("checkpoint")
            state = doc.body.get("correlation")
            if state:
                self.evaluator.correlation.restore(state)
        self._state_loaded = True

    def save_state(self) -> None:
        self.store.put_doc(
            CHECKPOINT_KIND,
            CHECKPOINT_ID,
            {
                "checkpoint": self.checkpoint,
                "correlation": self.evaluator.correlation.snapshot(),
                "updated_at": self._now(),
            },
        )

    def run_once(self, limit: int = 1000) -> int:
        """Evaluate the next batch of at most ``limit`` events; returns how many were read."""
        return self.run_batch(limit=limit).events

    def run_batch(self, *, limit: int = 1000) -> RunResult:
        if not self._state_loaded:
            self.load_state()
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[:2] == (self.checkpoint, limit):
            _, _, plan, checkpoint = ahead
        else:
            plan, checkpoint = self.store.plan_new_events(self.checkpoint, limit=limit)
        result = RunResult()
        if plan.blocks:
            started = self.timer()
            detections, batch = self._evaluate(plan, result, checkpoint=checkpoint, limit=limit)
            matched = self.timer()
            detections = self._admitted(detections, batch)
            result.detections = len(detections)
            self._write_alerts(detections, result)
            finished = self.timer()
            if self.slow_batch_seconds is not None and finished - started > self.slow_batch_seconds:
                self._report_slow(plan, result, seconds=finished - started, match_seconds=matched - started)
        if checkpoint != self.checkpoint:
            self.checkpoint = checkpoint
            self.save_state()
        return result

    def run_until_idle(self, *, limit: int = 1000, max_batches: int = 1_000_000) -> RunResult:
        """Process batches until the store has no new events (tests, backfills, CLI)."""
        total = RunResult()
        for _ in range(max_batches):
            before = self.checkpoint
            batch = self.run_batch(limit=limit)
            total.events += batch.events
            total.detections += batch.detections
            total.alerts_created += batch.alerts_created
            total.alerts_updated += batch.alerts_updated
            total.redone_in_process += batch.redone_in_process
            if batch.events == 0 and self.checkpoint == before:
                break
        return total

    def close(self) -> None:
        """Stop the worker processes, if any (idempotent; a later batch starts them again)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> DetectionEngine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _evaluate(
        self, plan: ReadPlan, result: RunResult, *, checkpoint: str, limit: int
    ) -> tuple[list[Detection], Sequence[Mapping[str, Any]]]:
        """Detections of a planned batch (the rules' and the threat-intel lists'), and the events
        behind them that this process holds. The workers look the events up in the lists
        themselves, so the batch is read once."""
        if self.workers > 1:
            try:
                if self._pool is None:
                    self._pool = WorkerPool(self.evaluator, self.store, workers=self.workers, intel=self.intel)
                if self._pool.pending is not plan:  # else it was sent ahead, with the last batch
                    self._pool.submit(plan)
                # pipelining: plan the next batch while the workers match this one, and send it
                # to them before this one is emitted and its alerts written
                ahead, then = self.store.plan_new_events(checkpoint, limit=limit)
                if ahead.blocks:
                    self._ahead = (checkpoint, limit, ahead, then)
                results = self._pool.receive()
                if ahead.blocks:
                    self._pool.submit(ahead)
                result.events = sum(part.events for part in results)
                # rules' detections, then threat intel's, each in stream order: as in one process
                listed, listed_events = intel_in_order(results)
                rule_events = [event for part in results for _, _, event in part.matched]
                return self._pool.emit(results) + listed, rule_events + listed_events
            except WorkerError as exc:
                log.warning("detection workers failed; batch evaluated in-process", extra={"error": exc.render()})
                result.redone_in_process += 1
        events = [event for _, event in self.store.read_plan(plan)]
        result.events = len(events)
        return self.evaluator.evaluate(events) + self.intel.detect(events), events

    def _report_slow(self, plan: ReadPlan, result: RunResult, *, seconds: float, match_seconds: float) -> None:
        """Log a batch over the threshold; when matching (not writing alerts) took most of the
        time, with the rules that took it, re-timed one by one on the batch's events."""
        assert self.slow_batch_seconds is not None
        rules = None
        if match_seconds >= seconds / 2:
            events = (event for _, event in self.store.read_plan(plan))
            rules = time_rules(self.evaluator, events, budget=self.slow_batch_seconds, timer=self.timer)
        report_slow_batch(
            seconds=seconds,
            match_seconds=match_seconds,
            events=result.events,
            threshold=self.slow_batch_seconds,
            rules=rules,
        )

    def _admitted(self, detections: list[Detection], batch: Sequence[Mapping[str, Any]]) -> list[Detection]:
        """Rule scopes and exceptions, applied before anything becomes an alert."""
        if not self.policy.scopes and not self.policy.exceptions:
            return detections
        by_id = {tenant_and_id(event): event for event in batch}  # ids are unique per tenant only
        now = self.clock()
        kept = []
        for detection in detections:
            events: list[Mapping[str, Any]] = []
            if self.policy.needs_events(detection):
                mine = {i: by_id[(detection.tenant, i)] for i in detection.event_ids if (detection.tenant, i) in by_id}
                missing = [i for i in detection.event_ids if i not in mine]
                mine.update((e["event.id"], e) for e in self.store.get_events(missing, tenants=(detection.tenant,)))
                events = [mine[i] for i in detection.event_ids if i in mine]
            if self.policy.admits(detection, events, now=now):
                kept.append(detection)
        return kept

    # alerts --------------------------------------------------------------------------------
    def _now(self) -> str:
        return format_timestamp(self.clock())

    def _write_alerts(self, detections: Sequence[Detection], result: RunResult) -> None:
        """A batch's alerts in one :meth:`Store.write_docs` call (one bulk request and refresh on
        Elasticsearch); a key whose write meets a conflict goes again on its own."""
        by_key: dict[str, list[Detection]] = {}
        for detection in detections:
            by_key.setdefault(detection.dedup_key, []).append(detection)
        writes: list[DocWrite] = []
        keys: list[tuple[str, bool]] = []  # per write: its key, and whether it updates the open alert
        for key, group in by_key.items():
            current = self._lookup_open(key, group[0].tenant)
            known = {key: current[0]} if current else {}
            for alert in group_detections(group, known, window=self.suppression, now=self._now()):
                update = current is not None and current[0].get("id") == alert["id"]
                writes.append(DocWrite(str(alert["id"]), alert, current[1] if current and update else None))
                keys.append((key, update))
        again: set[str] = set()
        for (key, update), written in zip(keys, self.store.write_docs("alerts", writes), strict=True):
            if isinstance(written, Conflict):
                again.add(key)  # changed meanwhile (an analyst), or a replay after a crash
                continue
            if update:
                result.alerts_updated += 1
            else:
                result.alerts_created += 1
            self._remember_open(key, written)
        for key in again:
            self._open.pop(key, None)
            self._write_key(key, by_key[key], result)

    def _remember_open(self, key: str, doc: Doc) -> None:
        if len(self._open) >= OPEN_CACHE_SIZE:
            self._open.clear()  # only a cache: the store answers misses
        self._open[key] = (dict(doc.body, id=doc.id), doc.version)

    def _lookup_open(self, key: str, tenant: str) -> tuple[dict[str, Any], str] | None:
        cached = self._open.get(key)
        if cached is not None:
            return cached
        page = self.store.list_docs(
            "alerts",
            tenants=(tenant,),
            filters={"dedup_key": key},
            sort="updated_at",
            descending=True,
            size=1,
        )
        for doc in page.items:
            if doc.body.get("status") in OPEN_STATUSES:
                found = (dict(doc.body, id=doc.id), doc.version)
                self._open[key] = found
                return found
        return None

    def _write_key(self, key: str, detections: list[Detection], result: RunResult) -> None:
        tenant = detections[0].tenant
        for _attempt in range(5):
            current = self._lookup_open(key, tenant)
            known = {key: current[0]} if current else {}
            alerts = group_detections(detections, known, window=self.suppression, now=self._now())
            try:
                for alert in alerts:
                    self._write_alert(key, alert, current, result)
            except Conflict:
                self._open.pop(key, None)
                continue
            return
        raise Conflict(f"alert {key} kept changing while the engine updated it", hint="retry later")

    def _write_alert(
        self,
        key: str,
        alert: dict[str, Any],
        current: tuple[dict[str, Any], str] | None,
        result: RunResult,
    ) -> None:
        alert_id = str(alert["id"])
        if current is not None and current[0].get("id") == alert_id:
            doc = self.store.update_doc("alerts", alert_id, alert, version=current[1])
            result.alerts_updated += 1
        else:
            try:
                doc = self.store.create_doc("alerts", alert, doc_id=alert_id)
            except Conflict:
                # A replay after a crash: that alert exists. Merge into it on the retry, unless
                # an analyst closed it meanwhile — then this detection was handled already.
                existing = self.store.get_doc("alerts", alert_id)
                if existing.body.get("status") not in OPEN_STATUSES:
                    return
                self._open[key] = (dict(existing.body, id=existing.id), existing.version)
                raise
            result.alerts_created += 1
        self._remember_open(key, doc)


__all__ = ["CHECKPOINT_ID", "CHECKPOINT_KIND", "DetectionEngine", "RunResult"]
