"""D1/D2 (RELIABILITY.md): a following sensor process, a real file and a dedicated
Elasticsearch node that the test kills (SIGKILL) or freezes (SIGSTOP).

Scaled down from RELIABILITY.md for the suite: 20,000 lines instead of 100,000, an outage of
15 s instead of 60 s (D1) and a freeze of 20 s instead of 90 s (D2). The pass criteria are the
same and exact: every line once, the checkpoint never ahead of what the node has stored.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch, helpers

from soc_core.devnode import DevNode
from tests.reliability.sensor_process import (
    LogFile,
    SensorProcess,
    checkpoint_offset,
    elasticsearch_env,
    seq_of,
    tcp_connections_to,
    write_sensor_config,
)
from tests.shared_data import dev_node
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.elasticsearch, pytest.mark.slow]

LINES = 20_000
REQUEST_TIMEOUT = 2.0  # seconds; short so that a frozen node makes the requests time out


@dataclass
class KillableNode:
    """A node of our own: the test may SIGKILL or SIGSTOP its whole process group."""

    node: DevNode
    client: Elasticsearch

    @property
    def pgid(self) -> int:
        assert self.node.process is not None
        return self.node.process.pid

    def kill(self) -> None:
        os.killpg(self.pgid, signal.SIGKILL)
        assert self.node.process is not None
        self.node.process.wait(timeout=60)

    def freeze(self) -> None:
        os.killpg(self.pgid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.killpg(self.pgid, signal.SIGCONT)

    def restart(self) -> None:
        """The same workdir (data, port): what a supervisor would do after a crash."""
        self.node.start(timeout=180)


@pytest.fixture(scope="module")
def killable_node() -> Iterator[KillableNode]:
    with dev_node("killable", heap_mb=512) as node:
        client = Elasticsearch(node.url, request_timeout=30)
        killable = KillableNode(node, client)
        try:
            yield killable
        finally:
            client.close()
            if node.process is not None and node.process.poll() is None:
                killable.thaw()  # a failed D2 may leave it stopped; SIGTERM cannot act on it then


def stored_seqs(client: Elasticsearch, tenant: str) -> tuple[list[int], set[str]]:
    """Every stored line's seq (duplicates kept) and the set of event ids."""
    client.indices.refresh(index=f"canhgac-events-{tenant}-*")
    seqs: list[int] = []
    ids: set[str] = set()
    for hit in helpers.scan(
        client,
        index=f"canhgac-events-{tenant}-*",
        query={"query": {"match_all": {}}},
        _source=["message", "event.id"],
        size=5000,
    ):
        seqs.append(seq_of(hit["_source"]["message"]))
        ids.add(hit["_source"]["event"]["id"] if "event" in hit["_source"] else hit["_source"]["event.id"])
    return seqs, ids


def count_below(client: Elasticsearch, tenant: str, offset: int) -> int:
    """Stored lines that start before ``offset`` (so end at or before it, for whole lines)."""
    index = f"canhgac-events-{tenant}-*"
    client.indices.refresh(index=index, allow_no_indices=True, ignore_unavailable=True)
    body = client.count(
        index=index,
        query={"range": {"log.offset": {"lt": offset}}},
        allow_no_indices=True,
        ignore_unavailable=True,
    )
    return int(body["count"])


