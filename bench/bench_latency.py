"""End-to-end detection latency: event written by a sensor → alert visible through the API.

A writer stores background events at a steady rate (default 5,000/s, sshd logins that match no
alerting rule) and, every ``--marker-interval`` seconds, one event that the shipped rule
"Interactive Root Shell via Sudo" turns into a new alert. The detection engine runs in its
thread exactly as under ``soc up``; a poller asks ``GET /api/alerts`` over a real socket and
records, per marker, the time from the write being acknowledged to the alert being listed.

Usage:
    .venv/bin/python bench/bench_latency.py [--seconds 30] [--rate 5000] [--es URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import uvicorn

from soc_api.main import create_app
from soc_api.runtime import EngineThread, build_engine
from soc_api.services import accounts
from soc_core.auth import PROVINCE, Membership
from soc_core.config import Settings
from soc_core.devnode import free_port
from soc_core.events import make_event
from soc_core.store import ElasticsearchStore, SqliteStore, Store

SUDO_SHELL = "b66c7128-d024-4352-a4e4-6ef7676daa16"
PASSWORD = "benchmark-password-1"
DRAIN_SECONDS = 10.0  # after the writer stops, how long the poller waits for the last alerts


def background(i: int) -> dict[str, object]:
    return make_event(
        tenant="police",
        dataset="system.auth",
        sensor_id="bench",
        source="bg",
        position=i,
        raw=str(i).encode(),
        timestamp=datetime.now(UTC),
        fields={
            "process.name": "sshd",
            "event.action": "ssh_login",
            "event.category": ["authentication"],
            "event.outcome": "success",
            "user.name": f"staff{i % 50}",
            "source.ip": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
            "host.name": "portal",
            "message": f"Accepted publickey for staff{i % 50}",
        },
    )


def marker(n: int) -> dict[str, object]:
    return make_event(
        tenant="police",
        dataset="system.auth",
        sensor_id="bench",
        source="marker",
        position=n,
        raw=f"marker{n}".encode(),
        timestamp=datetime.now(UTC),
        fields={
            "process.name": "sudo",
            "event.action": "sudo",
            "event.category": ["process"],
            "user.name": "attacker",
            "user.effective.name": "root",
            "process.command_line": "/bin/bash -i",
            "host.name": f"marker-{n}",
            "message": "attacker : TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/bin/bash -i",
        },
    )


def fmt_load(load: tuple[float, float, float]) -> str:
    return " ".join(f"{value:.2f}" for value in load)


def drop_bench_indices(store: ElasticsearchStore) -> None:
    """Delete this run's indices and templates, by concrete name (destructive_requires_name)."""
    for name in store.client.indices.get(index=f"{store.prefix}-*", allow_no_indices=True):
        store.client.indices.delete(index=name)
    for template in ("events", "docs", "docs-checkpoints"):
        store.client.indices.delete_index_template(name=f"{store.prefix}-{template}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=5000, help="background events per second")
    parser.add_argument("--marker-interval", type=float, default=0.5)
    parser.add_argument("--engine-interval", type=float, default=0.5, help="detection.interval_seconds")
    parser.add_argument("--es", help="Elasticsearch URL (default: SQLite in a temp dir)")
    args = parser.parse_args()

    settings = Settings()
    settings.detection.interval_seconds = args.engine_interval
    settings.auth.totp_required_roles = []  # the benchmark's admin signs in with a password alone
    store: Store
    if args.es:
        store = ElasticsearchStore(args.es, prefix=f"bench{int(time.time())}")
    else:
        store = SqliteStore(Path(tempfile.mkdtemp(prefix="canhgac-bench-")) / "canhgac.db")
    store.setup()
    accounts.add_tenant(store, tenant_id="police", name="Police")
    accounts.add_user(store, username="bench", password=PASSWORD, memberships=[Membership(PROVINCE, "admin")])

    engine_thread = EngineThread(
        build_engine(settings, store),
        interval=args.engine_interval,
        batch_size=settings.detection.batch_size,
        rebuild=lambda: build_engine(settings, store),
    )
    engine_thread.start()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, store), host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    token = client.post("/api/auth/login", json={"username": "bench", "password": PASSWORD}).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"

    written: dict[str, float] = {}
    seen: dict[str, float] = {}
    stop = threading.Event()
    written_all = threading.Event()
    counts = {"background": 0, "poll_errors": 0}

    def writer() -> None:
        batch_every = 0.1
        per_batch = max(1, int(args.rate * batch_every))
        next_marker = time.monotonic()
        n = 0
        while not stop.is_set():
            started = time.monotonic()
            events = [background(counts["background"] + k) for k in range(per_batch)]
            store.add_events(events)
            counts["background"] += per_batch
            if time.monotonic() >= next_marker:
                store.add_events([marker(n)])
                written[f"marker-{n}"] = time.monotonic()
                n += 1
                next_marker += args.marker_interval
            time.sleep(max(0.0, batch_every - (time.monotonic() - started)))

    def poller() -> None:
        # runs until every marker is seen or DRAIN_SECONDS after the writer stopped; an unseen
        # marker is reported missing, never given a made-up latency
        while not (written_all.is_set() and (len(seen) == len(written) or time.monotonic() > drain_until)):
            try:
                response = client.get("/api/alerts", params={"rule_id": SUDO_SHELL, "size": 200})
                response.raise_for_status()
            except httpx.HTTPError as exc:
                counts["poll_errors"] += 1
                print(f"poll failed: {exc!r}", file=sys.stderr)
                time.sleep(0.2)
                continue
            now = time.monotonic()
            for alert in response.json()["items"]:
                for host in alert["entities"].get("host.name", []):
                    if host in written and host not in seen:
                        seen[host] = now
            time.sleep(0.02)

    writer_thread, poller_thread = threading.Thread(target=writer), threading.Thread(target=poller)
    load_before = os.getloadavg()
    begun = time.monotonic()
    drain_until = begun + args.seconds + DRAIN_SECONDS
    writer_thread.start()
    poller_thread.start()
    time.sleep(args.seconds)
    stop.set()
    writer_thread.join()
    written_all.set()
    elapsed = time.monotonic() - begun
    load_after = os.getloadavg()
    poller_thread.join()
    engine_thread.stop_event.set()
    server.should_exit = True
    if isinstance(store, ElasticsearchStore):
        drop_bench_indices(store)

    latencies = sorted(seen[h] - written[h] for h in seen if h in written)
    missing = len(written) - len(latencies)
    if not latencies:
        raise SystemExit(f"no alert seen for any of the {len(written)} markers")

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    print(f"store: {store.name}; engine interval {args.engine_interval}s; {elapsed:.1f}s run")
    print(f"load average 1/5/15 min: before {fmt_load(load_before)}, after {fmt_load(load_after)}")
    print(f"background events written: {counts['background']:,} ({counts['background'] / elapsed:,.0f}/s)")
    print(
        f"markers: {len(written)}, alerts seen: {len(latencies)}, missing: {missing};"
        f" poll errors: {counts['poll_errors']}"
    )
    slowest = sorted(((seen[h] - written[h], h) for h in seen if h in written), reverse=True)[:3]
    print("slowest: " + ", ".join(f"{host} {value:.2f}s" for value, host in slowest))
    print("| p50 s | p95 s | p99 s | max s | mean s |")
    print("|---:|---:|---:|---:|---:|")
    figures = [pct(0.5), pct(0.95), pct(0.99), latencies[-1], statistics.mean(latencies)]
    print("| " + " | ".join(f"{value:.2f}" for value in figures) + " |")


if __name__ == "__main__":
    main()
