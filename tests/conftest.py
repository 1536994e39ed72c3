"""Shared fixtures: stores on SQLite and on a real Elasticsearch node.

The Elasticsearch node comes from ``SOC_ELASTICSEARCH_URL`` if set, else this session starts
one from the Maven Central distribution (soc_core.devnode). Under ``CI=true`` a node that
cannot start fails the run; elsewhere the Elasticsearch tests are skipped with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from soc_core.store import ElasticsearchStore, SqliteStore, Store
from tests.shared_data import IN_CI, SHARED_DATA, dev_node


def pytest_sessionstart(session: pytest.Session) -> None:
    """In CI the shared data sets are part of the contract: their absence fails the run."""
    if IN_CI and not SHARED_DATA.is_dir():
        pytest.exit(f"CI=true but the shared data sets are missing at {SHARED_DATA}", returncode=1)


@pytest.fixture(autouse=True, scope="session")
def no_required_totp() -> Iterator[None]:
    """Most tests sign in with a password alone; the TOTP requirement (on by default for
    admins) has its own tests, which set ``auth.totp_required_roles`` themselves. Session-wide,
    so the session-scoped servers (the UI world) see it too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOC_AUTH__TOTP_REQUIRED_ROLES", "[]")
        yield


@pytest.fixture(scope="session")
def elasticsearch_url() -> Iterator[str]:
    if os.environ.get("SOC_ELASTICSEARCH_URL"):
        yield os.environ["SOC_ELASTICSEARCH_URL"].rstrip("/")
        return
    with dev_node("test") as node:
        yield node.url


# Markers by fixture use, so a new test is marked without anyone remembering to (`make check`
# leaves these out): a real Elasticsearch node, headless Chromium, network namespaces (root).
MARK_BY_FIXTURE = {
    "elasticsearch_url": "elasticsearch",
    "browser": "browser",
    "pair": "netns",
    "webhook_net": "netns",
    "firewall_net": "netns",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for fixture, marker in MARK_BY_FIXTURE.items():
            if fixture in used:
                item.add_marker(marker)


def unique_prefix() -> str:
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "canhgac.db")
    store.setup()
    yield store
    store.close()


@pytest.fixture
def es_store(elasticsearch_url: str) -> Iterator[ElasticsearchStore]:
    # generous timeout: CI machines are small and the node shares them with the tests
    store = ElasticsearchStore(elasticsearch_url, prefix=unique_prefix(), request_timeout=60)
    store.setup()
    yield store
    # destructive actions need concrete index names (action.destructive_requires_name)
    for name in store.client.indices.get(index=f"{store.prefix}-*", allow_no_indices=True):
        store.client.indices.delete(index=name)
    for template in ("events", "docs", "docs-checkpoints"):
        store.client.indices.delete_index_template(name=f"{store.prefix}-{template}")
    store.close()


@pytest.fixture(params=["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
def store(request: pytest.FixtureRequest) -> Store:
    """Every store implementation, one after the other (the contract suites use this)."""
    name = "sqlite_store" if request.param == "sqlite" else "es_store"
    result: Store = request.getfixturevalue(name)
    return result


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say plainly how the tests against the real Elasticsearch node went."""
    counts = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        counts[outcome] = sum(
            1
            for report in terminalreporter.stats.get(outcome, [])
            if getattr(report, "when", "call") in ("call", "setup")
            and "elasticsearch" in getattr(report, "keywords", {})
        )
    terminalreporter.write_line(
        "Elasticsearch tests (real node): "
        + ", ".join(f"{counts[name]} {name}" for name in ("passed", "failed", "skipped", "error"))
    )
