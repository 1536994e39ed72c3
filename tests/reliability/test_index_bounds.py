"""H11 (RELIABILITY.md): a sensor cannot create unbounded indices, and a refused index loses nothing.

A dedicated Elasticsearch node with ``cluster.max_shards_per_node: 4`` (every event index has
one shard and, here, no replica: four indices fill it). The real log sensor (``LogSensor``:
tailer, spool, forwarder, ``StoreSink``) reads JSON lines and writes straight to the node
through an Elasticsearch store with bounds, as a sensor with its own credential does; its
heartbeats go to a real SOC API (uvicorn) with the forwarder's last error as its problem.

* Many datasets and days: 40 datasets over 450 days would be hundreds of indices; with the
  bounds they fit in the four the node allows — every event stored exactly once, none
  dead-lettered, the originals in ``labels.original_*``.
* The limit hit anyway (another agency's indices fill the node first): the police sensor's
  events are answered ``validation_exception … maximum normal shards open``; they stay
  spooled and are retried, none dead-lettered, the sensor's health is ``degraded`` with that
  reason. After room is made (the limit raised) every event arrives exactly once and the
  health is ``online`` again.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from sensors.config import HealthConfig, SensorConfig
from sensors.health import HealthReporter
from sensors.pipeline import LogSensor
from soc_core.bounds import ORIGINAL_DATASET, ORIGINAL_TIMESTAMP, EventBounds
from soc_core.devnode import DevNode
from soc_core.events import format_timestamp, make_event, utcnow
from soc_core.store.elasticsearch import ElasticsearchStore
from tests.shared_data import dev_node
from tests.support.health_api import Api, sensor_api
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.elasticsearch, pytest.mark.slow]

SHARD_LIMIT = 4
PASSWORD = "a-very-long-password"
# the bound of these tests: {system.auth, unknown} x {yesterday, today} = 4 indices at most
BOUNDS = EventBounds(frozenset({"system.auth", "unknown"}), timedelta(days=1), timedelta(0))


@pytest.fixture(scope="module")
def node() -> Iterator[DevNode]:
    settings = {"cluster.max_shards_per_node": str(SHARD_LIMIT)}
    with dev_node("shardlimit", heap_mb=512, extra_settings=settings) as dev:
        store = ElasticsearchStore(dev.url, request_timeout=30)
        store.setup()  # the templates: one shard, no replica
        store.close()
        yield dev


@pytest.fixture
def client(node: DevNode) -> Iterator[Elasticsearch]:
    es = Elasticsearch(node.url, request_timeout=30)
    yield es
    es.cluster.put_settings(persistent={"cluster.max_shards_per_node": None})
    for name in es.indices.get(index="canhgac-events-*", allow_no_indices=True):
        es.indices.delete(index=name)
    es.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    """The SOC API on loopback with one registered police sensor, for its heartbeats."""
    with sensor_api(tmp_path, name="police-logs") as live:
        yield live


def json_lines(path: Path, lines: list[tuple[int, str, str]]) -> None:
    """One JSON line per (seq, dataset, @timestamp)."""
    with path.open("a") as handle:
        for seq, dataset, stamp in lines:
            handle.write(
                json.dumps({"@timestamp": stamp, "event": {"dataset": dataset}, "message": f"seq={seq}"}) + "\n"
            )


def sensor_config(tmp_path: Path, log: Path) -> SensorConfig:
    return SensorConfig.from_dict(
        {
            "tenant": "police",
            "sensor_id": "police-logs",
            "state_dir": str(tmp_path / "state"),
            "inputs": [{"paths": [str(log)], "parser": "jsonl", "from_beginning": True}],
            "poll_interval": 0.05,
            "forwarder": {"batch_max_age": 0.05, "batch_max_events": 100, "backoff_initial": 0.05, "backoff_max": 0.5},
        }
    )


def stored(client: Elasticsearch, tenant: str) -> dict[int, dict[str, object]]:
    """Stored events of ``tenant`` by seq; a seq stored twice fails here."""
    client.indices.refresh(index=f"canhgac-events-{tenant}-*", allow_no_indices=True)
    body = client.search(
        index=f"canhgac-events-{tenant}-*", size=10_000, query={"match_all": {}}, allow_no_indices=True
    )
    sources = [hit["_source"] for hit in body["hits"]["hits"]]
    seqs = Counter(int(str(source["message"]).removeprefix("seq=")) for source in sources)
    doubled = {seq: count for seq, count in seqs.items() if count > 1}
    assert not doubled, f"stored more than once: {doubled}"
    return {int(str(source["message"]).removeprefix("seq=")): source for source in sources}


def dead_letters(tmp_path: Path) -> list[str]:
    path = tmp_path / "state" / "dead-letters.jsonl"
    return path.read_text().splitlines() if path.exists() else []


def test_h11_a_sensor_sending_many_datasets_and_days_stays_within_the_bound(
    node: DevNode, client: Elasticsearch, tmp_path: Path
) -> None:
    now = utcnow()
    # 40 datasets x 450 days back (and some days ahead): unbounded, hundreds of indices; the
    # first day's are 12 hours old (kept), every other day's 36 hours or more (replaced)
    back = [timedelta(days=(seq * 7) % 450, hours=12) for seq in range(800)]
    lines = [(seq, f"police.app{seq % 40}", format_timestamp(now - back[seq])) for seq in range(800)]
    lines += [(800 + seq, "system.auth", format_timestamp(now + timedelta(days=1 + seq % 9))) for seq in range(100)]
    lines += [(900 + seq, "system.auth", format_timestamp(now - timedelta(minutes=seq))) for seq in range(100)]
    log = tmp_path / "app.jsonl"
    json_lines(log, lines)
    store = ElasticsearchStore(node.url, request_timeout=30, bounds=BOUNDS)
    sensor = LogSensor(sensor_config(tmp_path, log), store)
    try:
        counters = sensor.run_until_idle(timeout=120)
    finally:
        sensor.close()
        store.close()
    assert counters["dead_lettered"] == 0 and dead_letters(tmp_path) == []
    assert counters["events_out"] == len(lines)
    indices = set(client.indices.get(index="canhgac-events-*"))
    assert 1 <= len(indices) <= SHARD_LIMIT, indices
    events = stored(client, "police")
    assert sorted(events) == [seq for seq, _, _ in lines], "lost events"
    for seq, dataset, stamp in lines:
        event = events[seq]
        if dataset != "system.auth":
            assert (event["event.dataset"], event[ORIGINAL_DATASET]) == ("unknown", dataset)
        if (seq < 800 and back[seq] > timedelta(days=1)) or 800 <= seq < 900:
            assert event[ORIGINAL_TIMESTAMP] == stamp and str(event["@timestamp"]) >= format_timestamp(now)
        else:
            assert event["@timestamp"] == stamp and ORIGINAL_TIMESTAMP not in event


def test_h11_when_the_shard_limit_is_hit_events_are_spooled_retried_and_all_arrive(
    node: DevNode, client: Elasticsearch, api: Api, tmp_path: Path
) -> None:
    # another agency's indices fill the node: four days of health events
    filler = ElasticsearchStore(node.url, request_timeout=30)
    health = [
        make_event(
            tenant="health",
            dataset="system.auth",
            sensor_id="health-logs",
            source="seed",
            position=day,
            raw=b"seed",
            timestamp=utcnow() - timedelta(days=10 + day),
            fields={"message": f"seq={day}"},
        )
        for day in range(SHARD_LIMIT)
    ]
    assert {item.status for item in filler.add_events(health).items} == {"created"}
    filler.close()
    assert len(client.indices.get(index="canhgac-events-*")) == SHARD_LIMIT

    now = utcnow()
    count = 300
    log = tmp_path / "auth.jsonl"
    json_lines(log, [(seq, "system.auth", format_timestamp(now - timedelta(seconds=seq))) for seq in range(count)])
    store = ElasticsearchStore(node.url, request_timeout=30, bounds=BOUNDS)
    sensor = LogSensor(sensor_config(tmp_path, log), store)
    reporter = HealthReporter(
        HealthConfig(api_url=api.url, api_key_file=api.key_file, interval=0.2),
        sensor.counters,
        problem=lambda: sensor.forwarder.last_error,
    )
    stop = threading.Event()
    runner = threading.Thread(target=sensor.run, args=(stop,))
    reporter.start()
    runner.start()
    try:
        wait_for(lambda: sensor.counters()["spooled"], f"all {count} lines spooled", until=lambda n: n == count)
        wait_for(lambda: sensor.counters()["retried"], "the refused events to be retried", until=lambda n: n >= count)

        def degraded() -> bool:
            body = api.sensor()
            health = body["health"]
            assert isinstance(health, dict)
            return body["status"] == "degraded" and "maximum normal shards open" in " ".join(health["reasons"])

        wait_for(degraded, "the sensor's health to say why")
        counters = sensor.counters()
        assert counters["dead_lettered"] == 0 and counters["events_out"] == 0 and counters["spooled"] == count
        assert stored(client, "police") == {}
        assert len(stored(client, "health")) == SHARD_LIMIT  # the other agency's events untouched

        # room is made: the operator raises the limit; nothing was lost meanwhile
        client.cluster.put_settings(persistent={"cluster.max_shards_per_node": str(SHARD_LIMIT + 2)})
        wait_for(lambda: sensor.counters()["events_out"], f"all {count} events out", until=lambda n: n == count)
        wait_for(lambda: api.sensor()["status"], "the health to be online again", until=lambda s: s == "online")
    finally:
        stop.set()
        runner.join(timeout=30)
        reporter.stop()
        store.close()
    assert sorted(stored(client, "police")) == list(range(count)), "lost events"
    assert sensor.counters()["dead_lettered"] == 0 and dead_letters(tmp_path) == []
    assert sensor.counters()["duplicates"] == 0
