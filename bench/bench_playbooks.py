"""Playbook runner throughput and latency, on SQLite and on Elasticsearch.

The user's path: alerts are made by the detection engine's own functions
(``detections.alerts.new_alert``) and written as it writes them (``Store.write_docs`` per
batch); the runner is the real one, looping in its :class:`RunnerThread` as under
``soc up --role engine`` (``playbooks.poll_seconds``, ``playbooks.max_concurrent_runs`` at
their shipped values unless told).

Phase 1 (throughput): ``--alerts`` alerts are stored at once (batches of
``--batch``), then the runner runs the playbook on every one; runs/s = alerts / time from the
runner's start to the last run's end. Alert → first step latency (the first step's
``started_at`` minus the alert's ``created_at``) is reported too: here it is mostly the queue.
The playbook is 5 steps of enrich + case (``enrich_assets``, ``enrich_intel``, ``case.open``,
``case.add_observables``, ``alert.tag``), each step recorded in the run document, the audit
trail and the alert's and case's timelines. Runs that did not succeed are counted with their
errors, and so is every "playbook run stopped by an error"/"crashed"/"poll failed" the runner
logs (those runs are resumed after their lease, so they may still succeed).

Phase 2 (latency below capacity): alerts written at ``--rate`` per second for ``--seconds``
while the runner loops; p50/p95/p99/max of alert → first step.

Start-up costs are reported apart: opening the store (Elasticsearch: index templates and
indices), loading the asset inventory and the threat-intel list, storing the alerts.

Usage:
    .venv/bin/python bench/bench_playbooks.py [--alerts 10000] [--es http://127.0.0.1:9250]
    .venv/bin/python bench/bench_playbooks.py --alerts 200 --seconds 5   # a quick check
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from detections.alerts import Detection, RuleMeta, new_alert
from intel import lists
from intel.parsers import parse_file
from playbooks.format import Library, Playbook, load_playbook
from playbooks.records import ACTIVE, auto_run_id
from playbooks.runner import Runner, RunnerThread
from soc_core.config import Settings
from soc_core.errors import NotFound
from soc_core.events import format_timestamp, parse_timestamp, utcnow
from soc_core.store import ElasticsearchStore, SqliteStore, Store
from soc_core.store.base import DocWrite
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
RULE = RuleMeta(id="bench-ssh", name="SSH brute force (bench)", version="1", level="high", tags=("attack.t1110.001",))


def _alert(number: int) -> dict[str, Any]:
    """An alert as the engine makes it for a base-rule match of one event."""
    now = format_timestamp(utcnow())
    source = f"198.51.{number // 256 % 256}.{number % 256}"
    entities = {"source.ip": [source], "host.name": [f"srv{number % 50:02d}"], "user.name": ["root"]}
    detection = Detection(
        rule=RULE,
        tenant=TENANTS[number % len(TENANTS)],
        group={name: values[0] for name, values in entities.items()},
        event_ids=[f"bench-event-{number}"],
        count=1,
        first_seen=now,
        last_seen=now,
        entities=entities,
    )
    return new_alert(detection, now=now)


def _store_alerts(store: Store, first: int, count: int, batch: int) -> dict[str, str]:
    """``count`` alerts written ``batch`` at a time, as the engine writes a batch's new alerts;
    their created_at by id."""
    made: dict[str, str] = {}
    for start in range(first, first + count, batch):
        bodies = [_alert(number) for number in range(start, min(first + count, start + batch))]
        store.write_docs("alerts", [DocWrite(body["id"], body) for body in bodies])
        made.update((body["id"], body["created_at"]) for body in bodies)
    return made


def _settings(data: Path, inventory: Path, args: argparse.Namespace) -> Settings:
    playbooks: dict[str, Any] = {"assets": {"paths": [inventory]}, "poll_seconds": args.poll_seconds}
    if args.concurrency:
        playbooks["max_concurrent_runs"] = args.concurrency
    return Settings(data_dir=data, playbooks=playbooks)


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


class _RunnerLog(logging.Handler):
    """Counts what the runner logs at ERROR (a run stopped by an error, a crash, a failed poll),
    keeping each distinct message with its error text."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: collections.Counter[str] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        error = getattr(record, "error", None) or (record.exc_info and repr(record.exc_info[1])) or ""
        self.seen[f"{record.getMessage()}: {error}"] += 1


def _done(store: Store, book: Playbook, last_alert: str) -> bool:
    """The runner matched the last alert (it reads them in order) and no run is active."""
    store.refresh()
    try:
        store.get_doc("playbook_runs", auto_run_id(book.name, last_alert))
    except NotFound:  # not made yet
        return False
    return not store.list_docs("playbook_runs", filters={"status": list(ACTIVE)}, size=1).items


