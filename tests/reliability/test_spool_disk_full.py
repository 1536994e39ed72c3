"""D6 (RELIABILITY.md): the disk under the sensor's state directory (spool, cursor,
checkpoints) fills up.

A real ``soc sensor logs --follow`` process whose state directory is on a small tmpfs the test
mounts, writing to a SQLite store that is unreachable at first (its directory is blocked by a
plain file), so what the sensor spools stays there. Then:

1. 300 lines are spooled while the store is down (persisted before the fault);
2. the test fills the tmpfs and writes 300 more lines: appends fail with ENOSPC, the log says
   so naming the segment, the sensor keeps running and nothing is acknowledged;
3. the store comes back with the disk still full: the 300 spooled lines (and the few that
   still fitted) are delivered, and the checkpoint never covers a line that is not stored;
4. space returns: every line arrives exactly once.
"""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.reliability.sensor_process import (
    LogFile,
    SensorProcess,
    checkpoint_offset,
    read_position,
    seq_of,
    sqlite_env,
    write_sensor_config,
)
from tests.shared_data import unavailable
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

TENANT = "d6"
BEFORE, DURING = 300, 300  # lines spooled before the disk fills, lines written while it is full


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, unmounted afterwards."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    if os.geteuid() != 0:
        unavailable("D6 mounts a tmpfs and needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(mountpoint)],
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        unavailable(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def fill(disk: Path) -> Path:
    """Write a file until the disk refuses even one more byte; returns it."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for chunk in (65536, 4096, 512, 64, 1):
            while True:
                try:
                    handle.write(b"\0" * chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    return filler


def stored_seqs(database: Path) -> list[int]:
    """The seq of every stored line (duplicates kept); none while the store does not exist."""
    if not database.exists():
        return []
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        rows = connection.execute("SELECT message FROM events WHERE tenant = ?", (TENANT,)).fetchall()
    except sqlite3.OperationalError:  # the sensor has not created the table yet
        return []
    finally:
        connection.close()
    return [seq_of(message) for (message,) in rows]


def spool_bytes(spool: Path) -> int:
    return sum(path.stat().st_size for path in spool.glob("segment-*.log"))


def settled(read: Callable[[], object], seconds: float = 1.0) -> None:
    """Wait until ``read()`` gives the same value ``seconds`` apart (a value that keeps changing
    is progress: waited on)."""
    previous: list[object] = [read()]

    def step() -> tuple[bool, object]:
        time.sleep(seconds)
        again = read()
        same = again == previous[0]
        previous[0] = again
        return same, again

    wait_for(step, "the value to settle", until=lambda seen: seen[0], poll=0)


def test_d6_spool_disk_full_acknowledges_nothing_unpersisted_and_delivers_all_once(
    small_disk: Path, tmp_path: Path
) -> None:
    log = LogFile(tmp_path / "app.log")
    log.append(0, BEFORE)
    config = write_sensor_config(
        small_disk / "sensor",
        tenant=TENANT,
        paths=[str(log.path)],
        input_id="app",
        batch_max_events=50,
        spool_segment_bytes=32 * 1024,
        shutdown_timeout=20.0,
    )
    spool = small_disk / "sensor" / "state" / "spool"
    blocker = tmp_path / "store"  # a file where the store's directory should be: store unreachable
    blocker.write_text("not a directory\n")
    database = blocker / "events.db"
    sensor = SensorProcess(config, sqlite_env(database), tmp_path / "sensor.log")
    sensor.start()
    try:
        # 1. the store is down: everything read is spooled, nothing acknowledged
        wait_for(
            lambda: read_position(sensor.pid, log.path),
            "the first lines to be read",
            until=lambda seen: seen == log.size,
        )
        settled(lambda: spool_bytes(spool))
        assert spool_bytes(spool) > 0 and checkpoint_offset(config) == 0
        assert "store unreachable at" in sensor.log_text()

        # 2. the disk fills up; new lines cannot be spooled
        filler = fill(small_disk)
        log.append(BEFORE, BEFORE + DURING)
        wait_for(lambda: "(ENOSPC)" in sensor.log_text(), "the sensor to report ENOSPC")
        time.sleep(1.0)  # a few more rounds of offering the same events again
        assert sensor.alive(), sensor.log_text()[-3000:]
        assert checkpoint_offset(config) == 0
        text = sensor.log_text()
        refusal = next(line for line in text.splitlines() if "(ENOSPC)" in line)
        assert f"cannot append to spool segment {spool}/segment-" in refusal, refusal
        assert "No space left on device" in refusal, refusal
        assert "Traceback" not in text, text[-3000:]

        # 3. the store is back, the disk still full: what was spooled is delivered, and the
        #    checkpoint never covers a line that is not stored
        blocker.unlink()
        wait_for(
            lambda: len(stored_seqs(database)), "the spooled lines to be delivered", until=lambda seen: seen >= BEFORE
        )
        settled(lambda: (len(stored_seqs(database)), checkpoint_offset(config)))
        seqs = stored_seqs(database)
        assert sorted(seqs) == list(range(len(seqs))), "the stored lines are not a prefix, or duplicated"
        assert BEFORE <= len(seqs) < BEFORE + DURING, "every line fitted: the disk was never full"
        assert log.lines_before(checkpoint_offset(config)) <= len(seqs)
        assert sensor.alive(), sensor.log_text()[-3000:]

        # 4. space returns: the rest is spooled and delivered, each line once
        filler.unlink()
        wait_for(
            lambda: checkpoint_offset(config), "the checkpoint to reach the end", until=lambda seen: seen == log.size
        )
        sensor.signal(signal.SIGTERM)
        assert sensor.wait(timeout=60) == 0, sensor.log_text()[-3000:]
    finally:
        sensor.kill()
    seqs = stored_seqs(database)
    assert len(seqs) == BEFORE + DURING, f"{len(seqs)} stored for {BEFORE + DURING} lines"
    assert sorted(seqs) == list(range(BEFORE + DURING)), "a line is missing or duplicated"
    counters = sensor.counters()
    assert counters["spool_errors"] >= 1
    assert counters["dead_lettered"] == 0 and counters["dropped"] == 0
    print(f"D6: {BEFORE}+{DURING} lines, counters {counters}")
