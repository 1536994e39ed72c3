"""Bounds on the indices a sensor's events can make a store create: their dataset and day.

On Elasticsearch an event's index is ``<prefix>-events-<tenant>-<dataset>-<day of
@timestamp>``, so a sensor that sends ever new datasets, or timestamps from any day of any
year, creates indices without end — until the cluster's shard limit refuses every new index,
other agencies' too. :class:`EventBounds` keeps both finite, and never refuses an event for it:

* a dataset outside the allowed list (:mod:`soc_core.datasets`, narrowed per sensor) is
  replaced by ``<module>.unknown`` when that is allowed (``windows.unknown``: Windows rules
  still route on it), else by ``unknown``; the value is kept in ``labels.original_dataset``
  and the event tagged ``dataset_not_allowed``;
* an ``@timestamp`` more than ``max_age`` before the ingest time or more than
  ``max_future_skew`` after it is replaced by the ingest time; the value is kept in
  ``labels.original_timestamp`` and the event tagged ``timestamp_out_of_bounds``.

So one tenant's events fall in at most ``len(datasets) × (max_age + max_future_skew + 1 day)``
daily indices. What cannot be read (no dataset, an unparseable timestamp) is left as it is,
for validation to refuse as before. The same function runs at ``/api/ingest`` (with the
sensor's own list) and in the Elasticsearch store's write path (sensors writing straight to
it); applying it twice changes nothing more.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from soc_core.config import StoreSettings
from soc_core.datasets import KNOWN_DATASETS, UNKNOWN_DATASET, allowed_datasets
from soc_core.errors import ParseError
from soc_core.events import Event, add_tag, format_timestamp, parse_timestamp, utcnow

ORIGINAL_DATASET = "labels.original_dataset"
ORIGINAL_TIMESTAMP = "labels.original_timestamp"
DATASET_TAG = "dataset_not_allowed"
TIMESTAMP_TAG = "timestamp_out_of_bounds"
MAX_KEPT = 256  # characters of an original value kept in its label


@dataclass(frozen=True)
class Window:
    """The ``@timestamp`` range an event may keep, at one ingest time (all as event text)."""

    earliest: str
    latest: str
    now: str


@dataclass(frozen=True)
class EventBounds:
    datasets: frozenset[str] = KNOWN_DATASETS
    max_age: timedelta = timedelta(days=365)
    max_future_skew: timedelta = timedelta(hours=24)

    @classmethod
    def from_settings(cls, store: StoreSettings) -> EventBounds:
        return cls(
            allowed_datasets(store.extra_datasets),
            timedelta(days=store.max_event_age_days),
            timedelta(hours=store.max_future_skew_hours),
        )

    def for_sensor(self, datasets: Iterable[str] | None) -> EventBounds:
        """Narrowed to a sensor's own list (``None``: every allowed one); never wider."""
        if datasets is None:
            return self
        narrowed = (frozenset(datasets) & self.datasets) | {UNKNOWN_DATASET}
        return EventBounds(narrowed, self.max_age, self.max_future_skew)

    def window(self, now: datetime | None = None) -> Window:
        moment = now or utcnow()
        return Window(
            format_timestamp(moment - self.max_age),
            format_timestamp(moment + self.max_future_skew),
            format_timestamp(moment),
        )

    def apply(self, event: Event, window: Window) -> Event:
        """``event`` itself when it is within bounds, else a copy brought within them."""
        dataset = event.get("event.dataset")
        stamp = event.get("@timestamp")
        # no dataset is validation's business; a list or object from JSON is not a dataset either
        dataset_ok = not dataset or (isinstance(dataset, str) and dataset in self.datasets)
        stamp_ok = _within(stamp, window)
        if dataset_ok and stamp_ok:
            return event
        bounded = dict(event)
        if not dataset_ok:
            bounded["event.dataset"] = self._fallback(dataset)
            bounded[ORIGINAL_DATASET] = str(dataset)[:MAX_KEPT]
            add_tag(bounded, DATASET_TAG)
        if not stamp_ok:
            bounded["@timestamp"] = window.now
            bounded[ORIGINAL_TIMESTAMP] = str(stamp)[:MAX_KEPT]
            add_tag(bounded, TIMESTAMP_TAG)
        return bounded

    def apply_all(self, events: Iterable[Event], *, now: datetime | None = None) -> list[Event]:
        window = self.window(now)
        return [self.apply(event, window) for event in events]

    def _fallback(self, dataset: Any) -> str:
        module = str(dataset).split(".", 1)[0]
        own = f"{module}.{UNKNOWN_DATASET}"
        return own if own in self.datasets else UNKNOWN_DATASET


def _within(stamp: Any, window: Window) -> bool:
    """True when ``stamp`` is inside the window, or is no timestamp (validation's business)."""
    if not isinstance(stamp, str):
        return True
    if len(stamp) == 24 and stamp[10] == "T" and stamp[23] == "Z":  # the form events carry: compare as text
        return window.earliest <= stamp <= window.latest
    try:
        moment = parse_timestamp(stamp)
    except ParseError:
        return True
    return parse_timestamp(window.earliest) <= moment <= parse_timestamp(window.latest)


__all__ = [
    "DATASET_TAG",
    "ORIGINAL_DATASET",
    "ORIGINAL_TIMESTAMP",
    "TIMESTAMP_TAG",
    "EventBounds",
    "Window",
]
