"""Retention: events past their dataset's policy (``retention.days``, ``retention.datasets``) —
whole daily indices on Elasticsearch (by concrete name), rows on SQLite — and the scheduler's
own run records past ``retention.job_runs_days``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from scheduling import runs
from scheduling.registry import RunContext
from soc_core.config import Settings
from soc_core.events import utcnow
from soc_core.store import Store


def run(store: Store, settings: Settings, context: RunContext) -> Mapping[str, Any]:
    policy = settings.retention
    now = utcnow()
    removed = {"default": store.delete_events_before(now - timedelta(days=policy.days), keep_datasets=policy.datasets)}
    for dataset, days in sorted(policy.datasets.items()):
        removed[dataset] = store.delete_events_before(now - timedelta(days=days), datasets=[dataset])
    return {
        "events_removed": removed,  # events (SQLite) or daily indices (Elasticsearch)
        "unit": "indices" if store.name == "elasticsearch" else "events",
        "job_runs_removed": runs.purge_runs(store, days=policy.job_runs_days),
    }