def _runs(store: Store, book: Playbook) -> list[dict[str, Any]]:
    store.refresh()
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = store.list_docs("playbook_runs", filters={"playbook": book.name}, size=1000, cursor=cursor)
        found.extend(doc.body for doc in page.items)
        if not page.next_cursor:
            return found
        cursor = page.next_cursor


def _quantiles(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))]

    return {"p50": pick(0.5), "p95": pick(0.95), "p99": pick(0.99), "max": ordered[-1]}


def _outcome(store: Store, book: Playbook, created: dict[str, str]) -> dict[str, Any]:
    """Per run: its status, errors, and alert → first step delay."""
    runs = [run for run in _runs(store, book) if run.get("alert_id") in created]
    delays: list[float] = []
    errors: collections.Counter[str] = collections.Counter()
    for run in runs:
        first = (run.get("steps") or [{}])[0].get("started_at")
        if first:
            delays.append((parse_timestamp(first) - parse_timestamp(created[run["alert_id"]])).total_seconds())
        if run.get("status") in ACTIVE:
            continue
        if run.get("status") != "succeeded":
            failed = [f"{s['id']}: {s.get('error')}" for s in run.get("steps") or [] if s.get("error")]
            errors[f"{run.get('status')}: {run.get('error')} ({'; '.join(failed)})"] += 1
    ends = [parse_timestamp(str(run["finished_at"])) for run in runs if run.get("finished_at")]
    return {
        "runs": len(runs),
        "succeeded": sum(run.get("status") == "succeeded" for run in runs),
        "unfinished": sum(run.get("status") in ACTIVE for run in runs),
        "errors": errors,
        "latency": _quantiles(delays),
        "started": len(delays),
        "last_end": max(ends) if ends else None,
    }


def throughput(store: Store, settings: Settings, text: str, args: argparse.Namespace) -> dict[str, Any]:
    book = load_playbook(text, source="bench.yml")
    runner = Runner(store, settings, Library(playbooks={book.name: book}))
    runner.trigger_new_alerts()  # the checkpoint: the runner starts on the alerts after it
    start = time.perf_counter()
    created = _store_alerts(store, 0, args.alerts, args.batch)
    stored = time.perf_counter() - start
    last = max(created, key=lambda alert_id: (created[alert_id], alert_id))
    thread = RunnerThread(runner)
    began = utcnow()
    start = time.perf_counter()
    thread.start()
    report, limit = start + 60, start + args.minutes * 60 if args.minutes else None
    try:
        while not _done(store, book, last):
            time.sleep(1.0)
            if args.progress and time.perf_counter() > report:
                report += 60
                print(f"  … {time.perf_counter() - start:.0f} s", flush=True)
            if limit and time.perf_counter() > limit:
                print(f"  stopped at the --minutes limit ({args.minutes:g}), after {time.perf_counter() - start:.0f} s")
                break
    finally:
        runner.close()
        thread.join()
    waited = time.perf_counter() - start
    figures = _outcome(store, book, created)
    elapsed = (figures["last_end"] - began).total_seconds() if figures["last_end"] else waited
    if figures["unfinished"]:  # cut by the time limit: the rate of what finished in the time it ran
        elapsed = waited
    done = figures["runs"] - figures["unfinished"]
    return {**figures, "store_alerts_s": stored, "elapsed_s": elapsed, "finished": done, "runs_per_s": done / elapsed}


def latency(store: Store, settings: Settings, text: str, rate: float, seconds: float) -> dict[str, Any]:
    book = load_playbook(text, source="bench-latency.yml")
    book = book.model_copy(update={"name": "bench-latency"})
    runner = Runner(store, settings, Library(playbooks={book.name: book}))
    created: dict[str, str] = {}
    runner.trigger_new_alerts()
    thread = RunnerThread(runner)
    thread.start()
    try:
        number, begin = 1_000_000, time.perf_counter()
        while time.perf_counter() - begin < seconds:
            created.update(_store_alerts(store, number, 1, 1))
            number += 1
            time.sleep(max(0.0, (number - 1_000_000) / rate - (time.perf_counter() - begin)))
        last = max(created, key=lambda alert_id: (created[alert_id], alert_id))
        while not _done(store, book, last):
            time.sleep(0.5)
    finally:
        runner.close()
        thread.join()
    return {"alerts": len(created), **_outcome(store, book, created)}


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


