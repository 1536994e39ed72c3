"""Playbook runner throughput and latency, on SQLite and on Elasticsearch.

Phase 1 (throughput): ``--alerts`` alerts are stored at once, then the runner (the loop of
``soc up --role engine``: trigger new alerts, hand due runs to the pool of
``playbooks.max_concurrent_runs``) runs the playbook on every one; runs per second = alerts /
time from the first poll to the last run finished. The playbook is 5 steps of enrich + case
(``enrich_assets``, ``enrich_intel``, ``case.open``, ``case.add_observables``,
``alert.tag``), each step recorded in the run document and the audit trail. The baseline,
in the same session: the same alerts with a 1-step playbook (``enrich_assets``).

Phase 2 (latency): alerts written at ``--rate`` per second for ``--seconds`` while the runner
loops as in production (``--poll-seconds``, default 1 s as shipped); alert → first step latency = the first step's
``started_at`` minus the alert's ``created_at`` (p50/p99/max).

Start-up costs are reported apart: opening the store (Elasticsearch: index templates and
indices), loading the asset inventory and the threat-intel list, storing the alerts.

Usage:
    .venv/bin/python bench/bench_playbooks.py [--alerts 10000] [--es http://127.0.0.1:9250]
    .venv/bin/python bench/bench_playbooks.py --alerts 200 --seconds 5   # a quick check
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from intel import lists
from intel.parsers import parse_file
from playbooks.format import Library, load_playbook
from playbooks.records import ACTIVE
from playbooks.runner import Runner
from soc_core.config import Settings
from soc_core.events import format_timestamp, parse_timestamp, utcnow
from soc_core.store import ElasticsearchStore, SqliteStore, Store
from workflow import audit

FIVE_STEPS = """\
name: bench-enrich-case
trigger: {type: alert, rule_ids: [bench-ssh]}
steps:
  - id: assets
    action: enrich_assets
    with: {alert: "{{ alert }}"}
  - id: intel
    action: enrich_intel
    with: {alert: "{{ alert }}"}
  - id: case
    action: case.open
    with: {severity: "{{ 'critical' if steps.intel.output.hits else alert['rule.level'] }}"}
  - id: observables
    action: case.add_observables
  - id: tag
    action: alert.tag
    with: {add: [playbook-enriched]}
"""
ONE_STEP = """\
name: bench-enrich-only
trigger: {type: alert, rule_ids: [bench-ssh]}
steps:
  - id: assets
    action: enrich_assets
    with: {alert: "{{ alert }}"}
