"""Playbook tests: a configured store (audit key in the test's folder), alerts to run on,
and runners over playbooks written in the test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import tests.playbooks.fake_actions  # noqa: F401 - registers the test.* actions
from playbooks.format import Library, Playbook, load_playbook
from playbooks.runner import Runner
from soc_core.config import Settings
from soc_core.events import format_timestamp, utcnow
from soc_core.store import Store
from workflow import audit


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        playbooks={"retry_backoff_seconds": 0.01, "max_concurrent_runs": 4, "poll_seconds": 0.05},
    )


@pytest.fixture
def pstore(store: Store, settings: Settings) -> Store:
    audit.configure(store, settings)
    return store


def make_alert(store: Store, *, tenant: str = "police", **fields: Any) -> str:
    """An alert as the detection engine writes it (detections.alerts.new_alert's shape)."""
    now = format_timestamp(utcnow())
    alert_id = uuid.uuid4().hex
    body = {
        "id": alert_id,
        "rule.id": "r-ssh",
        "rule.name": "SSH brute force",
        "rule.version": "1",
        "rule.level": "high",
        "rule.tags": ["attack.t1110.001"],
        "tenant": tenant,
        "group_key": alert_id,
        "group": {},
        "dedup_key": alert_id,
        "entities": {"source.ip": ["203.0.113.7"], "user.name": ["root"]},
        "event_ids": [],
        "count": 1,
        "first_seen": now,
        "last_seen": now,
        "status": "new",
        "created_at": now,
        "updated_at": now,
        **fields,
    }
    store.create_doc("alerts", body, doc_id=alert_id)
    return alert_id


def playbook(text: str) -> Playbook:
    return load_playbook(text, source="test.yml")


@pytest.fixture
def make_runner(pstore: Store, settings: Settings) -> Iterator[Callable[..., Runner]]:
    made: list[Runner] = []

    def make(*playbooks: Playbook, store: Store | None = None, **kwargs: Any) -> Runner:
        library = Library(playbooks={p.name: p for p in playbooks}, sources={p.name: "test.yml" for p in playbooks})
        runner = Runner(store or pstore, kwargs.pop("settings", settings), library, **kwargs)
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.close(wait=False)


def key() -> str:
    return uuid.uuid4().hex
