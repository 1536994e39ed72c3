"""API latency under concurrent load: alert list and hunt, on Elasticsearch.

Loads ``--alerts`` alert documents and ``--events`` events into Elasticsearch (bulk, straight
through the client, with the store's own index names and templates), serves the API with
uvicorn on loopback, then runs ``--clients`` concurrent clients (asyncio + httpx) against each
endpoint for ``--seconds`` and reports requests/s, p50 and p99. ``GET /api/health`` under the
same load is the baseline: the cost of the framework and the load generator alone.

Usage:
    .venv/bin/python bench/bench_api.py --es http://127.0.0.1:9299 [--alerts 100000 --events 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import statistics
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import uvicorn
from elasticsearch import helpers

from soc_api.main import create_app
from soc_api.services import accounts
from soc_core.auth import Membership
from soc_core.config import Settings
from soc_core.devnode import free_port
from soc_core.events import format_timestamp, make_event
from soc_core.store import ElasticsearchStore
from soc_core.store.elasticsearch import DOC_ID_FIELD, event_index

PASSWORD = "benchmark-password-1"
TENANTS = ("police", "health", "education", "transport")


def events(count: int, prefix: str) -> Any:
    rng = random.Random(7)
    start = datetime.now(UTC) - timedelta(days=6)
    for i in range(count):
        tenant = TENANTS[i % len(TENANTS)]
        outcome = "failure" if rng.random() < 0.3 else "success"
        event = make_event(
            tenant=tenant,
            dataset="system.auth",
            sensor_id="bench",
            source="bench",
            position=i,
            raw=str(i).encode(),
            timestamp=start + timedelta(seconds=i * 518_400 / count),
            fields={
                "event.outcome": outcome,
                "source.ip": f"10.{rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(256)}",
                "user.name": f"user{rng.randrange(500)}",
                "host.name": f"host{rng.randrange(50)}",
                "message": f"{'Failed' if outcome == 'failure' else 'Accepted'} password for user{i % 500}",
            },
        )
        event["event.ingested"] = event["@timestamp"]
        yield {"_op_type": "create", "_index": event_index(event, prefix), "_id": event["event.id"], "_source": event}


def alerts(count: int, prefix: str) -> Any:
    start = datetime.now(UTC) - timedelta(days=6)
    statuses = ("new", "acknowledged", "in_progress", "resolved", "false_positive")
    for i in range(count):
        stamp = format_timestamp(start + timedelta(seconds=i * 518_400 / count))
        doc_id = f"a{i:08d}"
        yield {
            "_op_type": "create",
            "_index": f"{prefix}-docs-alerts",
            "_id": doc_id,
            "_source": {
                DOC_ID_FIELD: doc_id,
                "tenant": TENANTS[i % len(TENANTS)],
                "status": statuses[i % len(statuses)],
                "rule.id": f"rule-{i % 40}",
                "rule.name": f"Rule {i % 40}",
                "rule.level": ("low", "medium", "high", "critical")[i % 4],
                "count": 1 + i % 9,
                "first_seen": stamp,
                "last_seen": stamp,
                "created_at": stamp,
                "updated_at": stamp,
                "entities": {"source.ip": [f"10.0.{i % 256}.{i % 200}"]},
            },
        }


def run_load(base: str, token: str, path: str, params: dict[str, Any], clients: int, seconds: float) -> list[float]:
    """In its own process, so the load generator does not share the server's GIL."""
    return asyncio.run(load(base, token, path, params, clients, seconds))


async def load(base: str, token: str, path: str, params: dict[str, Any], clients: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    errors: list[int] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        client.headers["Authorization"] = f"Bearer {token}"

        async def worker() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    response = await client.get(path, params=params)
                except httpx.TransportError:
                    errors.append(1)
                    continue
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise SystemExit(f"{path}: HTTP {response.status_code} {response.text[:200]}")

        await asyncio.gather(*(worker() for _ in range(clients)))
    if errors:
        print(f"  {path}: {len(errors)} transport errors (connection dropped)")
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--es", required=True)
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()

    prefix = f"benchapi{int(time.time())}"
    store = ElasticsearchStore(args.es, prefix=prefix, request_timeout=60)
    store.setup()
    began = time.monotonic()
    ok, _ = helpers.bulk(store.client, events(args.events, prefix), chunk_size=2000, request_timeout=120)
    loaded_events = time.monotonic() - began
    began = time.monotonic()
    done, _ = helpers.bulk(store.client, alerts(args.alerts, prefix), chunk_size=2000, request_timeout=120)
    loaded_alerts = time.monotonic() - began
    store.refresh()
    print(f"loaded {ok:,} events in {loaded_events:.0f}s, {done:,} alerts in {loaded_alerts:.0f}s")

    for tenant in TENANTS:
        accounts.add_tenant(store, tenant_id=tenant, name=tenant)
    accounts.add_user(store, username="analyst", password=PASSWORD, memberships=[Membership("police", "analyst")])
    settings = Settings()
    port = free_port()
    app = create_app(settings, store)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="error", access_log=False, timeout_keep_alive=60, backlog=4096
        )
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    token = httpx.post(f"{base}/api/auth/login", json={"username": "analyst", "password": PASSWORD}).json()[
        "access_token"
    ]
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("health (baseline)", "/api/health", {}),
        ("alert list, newest 50", "/api/alerts", {"size": 50}),
        ("alert list, status=new, high", "/api/alerts", {"size": 50, "status": "new", "level": "high"}),
        ("hunt: source.ip CIDR", "/api/events", {"q": "source.ip:10.1.0.0/16 AND event.outcome:failure", "size": 50}),
        ("hunt: words in message", "/api/events", {"q": "failed password", "size": 50}),
    ]
    print(f"{args.clients} clients, {args.seconds:.0f}s per endpoint, {args.events:,} events, {args.alerts:,} alerts")
    print("| endpoint | requests/s | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|")
    spawn = multiprocessing.get_context("spawn")
    for name, path, params in cases:
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
            latencies = pool.submit(run_load, base, token, path, params, args.clients, args.seconds).result()
        latencies.sort()
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[int(0.99 * (len(latencies) - 1))] * 1000
        print(f"| {name} | {len(latencies) / args.seconds:,.0f} | {p50:.0f} | {p99:.0f} |")
    server.should_exit = True
    for name in store.client.indices.get(index=f"{prefix}-*"):
        store.client.indices.delete(index=name)


if __name__ == "__main__":
    main()
