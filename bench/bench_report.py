"""Weekly report generation time, on SQLite and on Elasticsearch (issue 13: under 10 s).

One ISO week (``--week``, default 2026-W48, Asia/Ho_Chi_Minh) of ``--events`` events (1M) and
``--alerts`` alerts (10k) over ``--agencies`` agencies, plus a case for every tenth alert,
``--sensors`` sensors with a heartbeat record for every hour of the week, and playbook runs.
The data goes in through the stores' write paths: events by ``add_events`` (batches of 5,000,
as a sensor's forwarder sends them), alerts by ``write_docs`` (the detection engine's alert
writer) in their final state (acknowledged/closed by the triage core, ``apply_change``),
cases, heartbeat records and runs by ``write_docs``. Load time is reported apart.

Then :func:`reports.metrics.weekly` runs ``--repeat`` times for one agency and for the province
(best and median).

Usage:
    .venv/bin/python bench/bench_report.py [--events 1000000] [--alerts 10000] [--es http://127.0.0.1:9250]
    .venv/bin/python bench/bench_report.py --events 20000 --alerts 1000   # a quick check
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from detections.alerts import Detection, RuleMeta, new_alert
from reports.metrics import week_bounds, weekly
from soc_core.config import Settings
from soc_core.events import Event, format_timestamp, make_event
from soc_core.store import ElasticsearchStore, SqliteStore, Store
from soc_core.store.base import DocWrite
from workflow.alerts import apply_change

LEVELS = ["informational", "low", "medium", "high", "critical"]
RULES = [
    RuleMeta(f"rule-{n}", f"Rule {n}", "1", LEVELS[n % 5], (f"attack.t{1000 + n}", "attack.credential-access"))
    for n in range(40)
]
EVENT_BATCH = 5000
DOC_BATCH = 1000


def _agencies(count: int) -> list[str]:
    return [f"agency{n:02d}" for n in range(count)]


def load(store: Store, args: argparse.Namespace) -> dict[str, float]:
    rng = random.Random(48)
    start, _ = week_bounds(args.week, ZoneInfo("Asia/Ho_Chi_Minh"))
    start = start.astimezone(UTC)
    week_seconds = 7 * 24 * 3600
    tenants = _agencies(args.agencies)
    sensors = [(f"sensor-{n:03d}", tenants[n % len(tenants)]) for n in range(args.sensors)]
    timings: dict[str, float] = {}

    began = time.perf_counter()
    for tenant in tenants:
        store.create_doc("tenants", {"name": tenant.title(), "created_at": "2026-01-01T00:00:00.000Z"}, doc_id=tenant)
    for sensor_id, tenant in sensors:
        sensor = {"tenant": tenant, "name": sensor_id, "kind": "log", "created_at": "2026-01-01T00:00:00.000Z"}
        store.create_doc("sensors", {**sensor, "last_seen": format_timestamp(start), "health": {}}, doc_id=sensor_id)
    batch: list[Event] = []
    for number in range(args.events):
        sensor_id, tenant = sensors[number % len(sensors)]
        moment = start + timedelta(seconds=number * week_seconds / args.events)
        batch.append(
            make_event(
                tenant=tenant,
                dataset="system.auth",
                sensor_id=sensor_id,
                source="/var/log/auth.log",
                position=number,
                raw=b"",
                timestamp=moment,
                fields={
                    "message": f"Failed password for user{number % 50} from 10.{number % 200}.0.1 port 22",
                    "source.ip": f"10.{number % 200}.0.1",
                    "user.name": f"user{number % 50}",
                    "host.name": f"host-{number % 30}",
                },
            )
        )
        if len(batch) == EVENT_BATCH:
            store.add_events(batch)
            batch = []
    if batch:
        store.add_events(batch)
    timings["events"] = time.perf_counter() - began

    began = time.perf_counter()
    alerts: list[DocWrite] = []
    cases: list[DocWrite] = []
    for number in range(args.alerts):
        created = start + timedelta(seconds=rng.uniform(0, week_seconds))
        stamp = format_timestamp(created)
        rule = RULES[number % len(RULES)]
        tenant = tenants[number % len(tenants)]
        detection = Detection(
            rule=rule,
            tenant=tenant,
            group={"n": number},
            event_ids=[uuid.uuid4().hex],
            count=1,
            first_seen=stamp,
            last_seen=stamp,
            entities={"source.ip": [f"203.0.113.{number % 250}"], "host.name": [f"host-{number % 30}"]},
        )
        body: dict[str, Any] = new_alert(detection, now=stamp)
        if rng.random() < 0.8:
            acked = created + timedelta(seconds=rng.uniform(60, 7200))
            body = apply_change(body, actor="bench", status="acknowledged", now=format_timestamp(acked))
            if rng.random() < 0.7:
                closed = acked + timedelta(seconds=rng.uniform(600, 86400))
                status = "false_positive" if rng.random() < 0.2 else "resolved"
                body = apply_change(body, actor="bench", status=status, now=format_timestamp(closed))
        alerts.append(DocWrite(body["id"], body))
        if number % 10 == 0:
            closed_case = rng.random() < 0.5
            case = {
                "tenant": tenant,
                "title": f"case {number}",
                "status": "closed" if closed_case else "open",
                "classification": "true_positive" if closed_case else None,
                "alert_ids": [body["id"]],
                "created_at": stamp,
                "updated_at": stamp,
                **({"closed_at": format_timestamp(created + timedelta(hours=5))} if closed_case else {}),
            }
            cases.append(DocWrite(f"case-{number}", case))
    for kind, writes in (("alerts", alerts), ("cases", cases)):
        for offset in range(0, len(writes), DOC_BATCH):
            store.write_docs(kind, writes[offset : offset + DOC_BATCH])
    timings["alerts and cases"] = time.perf_counter() - began

    began = time.perf_counter()
    beats: list[DocWrite] = []
    for sensor_id, tenant in sensors:
        for hour in range(7 * 24):
            if rng.random() < 0.02:  # 2 % of hours missed
                continue
            at = start + timedelta(hours=hour, minutes=30)
            beats.append(
                DocWrite(
                    f"{sensor_id}-{at:%Y%m%d%H}",
                    {"tenant": tenant, "sensor_id": sensor_id, "hour": format_timestamp(at.replace(minute=0)),
                     "beats": 60, "covered_seconds": 3600, "received": 0, "dropped": 0,
                     "last_ms": round(at.timestamp() * 1000), "created_at": format_timestamp(at)},
                )
            )  # fmt: skip
    for offset in range(0, len(beats), DOC_BATCH):
        store.write_docs("sensor_uptime", beats[offset : offset + DOC_BATCH])
    runs = [
        DocWrite(
            f"run-{n}",
            {"tenant": tenants[n % len(tenants)], "playbook": f"pb-{n % 5}", "status": "succeeded",
             "created_at": format_timestamp(start + timedelta(hours=n % 160)), "steps": []},
        )
        for n in range(args.alerts // 20)
    ]  # fmt: skip
    store.write_docs("playbook_runs", runs)
    store.refresh()
    timings["heartbeats and runs"] = time.perf_counter() - began
    return timings


def measure(store: Store, settings: Settings, args: argparse.Namespace, tenant: str) -> list[float]:
    times = []
    for _ in range(args.repeat):
        began = time.perf_counter()
        report = weekly(store, settings, week=args.week, tenant=tenant)
        times.append(time.perf_counter() - began)
    assert report.alerts.total > 0
    return times


def run(name: str, store: Store, args: argparse.Namespace, *, loaded: bool = False) -> None:
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="bench-report-")))
    setup_began = time.perf_counter()
    store.setup()  # on a file loaded by an older version: its schema migration
    print(f"{name}: set up in {time.perf_counter() - setup_began:.1f} s", flush=True)
    if not loaded:
        load_began = time.perf_counter()
        timings = load(store, args)
        total_load = time.perf_counter() - load_began
        print(
            f"{name}: loaded {args.events:,} events, {args.alerts:,} alerts in {total_load:.1f} s ("
            + ", ".join(f"{part} {seconds:.1f} s" for part, seconds in timings.items())
            + ")",
            flush=True,
        )
    for label, tenant in (("one agency", _agencies(args.agencies)[0]), ("province", "*")):
        times = measure(store, settings, args, tenant)
        print(
            f"{name}: report of {label}: best {min(times):.2f} s, median {statistics.median(times):.2f} s "
            f"({len(times)} runs; load {os.getloadavg()[0]:.1f})",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--agencies", type=int, default=8)
    parser.add_argument("--sensors", type=int, default=24)
    parser.add_argument("--week", default="2026-W48")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--es", help="Elasticsearch URL (also run on it)")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument(
        "--sqlite-file", type=Path, help="measure a SQLite file an earlier run loaded (no load; migrates it)"
    )
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpu, Python {platform.python_version()}", flush=True)
    if args.sqlite_file:
        run("SQLite", SqliteStore(args.sqlite_file), args, loaded=True)
    elif not args.no_sqlite:
        folder = Path(tempfile.mkdtemp(prefix="bench-report-"))
        run("SQLite", SqliteStore(folder / "canhgac.db"), args)
    if args.es:
        store = ElasticsearchStore(args.es, prefix="b" + uuid.uuid4().hex[:10], request_timeout=120)
        try:
            run("Elasticsearch", store, args)
        finally:
            for index in store.client.indices.get(index=f"{store.prefix}-*", allow_no_indices=True):
                store.client.indices.delete(index=index)
            for template in store.client.indices.get_index_template(name=f"{store.prefix}-*")["index_templates"]:
                store.client.indices.delete_index_template(name=template["name"])
            store.close()


if __name__ == "__main__":
    main()
