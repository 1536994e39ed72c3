"""Elasticsearch unreachable: the sensor keeps every accepted event and delivers it later."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensors.config import InputConfig, SensorConfig
from sensors.errors import SensorError
from sensors.pipeline import LogSensor
from soc_core.devnode import free_port
from soc_core.query import event_query
from soc_core.store import ElasticsearchStore

pytestmark = pytest.mark.elasticsearch


def test_no_event_is_lost_while_elasticsearch_is_unreachable(es_store: ElasticsearchStore, tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text(
        "".join(
            f"Nov 25 10:{i // 60:02d}:{i % 60:02d} web01 sshd[{i}]: Failed password for root from 198.51.100.{i % 200} "
            f"port {1000 + i} ssh2\n"
            for i in range(500)
        )
    )
    config = SensorConfig(
        tenant="police",
        sensor_id="web01",
        state_dir=tmp_path / "state",
        inputs=[InputConfig(paths=[str(log)], parser="auth", from_beginning=True)],
    )
    down = ElasticsearchStore(f"http://127.0.0.1:{free_port()}", prefix=es_store.prefix, request_timeout=1)
    sensor = LogSensor(config, down)
    with pytest.raises(SensorError, match=r"127\.0\.0\.1"):
        sensor.run_until_idle(timeout=3)
    sensor.close()
    assert sensor.counters()["store_failures"] >= 1

    # the node is back (same state dir, a new process of the sensor): everything arrives once
    sensor = LogSensor(config, es_store)
    counters = sensor.run_until_idle(timeout=60)
    sensor.close()
    es_store.refresh()
    assert es_store.count_events(event_query(tenants=["police"]))[0].count == 500
    assert counters["dead_lettered"] == 0
