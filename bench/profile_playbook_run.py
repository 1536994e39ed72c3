"""Where one playbook run's time goes: store requests per run, by method and kind, and their time.

The 5-step enrich + case playbook of ``bench_playbooks.py`` on ``--runs`` alerts, each run driven
to its end by ``Runner.execute`` one after another (no pool, no polling: the run's own cost).
Every call the runner and its actions make to the store is counted and timed at the store
object (a bulk write is one request). Startup (store, inventory, intel list, alerts, the runs'
creation) is apart.

Usage:
    .venv/bin/python bench/profile_playbook_run.py [--runs 20] [--es http://127.0.0.1:9250]
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_playbooks import (
    FIVE_STEPS,
    _drop,
    _fixtures,
    _open,
    _settings,
    _store_alerts,
)  # bench/ is on sys.path as a script

from playbooks.format import Library, load_playbook
from playbooks.records import auto_run_id
from playbooks.runner import Runner
from playbooks.service import start_auto_runs
from soc_core.store import Store
from workflow import audit

METHODS = ("get_doc", "create_doc", "update_doc", "put_doc", "write_docs", "list_docs", "refresh")


class Profile:
    """Counts and times the store's outermost calls (not those a method makes to itself)."""

    def __init__(self, store: Store) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.seconds: collections.defaultdict[str, float] = collections.defaultdict(float)
        self._inside = threading.local()
        for name in METHODS:
            setattr(store, name, self._wrap(name, getattr(store, name)))

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if getattr(self._inside, "depth", 0):
                return method(*args, **kwargs)
            label = f"{name} {args[0]}" if args else name
            if name != "refresh" and name not in ("get_doc", "list_docs") and kwargs.get("refresh", True):
                label += " (refreshed)"
            self._inside.depth = 1
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self._inside.depth = 0
                self.calls[label] += 1
                self.seconds[label] += time.perf_counter() - start

        return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--es", help="an Elasticsearch URL; default: SQLite in a temporary folder")
    args = parser.parse_args()
    args.poll_seconds, args.concurrency = 1.0, None
    with tempfile.TemporaryDirectory(prefix="profile-playbook-") as folder:
        data = Path(folder)
        store = _open(args.es, data)
        store.setup()
        try:
            settings = _settings(data, _fixtures(data, store), args)
            audit.configure(store, settings)
            book = load_playbook(FIVE_STEPS, source="bench.yml")
            runner = Runner(store, settings, Library(playbooks={book.name: book}))
            alerts = _store_alerts(store, 0, args.runs, args.runs)
            start_auto_runs(store, [(book, a, store.get_doc("alerts", a).body) for a in alerts])
            store.refresh()
            profile = Profile(store)
            start = time.perf_counter()
            statuses = collections.Counter(runner.execute(auto_run_id(book.name, a)) for a in alerts)
            elapsed = time.perf_counter() - start
            runner.close()
            chain = audit.verify_chain(store)
        finally:
            _drop(store)
    n = args.runs
    print(
        f"{'Elasticsearch' if args.es else 'SQLite'}: {n} runs one after another in {elapsed:.1f} s = "
        f"{elapsed / n * 1000:.0f} ms per run; {statuses}; load {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    total = sum(profile.calls.values())
    print(f"  store requests per run: {total / n:.1f}, taking {sum(profile.seconds.values()) / n * 1000:.0f} ms")
    for label, count in sorted(profile.calls.items(), key=lambda item: -profile.seconds[item[0]]):
        print(f"    {count / n:5.1f} × {label:45s} {profile.seconds[label] / n * 1000:7.1f} ms per run")
    print(f"  audit chain: {chain.status}, {chain.records} records", [p.render() for p in chain.problems[:5]])


if __name__ == "__main__":
    main()
