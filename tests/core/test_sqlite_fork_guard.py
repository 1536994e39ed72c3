"""A fork waits until no thread is inside SQLite, so the child can open its own connections.

SQLite's global mutexes are copied into a forked child as they were: one another thread held
then would stay locked, and the child would hang at its first SQLite call (detection workers
are forked from the API server's process while its threads use the store).
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

from soc_core.store import sqlite
from soc_core.store.sqlite import SqliteStore


def count_events(store: SqliteStore) -> None:
    reopened = store.reopened()
    try:
        reopened.select("SELECT count(*) FROM events")
    finally:
        reopened.close()


def test_a_fork_waits_for_the_threads_inside_sqlite(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    store.setup()
    inside, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with sqlite._FORK_GUARD.inside():  # as a query running in another thread
            inside.set()
            leave.wait(timeout=10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(timeout=10)
    threading.Timer(0.3, leave.set).start()
    started = time.monotonic()
    child = multiprocessing.get_context("fork").Process(target=count_events, args=(store,))
    child.start()
    waited = time.monotonic() - started
    child.join(timeout=30)
    holder.join()
    assert waited >= 0.25  # the fork waited for the query to end
    assert child.exitcode == 0
    store.select("SELECT 1")  # and the parent goes on
    store.close()