def _es_settings(store: ElasticsearchStore) -> str:
    version = next(iter(store.client.nodes.info()["nodes"].values()))["version"]
    nodes = store.client.nodes.stats(metric="jvm,os")["nodes"]
    heap = [node["jvm"]["mem"]["heap_max_in_bytes"] // 2**20 for node in nodes.values()]
    index = store.client.indices.get_settings(index=f"{store.prefix}-docs-intel")
    shown = next(iter(index.values()))["settings"]["index"]
    return (
        f"Elasticsearch {version}, {len(nodes)} node(s), heap {heap} MiB; docs indices: "
        f"{shown.get('number_of_shards')} shard, {shown.get('number_of_replicas')} replicas, "
        f"refresh_interval {shown.get('refresh_interval', '1s')}, "
        f"translog durability {shown.get('translog', {}).get('durability', 'request (default)')}"
    )


def one(es: str | None, text: str, args: argparse.Namespace) -> None:
    name = "5-step enrich+case" if text is FIVE_STEPS else "1-step baseline"
    with tempfile.TemporaryDirectory(prefix="bench-playbooks-") as folder:
        data = Path(folder)
        start = time.perf_counter()
        store = _open(es, data)
        store.setup()
        opened = time.perf_counter() - start
        start = time.perf_counter()
        inventory = _fixtures(data, store)
        settings = _settings(data, inventory, args)
        audit.configure(store, settings)
        fixtures = time.perf_counter() - start
        watcher = _RunnerLog()
        logging.getLogger("canhgac").addHandler(watcher)
        try:
            if isinstance(store, ElasticsearchStore):
                print(_es_settings(store), flush=True)
            figures = throughput(store, settings, text, args)
            # (runs a time limit left unfinished would be taken by the latency phase's runner)
            measure = args.seconds > 0 and not figures["unfinished"]
            late = latency(store, settings, text, args.rate, args.seconds) if measure else None
            chain = audit.verify_chain(store)
        finally:
            logging.getLogger("canhgac").removeHandler(watcher)
            _drop(store)
    q = figures["latency"]
    print(
        f"{'Elasticsearch' if es else 'SQLite'} | {name} | poll {args.poll_seconds:g} s, "
        f"{settings.playbooks.max_concurrent_runs} concurrent | start-up: store {opened:.1f} s, inventory + "
        f"intel list {fixtures:.1f} s, {args.alerts} alerts stored in {figures['store_alerts_s']:.1f} s | "
        f"{figures['runs']} runs, {figures['finished']} finished ({figures['succeeded']} succeeded, "
        f"{figures['unfinished']} unfinished) in {figures['elapsed_s']:.1f} s = "
        f"{figures['runs_per_s']:.2f} runs/s | alert → first step (queued; {figures['started']} started): "
        f"p50 {q.get('p50', 0):.1f} s, "
        f"p95 {q.get('p95', 0):.1f} s, p99 {q.get('p99', 0):.1f} s, max {q.get('max', 0):.1f} s",
        flush=True,
    )
    if late:
        lq = late["latency"]
        print(
            f"  latency at {args.rate:g} alerts/s for {args.seconds:g} s: {late['runs']}/{late['alerts']} runs "
            f"({late['succeeded']} succeeded): p50 {lq.get('p50', 0):.2f} s, p95 {lq.get('p95', 0):.2f} s, "
            f"p99 {lq.get('p99', 0):.2f} s, max {lq.get('max', 0):.2f} s",
            flush=True,
        )
    failed = figures["errors"] + (late["errors"] if late else collections.Counter())
    print(f"  runs not succeeded: {sum(failed.values())}", flush=True)
    for error, count in failed.most_common(10):
        print(f"    {count} × {error}", flush=True)
    print(f"  runner errors logged: {sum(watcher.seen.values())}", flush=True)
    for error, count in watcher.seen.most_common(10):
        print(f"    {count} × {error}", flush=True)
    print(f"  audit chain: {chain.status}, {chain.records} records", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500, help="alerts per write, as the engine writes a batch")
    parser.add_argument("--es", help="an Elasticsearch URL; default: SQLite in a temporary folder")
    parser.add_argument("--rate", type=float, default=2.0, help="alerts/s written in the latency phase")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the latency phase (0: skip it)")
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=False, help="a 1-step run too")
    parser.add_argument("--poll-seconds", type=float, default=1.0, help="playbooks.poll_seconds (shipped: 1)")
    parser.add_argument("--concurrency", type=int, help="playbooks.max_concurrent_runs (shipped: 4)")
    parser.add_argument("--progress", action="store_true", help="say every minute that it is still running")
    parser.add_argument("--minutes", type=float, help="end the throughput phase after this long (rate of runs done)")
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