"""
TENANTS = ("police", "health", "education", "transport")


def _alert(number: int) -> dict[str, Any]:
    now = format_timestamp(utcnow())
    return {
        "rule.id": "bench-ssh",
        "rule.name": "SSH brute force (bench)",
        "rule.version": "1",
        "rule.level": "high",
        "rule.tags": ["attack.t1110.001"],
        "tenant": TENANTS[number % len(TENANTS)],
        "group_key": str(number),
        "group": {},
        "dedup_key": str(number),
        "entities": {
            "source.ip": [f"198.51.{number // 256 % 256}.{number % 256}"],
            "host.name": [f"srv{number % 50:02d}"],
            "user.name": ["root"],
        },
        "event_ids": [],
        "count": 5,
        "first_seen": now,
        "last_seen": now,
        "status": "new",
        "created_at": now,
        "updated_at": now,
    }


def _store_alerts(store: Store, first: int, count: int) -> dict[str, str]:
    """``count`` alerts; their created_at by id."""
    made: dict[str, str] = {}
    for number in range(first, first + count):
        body = _alert(number)
        alert_id = uuid.uuid4().hex
        store.create_doc("alerts", {**body, "id": alert_id}, doc_id=alert_id)
        made[alert_id] = body["created_at"]
    return made


def _settings(data: Path, inventory: Path, poll_seconds: float) -> Settings:
    return Settings(
        data_dir=data,
        # playbooks.max_concurrent_runs at its default (4); poll_seconds 1 s by default too
        playbooks={"assets": {"paths": [inventory]}, "poll_seconds": poll_seconds},
    )


def _fixtures(data: Path, store: Store) -> Path:
    """An inventory of 200 hosts and a province-wide intel list of 1,000 addresses (every 10th
    alert's source is on it)."""
    inventory = data / "assets.yml"
    hosts = [
        {"name": f"srv{i:02d}", "ips": [f"10.{i}.0.10"], "owner": f"it{i}@example.gov.vn",
         "criticality": "high" if i % 5 == 0 else "medium", "agency": TENANTS[i % len(TENANTS)]}
        for i in range(200)
    ]  # fmt: skip
    inventory.write_text(yaml.safe_dump({"assets": hosts}), encoding="utf-8")
    feed = data / "bad.csv"
    rows = [f"ip,198.51.{n // 256 % 256}.{n % 256},80,bench" for n in range(0, 10_000, 10)]
    feed.write_text("type,value,confidence,source\n" + "\n".join(rows) + "\n", encoding="utf-8")
    lists.import_list(store, parse_file(feed, "csv"), tenant="*", name="bench", fmt="csv", source="bench")
    return inventory


def _active(store: Store) -> bool:
    store.refresh()
    return bool(store.list_docs("playbook_runs", filters={"status": list(ACTIVE)}, size=1).items)


def _loop_until(runner: Runner, store: Store, wanted: int, *, stop: threading.Event | None = None) -> int:
    """The runner's loop (as RunnerThread runs it) until ``wanted`` runs were started and none
    is active; returns the runs started."""
    created = 0
    while True:
        created += runner.trigger_new_alerts()
        runner.dispatch()
        writing = stop is not None and not stop.is_set()
        if created >= wanted and not writing and not _active(store):
            return created
        time.sleep(runner.settings.playbooks.poll_seconds)


def throughput(store: Store, settings: Settings, text: str, alerts: int) -> dict[str, float]:
    book = load_playbook(text, source="bench.yml")
    runner = Runner(store, settings, Library(playbooks={book.name: book}))
    try:
        runner.trigger_new_alerts()  # the checkpoint: the runner starts on the alerts after it
        start = time.perf_counter()
        _store_alerts(store, 0, alerts)
        stored = time.perf_counter() - start
        start = time.perf_counter()
        runs = _loop_until(runner, store, alerts)
        elapsed = time.perf_counter() - start
    finally:
        runner.close()
    store.refresh()
    failed = store.list_docs("playbook_runs", filters={"status": ["failed", "cancelled", "interrupted"]}, size=1)
    if failed.items:  # a benchmark of failing runs would measure the wrong thing
        raise SystemExit(f"a run did not succeed: {failed.items[0].body.get('error')}")
    return {"runs": runs, "store_alerts_s": stored, "elapsed_s": elapsed, "runs_per_s": runs / elapsed}


def latency(store: Store, settings: Settings, text: str, rate: float, seconds: float) -> dict[str, float]:
    book = load_playbook(text, source="bench.yml")
    runner = Runner(store, settings, Library(playbooks={book.name: book}))
    created: dict[str, str] = {}
    done = threading.Event()

    def write() -> None:
        number, begin = 1_000_000, time.perf_counter()
        while time.perf_counter() - begin < seconds:
            created.update(_store_alerts(store, number, 1))
            number += 1
            time.sleep(max(0.0, (number - 1_000_000) / rate - (time.perf_counter() - begin)))
        done.set()

    try:
        runner.trigger_new_alerts()
        writer = threading.Thread(target=write)
        writer.start()
        while not done.is_set():
            runner.trigger_new_alerts()
            runner.dispatch()
            time.sleep(settings.playbooks.poll_seconds)
        writer.join()
        _loop_until(runner, store, 0)
    finally:
        runner.close()
    store.refresh()
    delays: list[float] = []
    cursor: str | None = None
    while True:
        page = store.list_docs("playbook_runs", filters={"playbook": book.name}, size=500, cursor=cursor)
        for run in page.items:
            alert_id = run.body.get("alert_id")
            first = (run.body.get("steps") or [{}])[0].get("started_at")
            if alert_id in created and first:
                delays.append((parse_timestamp(first) - parse_timestamp(created[alert_id])).total_seconds())
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    delays.sort()
    return {
        "alerts": len(created),
        "measured": len(delays),
        "p50_s": statistics.median(delays),
        "p99_s": delays[min(len(delays) - 1, int(len(delays) * 0.99))],
        "max_s": delays[-1],
    }


def _open(es: str | None, data: Path) -> Store:
    if es:
        return ElasticsearchStore(es, prefix="bench" + uuid.uuid4().hex[:8], request_timeout=120)
    return SqliteStore(data / "canhgac.db")


def _drop(store: Store) -> None:
    if isinstance(store, ElasticsearchStore):
        for name in store.client.indices.get(index=f"{store.prefix}-*", allow_no_indices=True):
            store.client.indices.delete(index=name)
        for template in ("events", "docs", "docs-checkpoints"):
            store.client.indices.delete_index_template(name=f"{store.prefix}-{template}")
    store.close()


def one(es: str | None, text: str, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        start = time.perf_counter()
        store = _open(es, data)
        store.setup()
        opened = time.perf_counter() - start
        start = time.perf_counter()
        inventory = _fixtures(data, store)
        settings = _settings(data, inventory, args.poll_seconds)
        audit.configure(store, settings)
        fixtures = time.perf_counter() - start
        try:
            figures = throughput(store, settings, text, args.alerts)
            late = latency(store, settings, text, args.rate, args.seconds) if args.seconds > 0 else None
        finally:
            _drop(store)
    name = "5-step enrich+case" if text is FIVE_STEPS else "1-step baseline"
    print(
        f"{'Elasticsearch' if es else 'SQLite'} | {name} | poll {args.poll_seconds:g} s | "
        f"start-up: store {opened:.1f} s, inventory + intel list "
        f"{fixtures:.1f} s, {args.alerts} alerts stored in {figures['store_alerts_s']:.1f} s | "
        f"{figures['runs']:.0f} runs in {figures['elapsed_s']:.1f} s = {figures['runs_per_s']:.1f} runs/s"
        + (
            f" | latency at {args.rate:g} alerts/s ({late['measured']:.0f}/{late['alerts']:.0f}): "
            f"p50 {late['p50_s']:.2f} s, p99 {late['p99_s']:.2f} s, max {late['max_s']:.2f} s"
            if late
            else ""
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--es", help="an Elasticsearch URL; default: SQLite in a temporary folder")
    parser.add_argument("--rate", type=float, default=10.0, help="alerts/s written in the latency phase")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the latency phase (0: skip it)")
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--poll-seconds", type=float, default=1.0, help="playbooks.poll_seconds (shipped: 1)")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    if args.baseline:
        one(args.es, ONE_STEP, args)
    one(args.es, FIVE_STEPS, args)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


if __name__ == "__main__":
    main()