@dataclass
class CheckpointAudit:
    """Reads the saved checkpoint over and over; each time the node answers, checks that
    every line before it is stored (the store only grows, so checking after reading is sound)."""

    config: Path
    log: LogFile
    client: Elasticsearch
    tenant: str
    checked: int = 0
    violations: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        client = self.client.options(request_timeout=1.0)
        while not self._stop.wait(0.3):
            offset = checkpoint_offset(self.config)
            if offset == 0:
                continue
            try:
                stored = count_below(client, self.tenant, offset)
            except (ApiError, TransportError):  # the node is down or frozen: nothing to check now
                continue
            expected = self.log.lines_before(offset)
            self.checked += 1
            if stored < expected:
                self.violations.append(f"checkpoint {offset} covers {expected} lines; {stored} stored")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def start_ingest(
    node: KillableNode, tmp_path: Path, tenant: str
) -> tuple[LogFile, Path, SensorProcess, CheckpointAudit]:
    """Half the lines written, the sensor following the file, the checkpoint audited."""
    log = LogFile(tmp_path / "app.log")
    log.append(0, LINES // 2)
    config = write_sensor_config(
        tmp_path / "sensor",
        tenant=tenant,
        paths=[str(log.path)],
        input_id="app",
        batch_max_events=500,
        shutdown_timeout=20.0,
    )
    sensor = SensorProcess(config, elasticsearch_env(node.node.url, REQUEST_TIMEOUT), tmp_path / "sensor.log")
    sensor.start()
    audit = CheckpointAudit(config, log, node.client, tenant)
    audit.start()
    return log, config, sensor, audit


def finish_and_check(
    node: KillableNode, log: LogFile, config: Path, sensor: SensorProcess, audit: CheckpointAudit, tenant: str
) -> dict[str, int]:
    """Wait until all is delivered, stop the sensor cleanly and compare line by line."""
    wait_for(
        lambda: checkpoint_offset(config), f"the checkpoint to reach {log.size}", until=lambda seen: seen == log.size
    )
    audit.stop()
    sensor.signal(signal.SIGTERM)
    assert sensor.wait(timeout=60) == 0, sensor.log_text()[-3000:]
    counters = sensor.counters()
    seqs, ids = stored_seqs(node.client, tenant)
    assert len(seqs) == LINES, f"{len(seqs)} docs for {LINES} lines"
    assert sorted(seqs) == list(range(LINES)), "a line is missing or duplicated"
    assert len(ids) == LINES
    assert counters["dead_lettered"] == 0
    assert counters["lines_read"] >= LINES
    assert not audit.violations, audit.violations[:5]
    assert audit.checked > 0
    return counters


def test_d1_elasticsearch_killed_and_restarted_loses_and_duplicates_nothing(
    killable_node: KillableNode, tmp_path: Path
) -> None:
    tenant = "d1"
    log, config, sensor, audit = start_ingest(killable_node, tmp_path, tenant)
    try:
        wait_for(
            lambda: checkpoint_offset(config), "~30 % delivered", until=lambda seen: seen >= log.ends[int(0.3 * LINES)]
        )
        killable_node.kill()
        at_kill = checkpoint_offset(config)
        log.append(LINES // 2, LINES)  # the file keeps growing during the outage
        time.sleep(2.0)  # a bulk in flight at the kill is acknowledged or retried by now
        during = checkpoint_offset(config)
        time.sleep(13.0)  # ~15 s down in all
        # nothing is acknowledged while no node is there to store it
        assert checkpoint_offset(config) == during
        assert sensor.alive()
        killable_node.restart()
        counters = finish_and_check(killable_node, log, config, sensor, audit, tenant)
    finally:
        audit.stop()
        sensor.kill()
    assert 0 < at_kill < log.size
    assert counters["store_failures"] >= 1


def test_d2_elasticsearch_frozen_then_thawed_times_out_and_leaks_nothing(
    killable_node: KillableNode, tmp_path: Path
) -> None:
    tenant = "d2"
    log, config, sensor, audit = start_ingest(killable_node, tmp_path, tenant)
    port = killable_node.node.port
    try:
        wait_for(
            lambda: checkpoint_offset(config), "~30 % delivered", until=lambda seen: seen >= log.ends[int(0.3 * LINES)]
        )
        fds_before = sensor.fd_targets()
        connections_before = tcp_connections_to(sensor.pid, port)
        killable_node.freeze()
        try:
            log.append(LINES // 2, LINES)
            time.sleep(2.0 + REQUEST_TIMEOUT)
            during = checkpoint_offset(config)
            time.sleep(20.0 - 2.0 - REQUEST_TIMEOUT)
            assert checkpoint_offset(config) == during
            assert sensor.alive()
        finally:
            killable_node.thaw()
        wait_for(
            lambda: checkpoint_offset(config), "the checkpoint to reach the end", until=lambda seen: seen == log.size
        )
        time.sleep(1.0)  # let the follow loop settle (idle polling)
        fds_after = sensor.fd_targets()
        connections_after = tcp_connections_to(sensor.pid, port)
        counters = finish_and_check(killable_node, log, config, sensor, audit, tenant)
    finally:
        audit.stop()
        sensor.kill()
    timeouts = sensor.log_text().count("timed out")
    assert timeouts >= 1, "no request timed out while the node was frozen"
    assert counters["store_failures"] >= 1
    print(f"fds before {len(fds_before)}: {fds_before}\nfds after {len(fds_after)}: {fds_after}")
    print(f"connections to the node: before {connections_before}, after {connections_after}")
    assert len(fds_after) <= len(fds_before), (fds_before, fds_after)
    assert connections_after <= max(connections_before, 1)


def test_d15_sigterm_while_elasticsearch_is_frozen_keeps_the_offset_at_the_last_ack(
    killable_node: KillableNode, tmp_path: Path
) -> None:
    """The flush cannot finish: the sensor still exits, saying so, and the checkpoint stays
    at the last acknowledged line; the next run delivers the rest once."""
    tenant, first, lines, shutdown_timeout = "d15", 2_000, 5_000, 5.0
    log = LogFile(tmp_path / "app.log")
    log.append(0, first)
    config = write_sensor_config(
        tmp_path / "sensor", tenant=tenant, paths=[str(log.path)], input_id="app", shutdown_timeout=shutdown_timeout
    )
    spool = tmp_path / "sensor" / "state" / "spool"
    sensor = SensorProcess(config, elasticsearch_env(killable_node.node.url, REQUEST_TIMEOUT), tmp_path / "sensor.log")
    sensor.start()
    try:
        wait_for(
            lambda: checkpoint_offset(config), "the first lines to be delivered", until=lambda seen: seen == log.size
        )
        acknowledged = log.size
        killable_node.freeze()
        try:
            spooled = sum(p.stat().st_size for p in spool.glob("segment-*.log"))
            log.append(first, lines)
            wait_for(
                lambda: sum(p.stat().st_size for p in spool.glob("segment-*.log")),
                "the new lines to be spooled",
                until=lambda seen: seen > spooled,
            )
            asked = time.monotonic()
            sensor.signal(signal.SIGTERM)
            code = sensor.wait(timeout=60)
            took = time.monotonic() - asked
        finally:
            killable_node.thaw()
    finally:
        sensor.kill()
    assert code == 1, "a sensor that could not flush must not exit 0"
    assert checkpoint_offset(config) == acknowledged
    print(f"SIGTERM with the node frozen → exit {code} in {took:.1f}s (shutdown timeout {shutdown_timeout}s)")

    sensor.start(follow=False)
    assert sensor.wait(timeout=120) == 0, sensor.log_text()[-2000:]
    seqs, ids = stored_seqs(killable_node.client, tenant)
    assert sorted(seqs) == list(range(lines)) and len(ids) == lines
