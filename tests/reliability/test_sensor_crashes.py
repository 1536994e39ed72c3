"""D3 and D15 (RELIABILITY.md): the sensor process itself dies (SIGKILL) or is asked to stop
(SIGTERM) while it ingests a growing file into the SQLite store.

The SQLite store, not Elasticsearch: the sensor side (spool, acks, checkpoints) is what is
under test here, and SQLite keeps each restart cheap. D3 kills at 20 points chosen by a seeded
random generator while a writer appends ~500 lines/s (about 1,000 lines per kill point, so that
the 20 points keep the test under a minute).
"""

from __future__ import annotations

import random
import signal
import threading
import time
from functools import partial
from pathlib import Path

import pytest

from soc_core.store import SqliteStore
from tests.reliability.sensor_process import (
    LogFile,
    SensorProcess,
    checkpoint_offset,
    cpu_seconds,
    read_position,
    seq_of,
    sqlite_env,
    write_sensor_config,
)
from tests.reliability.stored_events import repeated, stored_count, stored_seqs
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

SEED = 20261125
TENANT = "d3"


def stored_lines(database: Path) -> tuple[list[int], set[str]]:
    """Seqs of the stored lines in ingest order (duplicates kept) and the event ids."""
    store = SqliteStore(database)
    try:
        store.setup()  # the sensor creates its tables only at its first write
        events, _ = store.read_new_events(None, limit=10_000_000)
    finally:
        store.close()
    return [seq_of(str(event["message"])) for event in events], {str(event["event.id"]) for event in events}


def progress(sensor: SensorProcess, database: Path, log: LogFile) -> tuple[int, int | None, float]:
    """What a restarted sensor has done so far: rows stored, its read offset, its CPU seconds.

    Any change is progress (a loaded machine makes the restart slow, not stuck). The count is a
    cheap ``count(*)``: reading every stored event at each poll made each wait slower as the
    store grew, while the writer kept appending, so that D3 fell further behind at load 6.
    """
    assert sensor.alive(), f"the sensor exited: {sensor.log_text()[-2000:]}"
    return stored_count(database, TENANT), read_position(sensor.pid, log.path), cpu_seconds(sensor.pid)


def more_rows_than(count: int, seen: tuple[int, int | None, float]) -> bool:
    return seen[0] > count


def missing_and_doubled(seqs: list[int], lines: int) -> str:
    missing = sorted(set(range(lines)) - set(seqs))
    doubled = repeated(seqs)
    examples = dict(list(doubled.items())[:10])
    return f"{len(missing)} missing (e.g. {missing[:10]}), {len(doubled)} doubled (seq: times, e.g. {examples})"


def assert_checkpoint_covered(config: Path, log: LogFile, database: Path) -> None:
    """Every line before the saved checkpoint is in the store."""
    covered = log.lines_before(checkpoint_offset(config))
    missing = set(range(covered)) - set(stored_seqs(database, TENANT))
    assert not missing, f"checkpoint passed {len(missing)} undelivered lines, e.g. {sorted(missing)[:5]}"


