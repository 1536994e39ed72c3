"""Threat-intel lists raise alerts as rules do: the engine's hook (:class:`IntelDetector`).

Every event of a batch is looked up (:mod:`intel.lookup`) in the lists of its agency and the
province-wide ones; each (event, listed indicator) is a :class:`~detections.alerts.Detection`
of the synthetic rule ``intel:<list>``, its level from the indicator's confidence
(:func:`intel.indicators.level_for`), grouped by the indicator so repeats fold into one alert,
with the hit (field, value, list, source, first seen, confidence) in the alert's ``details``.
Rule exceptions apply to it like to any rule (by the id ``intel:<list>``).

The lookup is rebuilt when the lists' generation token moves (:func:`intel.lists.generation`),
checked at most every ``refresh_seconds``. With detection worker processes each worker holds its
own detector (:meth:`IntelDetector.bound_to` its store connection) and looks up the events it
reads, so a batch is read once (:mod:`detections.workers`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from intel import lists
from intel.indicators import level_for
from intel.lookup import IntelIndex
from soc_core.events import TENANT_FIELD
from soc_core.store import Store

from .alerts import Detection, RuleMeta, entities_of

RULE_PREFIX = "intel:"


class IntelDetector:
    def __init__(
        self, store: Store, *, refresh_seconds: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self.index = IntelIndex()
        self._token: str | None = None
        self._checked: float | None = None

    def refresh(self) -> None:
        """Reload the lookup if the lists changed since it was built."""
        now = self.clock()
        if self._checked is not None and now - self._checked < self.refresh_seconds:
            return
        self._checked = now
        token = lists.generation(self.store)
        if token != self._token:
            self.index = lists.load_index(self.store)
            self._token = token

    def bound_to(self, store: Store) -> IntelDetector:
        """The same detector (settings and the lookup built so far) reading ``store``: a detection
        worker's, on its own connection; it reloads the lists by itself when they change."""
        copy = IntelDetector(store, refresh_seconds=self.refresh_seconds, clock=self.clock)
        copy.index, copy._token = self.index, self._token  # checked again at its first batch
        return copy

    def detect(self, events: Iterable[Mapping[str, Any]]) -> list[Detection]:
        self.refresh()
        if not self.index:
            return []
        return [found for event in events for found in self.detect_event(event)]

    def detect_event(self, event: Mapping[str, Any]) -> list[Detection]:
        """One event's hits, with the lookup as it is (:meth:`refresh` first)."""
        tenant = event.get(TENANT_FIELD)
        if not self.index or not isinstance(tenant, str) or not tenant:
            return []
        found: list[Detection] = []
        for hit in self.index.match_event(event, tenant):
            indicator = hit.listed.indicator
            stamp = str(event.get("@timestamp", ""))
            found.append(
                Detection(
                    rule=RuleMeta(
                        id=f"{RULE_PREFIX}{hit.listed.list}",
                        name=f"Threat intel: {indicator.type} {indicator.value} on list {hit.listed.list}",
                        version="intel",
                        level=level_for(indicator.confidence),
                        tags=(),
                    ),
                    tenant=tenant,
                    group={"intel.type": indicator.type, "intel.indicator": indicator.value},
                    event_ids=[str(event.get("event.id", ""))],
                    count=1,
                    first_seen=stamp,
                    last_seen=stamp,
                    entities=entities_of([event]),
                    details={"intel": hit.to_dict()},
                )
            )
        return found


__all__ = ["RULE_PREFIX", "IntelDetector"]
