"""Events/s into a real Elasticsearch node: files, syslog over loopback, EVTX — next to the ceiling.

    SOC_ELASTICSEARCH_URL=http://127.0.0.1:9299 .venv/bin/python bench/bench_ingest.py [--lines N]

In one run, against one node:

(a) file → ``LogSensor`` (tailer, nginx parser, spool, forwarder, ``ElasticsearchStore``);
(b) syslog over TCP on 127.0.0.1 → ``SyslogSensor`` → the same path (a separate process sends);
(c) the ceilings, one per sensor: the very documents that sensor sends — captured beforehand by
    running it against a store that keeps each prepared bulk body and sends nothing — posted
    with plain ``_bulk`` requests of the forwarder's batch size, one at a time, into indices
    set up with the same template: what the node takes when the sensor costs nothing. Each
    is measured before and after the sensors run, and the two are pooled;
(d) ``EventImport`` of every .evtx file of the shared evtx-attack-samples set.

Each run writes under its own index prefix and deletes those indices (by concrete name) after.
Peak RSS is this process's ``ru_maxrss`` after each phase. Results go to BENCHMARKS.md by hand.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sensors.cli import tune_garbage_collector  # noqa: E402
from sensors.config import ImportConfig, SensorConfig, SyslogSensorConfig  # noqa: E402
from sensors.pipeline import EventImport, LogSensor, SyslogSensor  # noqa: E402
from sensors.sources.evtx import evtx_files  # noqa: E402
from soc_core.store.base import BulkResult, ItemResult, PreparedEvents  # noqa: E402
from soc_core.store.elasticsearch import ElasticsearchStore  # noqa: E402

SHARED = Path(os.environ.get("CANHGAC_SHARED_DATA", ROOT.parent / "shared" / "data"))
BATCH = 500


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def access_lines(count: int) -> list[str]:
    agents = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "curl/8.5.0", "sqlmap/1.7#stable"]
    return [
        f"10.{n % 250}.{(n // 250) % 250}.{n % 7 + 1} - - [05/Feb/2024:10:{(n // 60) % 60:02d}:{n % 60:02d} +0700] "
        f'"GET /portal/item.php?id={n}&q=test HTTP/1.1" {200 if n % 11 else 404} {1000 + n % 5000} '
        f'"https://dichvucong.example.gov.vn/" "{agents[n % 3]}"'
        for n in range(count)
    ]


def forwarder_options() -> dict[str, Any]:
    return {"batch_max_events": BATCH, "batch_max_age": 0.2}


class CapturingStore(ElasticsearchStore):
    """Takes what a sensor sends and sends nothing: each batch's bulk body, exactly as prepared
    for the node (actions and documents), written to a file of its own in ``directory`` (on disk,
    so the bodies do not count in this process's peak RSS). The ceiling posts these bodies."""

    def __init__(self, url: str, prefix: str, directory: Path) -> None:
        super().__init__(url, prefix=prefix)
        self.directory = directory
        directory.mkdir(parents=True)
        self.bodies: list[Path] = []

    def setup(self) -> None:
        """Nothing to create: nothing is written."""

    def add_prepared(self, prepared: PreparedEvents) -> BulkResult:
        bulk = prepared.body
        path = self.directory / f"{len(self.bodies):06d}.ndjson"
        path.write_bytes(b"\n".join(bulk.lines) + b"\n")
        self.bodies.append(path)
        return BulkResult(
            [result or ItemResult(i, "created") for result, i in zip(bulk.results, bulk.ids, strict=True)]
        )


def run_files(store: ElasticsearchStore, lines: list[str], work: Path) -> tuple[float, int]:
    log = work / "access.log"
    if not log.exists():
        log.write_text("".join(line + "\n" for line in lines))
    config = SensorConfig.from_dict(
        {
            "tenant": "bench_files",
            "sensor_id": "bench-files",
            "state_dir": str(work / f"state-files-{store.prefix}"),
            "inputs": [{"paths": [str(log)], "parser": "nginx", "from_beginning": True}],
            "forwarder": forwarder_options(),
        }
    )
    sensor = LogSensor(config, store, max_records=BATCH * 4)
    start = time.perf_counter()
    counters = sensor.run_until_idle(timeout=600)
    elapsed = time.perf_counter() - start
    sensor.close()
    store.close()
    return elapsed, counters["events_out"]


SENDER = """
import socket, sys
port, path = int(sys.argv[1]), sys.argv[2]
data = open(path, "rb").read()
with socket.create_connection(("127.0.0.1", port)) as conn:
    conn.sendall(data)
"""


def run_syslog(store: ElasticsearchStore, lines: list[str], work: Path) -> tuple[float, int]:
    payload = work / "syslog.txt"
    if not payload.exists():
        payload.write_bytes(b"".join(f"<134>Feb  5 10:00:00 web01 nginx: {line}\n".encode() for line in lines))
    config = SyslogSensorConfig.from_dict(
        {
            "tenant": "bench_syslog",
            "sensor_id": "bench-syslog",
            "state_dir": str(work / f"state-syslog-{store.prefix}"),
            "tcp": ["127.0.0.1:0"],
            "forwarder": forwarder_options(),
        }
    )
    sensor = SyslogSensor(config, store)
    sensor.start()
    start = time.perf_counter()
    sender = subprocess.Popen([sys.executable, "-c", SENDER, str(sensor.receiver.port("tcp")), str(payload)])
    deadline = time.monotonic() + 600
    while sensor.forwarder.counters()["events_out"] < len(lines) and time.monotonic() < deadline:
        sensor.step(timeout=0.05, max_records=BATCH * 4)
    elapsed = time.perf_counter() - start
    sender.wait(30)
    out = sensor.forwarder.counters()["events_out"]
    sensor.close()
    store.close()
    return elapsed, out


def run_ceiling(url: str, bodies: list[Path]) -> tuple[float, int]:
    """Post ``bodies`` (a sensor's batches, captured beforehand) with plain _bulk requests, one
    at a time: what the node takes of those very documents when the sensor costs nothing. Each
    body is read from the page cache inside the clock (~0.1 µs per event)."""
    created = 0
    with httpx.Client(base_url=url, timeout=120) as client:
        start = time.perf_counter()
        for path in bodies:
            response = client.post(
                "/_bulk", content=path.read_bytes(), headers={"content-type": "application/x-ndjson"}
            )
            response.raise_for_status()
            created += sum(1 for item in response.json()["items"] if item["create"]["status"] in (200, 201))
        elapsed = time.perf_counter() - start
    return elapsed, created


def captured(url: str, prefix: str, directory: Path, run: Callable[[ElasticsearchStore], object]) -> list[Path]:
    """The bulk bodies a sensor run sends, with indices under ``prefix`` (nothing is written)."""
    store = CapturingStore(url, prefix, directory)
    run(store)
    return store.bodies


def run_evtx(url: str, prefix: str, work: Path) -> tuple[float, int, int]:
    files = evtx_files([SHARED / "evtx-attack-samples"])
    config = ImportConfig.from_dict(
        {
            "tenant": "bench_evtx",
            "sensor_id": "bench-evtx",
            "state_dir": str(work / "state-evtx"),
            "forwarder": forwarder_options(),
        }
    )
    store = ElasticsearchStore(url, prefix=prefix, request_timeout=60)
    job = EventImport(config, store)
    start = time.perf_counter()
    for path in files:
        job.evtx_file(path)
    job.finish()
    elapsed = time.perf_counter() - start
    store.close()
    counters = job.counters()
    return elapsed, counters["events_out"], counters["read_failures"]


def run_evtx_no_store() -> tuple[float, int, int]:
    """Read + normalise every record (no store): the sensor's own EVTX cost; and the index count."""
    import json  # noqa: PLC0415

    from sensors.parsers import windows  # noqa: PLC0415
    from sensors.sources.evtx import EvtxRecord, read_evtx  # noqa: PLC0415

    days: set[tuple[str, str]] = set()
    count = 0
    start = time.perf_counter()
    for path in evtx_files([SHARED / "evtx-attack-samples"]):
        for item in read_evtx(path):
            if isinstance(item, EvtxRecord):
                fields = windows.from_evtx(json.loads(item.data))
                stamp = fields.get("@timestamp")
                days.add((fields["event.dataset"], stamp.strftime("%Y.%m.%d") if stamp else ""))
                count += 1
    return time.perf_counter() - start, count, len(days)


def node_cpu_seconds(url: str) -> float:
    """CPU seconds the node's JVM has used so far (its own process stats)."""
    stats = httpx.get(f"{url}/_nodes/_local/stats/process", params={"filter_path": "nodes.*.process.cpu"}).json()
    return float(sum(node["process"]["cpu"]["total_in_millis"] for node in stats["nodes"].values())) / 1000


def cleanup(url: str, prefix: str) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        names = client.get(f"/_cat/indices/{prefix}-*", params={"h": "index", "format": "json"}).json()
        for entry in names:
            client.delete(f"/{entry['index']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--url", default=os.environ.get("SOC_ELASTICSEARCH_URL", "http://127.0.0.1:9299"))
    args = parser.parse_args()
    prefix = f"bench{secrets.token_hex(3)}"
    setup = ElasticsearchStore(args.url, prefix=prefix)
    setup.setup()
    setup.close()
    nodes = httpx.get(f"{args.url}/_nodes/_local", params={"filter_path": "nodes.*.version"}).json()
    version = ",".join(node["version"] for node in nodes.get("nodes", {}).values()) or "?"
    lines = access_lines(args.lines)
    tune_garbage_collector()  # as every `soc sensor` command does once its sensor is set up
    rows: list[tuple[str, int, float, str]] = []
    cpu: dict[str, tuple[float, float]] = {}  # phase → (this process's CPU s, the node's CPU s)

    def es(name: str) -> ElasticsearchStore:
        return ElasticsearchStore(args.url, prefix=name, request_timeout=60)

    def measured(phase: str, run: Callable[[], tuple[float, int]]) -> tuple[float, int]:
        own, node = time.process_time(), node_cpu_seconds(args.url)
        result = run()
        cpu[phase] = (time.process_time() - own, node_cpu_seconds(args.url) - node)
        return result

    prefixes = [prefix]

    def templated(suffix: str) -> str:
        """A prefix of its own with the events template set up, as the sensors' indices have."""
        name = f"{prefix}{suffix}"
        store = ElasticsearchStore(args.url, prefix=name)
        store.setup()
        store.close()
        prefixes.append(name)
        return name

    def retarget(bodies: list[Path], name: str) -> list[Path]:
        """Copies of the captured bodies with their indices under ``name`` (ids would clash in one
        index), written before any clock starts."""
        copies = []
        for path in bodies:
            copy = path.with_name(f"{name}-{path.name}")
            copy.write_bytes(path.read_bytes().replace(f'"_index":"{capture}-'.encode(), f'"_index":"{name}-'.encode()))
            copies.append(copy)
        return copies

    capture = f"{prefix}cap"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            # the documents each sensor sends, captured before any clock starts (nothing written)
            bodies = {
                "files": captured(
                    args.url, capture, work / "bodies-files", lambda store: run_files(store, lines, work)
                ),
                "syslog": captured(
                    args.url, capture, work / "bodies-syslog", lambda store: run_syslog(store, lines, work)
                ),
            }
            run_ceiling(args.url, retarget(bodies["files"][:40], templated("w")))  # warm the JVM up, untimed
            ceilings: dict[str, list[tuple[float, int]]] = {"files": [], "syslog": []}
            for path in ("files", "syslog"):
                ready = retarget(bodies[path], templated(f"{path[0]}1"))
                ceilings[path].append(measured(f"ceiling ({path} documents)", partial(run_ceiling, args.url, ready)))
            files_s, files_n = measured("files", lambda: run_files(es(prefix), lines, work))
            rss_files = peak_rss_mib()
            syslog_s, syslog_n = measured("syslog", lambda: run_syslog(es(prefix), lines, work))
            rss_syslog = peak_rss_mib()
            for path in ("files", "syslog"):  # the node as it is now
                ready = retarget(bodies[path], templated(f"{path[0]}2"))
                ceilings[path].append(run_ceiling(args.url, ready))
            ceiling: dict[str, float] = {}
            for path, label in (("files", "file (nginx)"), ("syslog", "syslog")):
                (first_s, first_n), (again_s, again_n) = ceilings[path]
                ceiling[path] = (first_n + again_n) / (first_s + again_s)
                rows.append(
                    (f"ceiling, {label} documents: pre-serialised _bulk (500/request), before", first_n, first_s, "-")
                )
                rows.append((f"ceiling, {label} documents: the same, after both sensors", again_n, again_s, "-"))
                rows.append(
                    (f"ceiling, {label} documents: both runs together", first_n + again_n, first_s + again_s, "1.00")
                )
            rows.append(
                ("file → LogSensor (nginx) → ES", files_n, files_s, f"{files_n / files_s / ceiling['files']:.2f}")
            )
            rows.append(
                (
                    "syslog TCP loopback → SyslogSensor → ES",
                    syslog_n,
                    syslog_s,
                    f"{syslog_n / syslog_s / ceiling['syslog']:.2f}",
                )
            )
            evtx_s, evtx_n, evtx_failed = run_evtx(args.url, prefix, work)
            rows.append(("EVTX import (evtx-attack-samples) → ES", evtx_n, evtx_s, "-"))
            rss_evtx = peak_rss_mib()
            parse_s, parse_n, indices = run_evtx_no_store()
            rows.append(("EVTX read + normalise only (no store)", parse_n, parse_s, "-"))
    finally:
        for name in prefixes:
            cleanup(args.url, name)
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}, ES {version}")
    print(f"command: .venv/bin/python bench/bench_ingest.py --lines {args.lines}")
    print()
    print("| path | events | seconds | events/s | ratio to ceiling |")
    print("|---|---:|---:|---:|---:|")
    for name, count, seconds, ratio in rows:
        print(f"| {name} | {count:,} | {seconds:.1f} | {count / seconds:,.0f} | {ratio} |")
    print()
    print(f"peak RSS (MiB): after files {rss_files:.0f}, after syslog {rss_syslog:.0f}, after EVTX {rss_evtx:.0f}")
    print()
    print("| phase | µs CPU per event, this process | µs CPU per event, Elasticsearch node | sum |")
    print("|---|---:|---:|---:|")
    for phase, (own, node) in cpu.items():
        count = len(lines)
        print(f"| {phase} | {own / count * 1e6:.0f} | {node / count * 1e6:.0f} | {(own + node) / count * 1e6:.0f} |")
    print(f"EVTX damaged records/chunks counted: {evtx_failed}; daily indices the EVTX set spreads over: {indices}")


if __name__ == "__main__":
    main()