def test_d3_sensor_killed_at_random_points_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    kills = 20
    rng = random.Random(SEED)
    database = tmp_path / "canhgac.db"
    log = LogFile(tmp_path / "app.log")
    log.append(0, 500)
    config = write_sensor_config(
        tmp_path / "sensor", tenant=TENANT, paths=[str(log.path)], input_id="app", batch_max_events=200
    )
    sensor = SensorProcess(config, sqlite_env(database), tmp_path / "sensor.log")

    killing = threading.Event()
    killing.set()

    def write_the_rest() -> None:  # ~500 lines/s until the last kill, so that every kill lands while it grows
        while killing.is_set():
            log.append(log.lines, log.lines + 50)
            time.sleep(0.1)

    writer = threading.Thread(target=write_the_rest, daemon=True)
    writer.start()
    stored_at_kill: list[int] = []
    try:
        for _ in range(kills):
            before = stored_count(database, TENANT)
            sensor.start()
            # no crash loop: every run makes progress of its own before it is killed
            wait_for(
                partial(progress, sensor, database, log),
                f"the restarted sensor to store more than {before} rows (rows, read offset, CPU s)",
                until=partial(more_rows_than, before),
            )
            time.sleep(rng.uniform(0.0, 0.8))
            assert sensor.alive(), sensor.log_text()[-2000:]
            sensor.kill()
            stored_at_kill.append(stored_count(database, TENANT))
            assert_checkpoint_covered(config, log, database)
        killing.clear()
        writer.join(timeout=60)
        lines = log.lines
        sensor.start()
        wait_for(
            lambda: (sensor.is_following(log.path), cpu_seconds(sensor.pid)),
            "the last run to follow the file (following, CPU s)",
            until=lambda seen: seen[0],
        )
        wait_for(
            lambda: checkpoint_offset(config),
            f"the last run to checkpoint the whole file ({log.size} bytes)",
            until=lambda seen: seen == log.size,
        )
        sensor.signal(signal.SIGTERM)
        assert sensor.wait(timeout=60) == 0, sensor.log_text()[-2000:]
    finally:
        killing.clear()
        sensor.kill()
    seqs, ids = stored_lines(database)
    assert sorted(seqs) == list(range(lines)), (
        f"{len(seqs)} stored for {lines} lines: {missing_and_doubled(seqs, lines)}"
    )
    assert len(ids) == lines, f"{len(ids)} event ids for {lines} lines"
    counters = sensor.counters()
    assert counters["dead_lettered"] == 0, counters
    assert counters["spool_bytes"] == 0 or counters["records_corrupt"] == 0, counters
    assert stored_at_kill == sorted(stored_at_kill) and stored_at_kill[0] > 0, f"stored at each kill: {stored_at_kill}"
    print(f"stored at each kill: {stored_at_kill}; last run's counters: {counters}")


def test_d15_sigterm_flushes_and_saves_the_last_acknowledged_offset(tmp_path: Path) -> None:
    lines = 5_000
    database = tmp_path / "canhgac.db"
    log = LogFile(tmp_path / "app.log")
    log.append(0, lines)
    # Batches leave only by the flush: nothing would be delivered before 60 s otherwise.
    config = write_sensor_config(
        tmp_path / "sensor",
        tenant="d15",
        paths=[str(log.path)],
        input_id="app",
        batch_max_events=100_000,
        batch_max_bytes=64 * 1024 * 1024,
        batch_max_age=60.0,
        shutdown_timeout=10.0,
    )
    spool = tmp_path / "sensor" / "state" / "spool"
    sensor = SensorProcess(config, sqlite_env(database), tmp_path / "sensor.log")
    sensor.start()
    try:
        wait_for(
            lambda: spool.exists() and sum(p.stat().st_size for p in spool.glob("segment-*.log")) > 0,
            "the sensor to spool lines",
        )
        time.sleep(0.3)
        assert database.exists() and stored_lines(database)[0] == [], "delivered before the flush"
        assert checkpoint_offset(config) == 0
        asked = time.monotonic()
        sensor.signal(signal.SIGTERM)
        code = sensor.wait(timeout=60)
        took = time.monotonic() - asked
    finally:
        sensor.kill()
    assert code == 0, sensor.log_text()[-2000:]  # 0 = the forwarder drained within the timeout
    seqs, ids = stored_lines(database)
    delivered = len(seqs)
    assert delivered > 0
    assert seqs == list(range(delivered)), "the flush delivered something else than a prefix, in order"
    assert len(ids) == delivered
    assert checkpoint_offset(config) == log.ends[delivered - 1], "saved offset ≠ end of the last acknowledged line"
    print(f"SIGTERM → exit in {took:.2f}s (shutdown timeout 10 s); {delivered} lines flushed")

    # the next run starts exactly there
    sensor.start(follow=False)
    assert sensor.wait(timeout=120) == 0
    seqs, ids = stored_lines(database)
    assert sorted(seqs) == list(range(lines)) and len(ids) == lines
    assert sensor.counters()["duplicates"] == 0
