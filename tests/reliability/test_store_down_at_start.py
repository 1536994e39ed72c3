"""A sensor starts while its store is unreachable, spools, and delivers once the store is up;
what waiting cannot fix (a refused credential, a URL the client cannot parse) stops it at once.

The real ``soc sensor logs --follow`` process is pointed at a port where nothing listens yet;
then a secured Elasticsearch node is started on that very port. The sensor sets up the index
templates itself (lazily, before its first write) and every line arrives exactly once.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from elasticsearch import Elasticsearch, helpers

from soc_core.devnode import DevNode, free_port
from soc_core.errors import SocError
from tests.reliability.sensor_process import (
    LogFile,
    SensorProcess,
    checkpoint_offset,
    elasticsearch_env,
    read_position,
    seq_of,
    write_sensor_config,
)
from tests.shared_data import unavailable
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.elasticsearch, pytest.mark.slow]

LINES = 2_000


@pytest.fixture(scope="module")
def later_node() -> Iterator[DevNode]:
    """A secured node on a reserved port, not started: the test starts it."""
    workdir = Path(tempfile.mkdtemp(prefix="canhgac-es-later-"))
    node = DevNode(workdir, port=free_port(), security=True)
    try:
        yield node
    finally:
        node.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def start(node: DevNode) -> Elasticsearch:
    if node.running_pid() is None:
        try:
            node.start(timeout=180)
        except (SocError, OSError) as exc:
            unavailable(f"cannot start the secured Elasticsearch node: {exc}")
    return Elasticsearch(node.url, basic_auth=("elastic", node.password), request_timeout=30)


def store_env(node: DevNode, password: str) -> dict[str, str]:
    return elasticsearch_env(node.url, 2.0) | {
        "SOC_STORE__ELASTICSEARCH__USERNAME": "elastic",
        "SOC_STORE__ELASTICSEARCH__PASSWORD": password,
    }


def stored_seqs(client: Elasticsearch, tenant: str) -> list[int]:
    client.indices.refresh(index=f"canhgac-events-{tenant}-*")
    hits = helpers.scan(client, index=f"canhgac-events-{tenant}-*", query={"query": {"match_all": {}}}, size=5000)
    return [seq_of(hit["_source"]["message"]) for hit in hits]


def test_sensor_starts_with_the_store_down_and_delivers_every_line_once_when_it_is_up(
    later_node: DevNode, tmp_path: Path
) -> None:
    tenant = "down_at_start"
    log = LogFile(tmp_path / "app.log")
    log.append(0, LINES // 2)
    config = write_sensor_config(tmp_path / "sensor", tenant=tenant, paths=[str(log.path)], input_id="app")
    spool = tmp_path / "sensor" / "state" / "spool"
    sensor = SensorProcess(config, store_env(later_node, later_node.password), tmp_path / "sensor.log")
    sensor.start()
    client = None
    try:
        wait_for(
            lambda: read_position(sensor.pid, log.path),
            "the sensor to read the file",
            until=lambda seen: seen == log.size,
        )
        log.append(LINES // 2, LINES)  # it keeps following while the store is down
        wait_for(
            lambda: read_position(sensor.pid, log.path),
            "the sensor to read the new lines",
            until=lambda seen: seen == log.size,
        )
        assert sensor.alive(), sensor.log_text()[-3000:]
        assert f"store unreachable at {later_node.url}" in sensor.log_text()
        assert "spooling until it answers" in sensor.log_text()
        assert sum(p.stat().st_size for p in spool.glob("segment-*.log")) > 0
        assert checkpoint_offset(config) == 0

        client = start(later_node)
        wait_for(lambda: checkpoint_offset(config), "every line to be delivered", until=lambda seen: seen == log.size)
        sensor.signal(signal.SIGTERM)
        assert sensor.wait(timeout=60) == 0, sensor.log_text()[-3000:]
        seqs = stored_seqs(client, tenant)
        templates = client.indices.get_index_template(name="canhgac-events")["index_templates"]
    finally:
        sensor.kill()
        if client is not None:
            client.close()
    assert len(seqs) == LINES and sorted(seqs) == list(range(LINES)), "a line is missing or duplicated"
    assert [t["name"] for t in templates] == ["canhgac-events"], "the sensor did not set the store up"
    counters = sensor.counters()
    assert counters["store_failures"] >= 1 and counters["dead_lettered"] == 0
    assert counters["events_out"] == LINES


def test_a_refused_credential_stops_the_sensor_at_once(later_node: DevNode, tmp_path: Path) -> None:
    start(later_node).close()
    log = LogFile(tmp_path / "app.log")
    log.append(0, 10)
    config = write_sensor_config(tmp_path / "sensor", tenant="bad_password", paths=[str(log.path)], input_id="app")
    sensor = SensorProcess(config, store_env(later_node, "not-the-password"), tmp_path / "sensor.log")
    asked = time.monotonic()
    sensor.start()
    code = sensor.wait(timeout=60)
    took = time.monotonic() - asked
    text = sensor.log_text()
    assert code == 2, text
    assert "401" in text and later_node.url in text and "Traceback" not in text, text
    assert not (tmp_path / "sensor" / "state" / "spool").exists(), "nothing may be spooled for a store that refuses"
    print(f"bad password: exit {code} after {took:.1f}s: {text.strip()[:300]}")


def test_a_refused_sensor_credential_stops_the_sensor_at_once(later_node: DevNode, tmp_path: Path) -> None:
    start(later_node).close()
    log = LogFile(tmp_path / "app.log")
    log.append(0, 10)
    config = write_sensor_config(tmp_path / "sensor", tenant="bad_key", paths=[str(log.path)], input_id="app")
    password_file = tmp_path / "sensor.password"
    password_file.write_text("wrong\n")
    password_file.chmod(0o600)
    body = yaml.safe_load(config.read_text())
    body["elasticsearch"] = {"url": later_node.url, "username": "elastic", "password_file": str(password_file)}
    config.write_text(yaml.safe_dump(body))
    sensor = SensorProcess(config, {}, tmp_path / "sensor.log")
    sensor.start()
    code = sensor.wait(timeout=60)
    text = sensor.log_text()
    assert code == 2, text
    assert "401" in text and "authenticate the sensor's credential" in text and "Traceback" not in text, text


def test_a_url_the_client_cannot_parse_stops_the_sensor_at_once(tmp_path: Path) -> None:
    log = LogFile(tmp_path / "app.log")
    log.append(0, 10)
    config = write_sensor_config(tmp_path / "sensor", tenant="bad_url", paths=[str(log.path)], input_id="app")
    for url in ("http://127.0.0.1:99999", "elasticsearch:9200"):
        sensor = SensorProcess(config, elasticsearch_env(url, 2.0), tmp_path / f"sensor-{len(url)}.log")
        sensor.start()
        code = sensor.wait(timeout=60)
        text = sensor.log_text()
        assert code == 2, text
        assert "store.elasticsearch.url" in text and "Traceback" not in text, text
