"""Which rules made a detection batch slow (scenario H4's watchdog).

The engine times each batch as a whole — two clock reads per batch, nothing per event or rule.
Only a batch over ``detection.slow_batch_seconds`` is looked into: its events are matched
again with every rule timed on its own, for at most a time budget, so the normal path pays
nothing and a slow batch costs at most that budget more.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from soc_core.events import TENANT_FIELD

from .evaluation import Evaluator

log = logging.getLogger("canhgac.detections.watchdog")
SLOWEST = 3


@dataclass
class RuleTimes:
    """Seconds spent in each rule's matcher over the events timed (``timed`` of ``events``)."""

    seconds: dict[str, float] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)
    timed: int = 0
    events: int = 0

    def slowest(self, count: int = SLOWEST) -> list[dict[str, Any]]:
        ranked = sorted(self.seconds.items(), key=lambda item: item[1], reverse=True)[:count]
        return [{"rule": rule, "title": self.titles[rule], "seconds": round(spent, 6)} for rule, spent in ranked]


def time_rules(
    evaluator: Evaluator, events: Iterable[Mapping[str, Any]], *, budget: float, timer: Callable[[], float]
) -> RuleTimes:
    """Match ``events`` again, timing every rule the engine would run on each (routing and the
    prefilter decide which, as in :meth:`Evaluator.stream_match`); stops once ``budget``
    seconds went by. Nothing is emitted and no statistics change."""
    times = RuleTimes()
    stop_at = timer() + budget
    for event in events:
        times.events += 1
        if timer() >= stop_at:
            continue  # counted, not timed: the log says how much of the batch was timed
        times.timed += 1
        tenant = event.get(TENANT_FIELD)
        if not isinstance(tenant, str) or not tenant:
            continue
        for rule in evaluator.candidates(event):
            began = timer()
            # a failing rule is counted by the engine's own pass over the batch, not here
            with contextlib.suppress(TypeError, ValueError, AttributeError):
                rule.matcher(event)
            rule_id = rule.meta.id
            times.seconds[rule_id] = times.seconds.get(rule_id, 0.0) + timer() - began
            times.titles[rule_id] = rule.meta.name
    return times


def report_slow_batch(
    *, seconds: float, match_seconds: float, events: int, threshold: float, rules: RuleTimes | None
) -> None:
    """One structured warning for a batch over the threshold."""
    extra: dict[str, Any] = {
        "seconds": round(seconds, 3),
        "match_seconds": round(match_seconds, 3),
        "write_seconds": round(seconds - match_seconds, 3),
        "events": events,
        "threshold_seconds": threshold,
    }
    if rules is not None:
        extra.update(slowest_rules=rules.slowest(), timed_events=rules.timed)
    log.warning("slow detection batch", extra=extra)


__all__ = ["SLOWEST", "RuleTimes", "report_slow_batch", "time_rules"]
