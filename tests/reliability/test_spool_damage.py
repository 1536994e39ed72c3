"""D7 and D8 (RELIABILITY.md): a real ``soc sensor logs --follow`` process restarted on a spool
that a crash or a bad disk left damaged, with the SQLite store.

Each test first runs the sensor with the store unreachable (its directory is blocked by a plain
file, as in D6), so that what it reads stays in the spool; kills it (SIGKILL); damages the spool
on disk; then restarts it with the store reachable.

What the product guarantees for the lines whose spool records are lost: the file checkpoint
moves only over delivered lines, so a line whose file still exists is read again from the file
(same event id) and arrives; a line whose file is gone existed only in the spool and is lost,
and counted (``records_corrupt``, ``segments_missing``).
"""

from __future__ import annotations

import json
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from sensors.sources.logfile import fingerprint_of
from soc_core.store import SqliteStore
from tests.reliability.sensor_process import (
    LogFile,
    SensorProcess,
    checkpoint_offsets,
    cpu_seconds,
    read_position,
    seq_of,
    sqlite_env,
    write_sensor_config,
)
from tests.reliability.stored_events import repeated, stored_count, stored_seqs
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

MAGIC = b"CGs1"  # the spool's frame: MAGIC | length (4, big-endian) | crc32(length + payload) | payload
HEADER = struct.Struct(">4sII")
SEGMENT_BYTES = 8 * 1024  # about 16 records a segment
# D7's "restart < 10 s" is about the sensor's own work on recovery (no spinning, rescanning or
# crash loop), so it is bounded in the CPU time the restarted process used until its first row
# is stored: a fresh process's imports take ~2 s on a quiet machine, and at load 12 its wall
# time is several times that without the sensor doing anything wrong.
RESTART_CPU_LIMIT = 10.0


@dataclass(frozen=True)
class Record:
    segment: Path
    start: int
    end: int
    event: dict[str, Any]

    @property
    def seq(self) -> int:
        return seq_of(str(self.event["message"]))

    @property
    def file(self) -> str:
        return str(self.event["log.file.path"])


def spooled(spool: Path, *, whole: bool = True) -> list[Record]:
    """Every record in the spool's segments, in spool order, checked like the spool does.

    ``whole=False`` (while the sensor is writing) stops a segment at a record still being written.
    """
    records = []
    for segment in sorted(spool.glob("segment-*.log")):
        data = segment.read_bytes()
        offset = 0
        while offset + HEADER.size <= len(data):
            magic, length, checksum = HEADER.unpack_from(data, offset)
            end = offset + HEADER.size + length
            if end > len(data) and not whole:
                break
            assert magic == MAGIC and end <= len(data), f"{segment} damaged at {offset}"
            payload = data[offset + HEADER.size : end]
            assert zlib.crc32(data[offset + 4 : offset + 8] + payload) == checksum
            records.append(Record(segment, offset, end, json.loads(payload)))
            offset = end
        assert offset == len(data) or not whole, f"{segment} has a torn tail"
    return records


def fingerprint(log: LogFile) -> str:
    with open(log.path, "rb") as handle:
        found = fingerprint_of(handle, 1024)
    assert found is not None
    return found


def read_to_end(sensor: SensorProcess, log: LogFile) -> bool:
    return read_position(sensor.pid, log.path) == log.size


def spooled_records(spool: Path, count: int) -> bool:
    return len(spooled(spool, whole=False)) == count


def spool_first_run(
    tmp_path: Path, tenant: str, staged: list[tuple[LogFile, int, int]]
) -> tuple[Path, Path, SensorProcess]:
    """Config, spool and a killed sensor that spooled every staged line with the store down.

    ``staged`` holds (file, first seq, lines); each file is written once the previous one is
    wholly spooled, so each file's records fill segments of their own.
    """
    config = write_sensor_config(
        tmp_path / "sensor",
        tenant=tenant,
        paths=[str(log.path) for log, _, _ in staged],
        input_id="app",
        batch_max_events=50,
        spool_segment_bytes=SEGMENT_BYTES,
    )
    spool = tmp_path / "sensor" / "state" / "spool"
    blocker = tmp_path / "store"  # a file where the store's directory should be: store unreachable
    blocker.write_text("not a directory\n")
    sensor = SensorProcess(config, sqlite_env(blocker / "events.db"), tmp_path / "sensor.log")
    written = 0
    for log, first, lines in staged:
        log.append(first, first + lines)
        written += lines
        if not sensor.alive():
            sensor.start()
        wait_for(partial(read_to_end, sensor, log), f"{log.path.name} to be read")
        wait_for(partial(spooled_records, spool, written), "every line read to be spooled")
    assert "store unreachable at" in sensor.log_text()
    sensor.kill()
    assert all(offset == 0 for offset in checkpoint_offsets(config).values()), "acknowledged with the store down"
    blocker.unlink()  # the store is reachable from now on
    return config, spool, sensor


def work_until_first_row(pid: int, stored: Callable[[], int]) -> tuple[float, float]:
    """Wait until ``stored()`` > 0; return process ``pid``'s CPU seconds and the wall seconds by then."""
    started = time.monotonic()
    wait_for(stored, "the restarted sensor to deliver", until=lambda seen: seen > 0)
    return cpu_seconds(pid), time.monotonic() - started


def assert_restarted_fast(cpu: float, wall: float, limit: float = RESTART_CPU_LIMIT) -> None:
    assert cpu < limit, (
        f"the restarted sensor used {cpu:.1f} s of CPU before its first row was stored ({wall:.1f} s wall"
        f" since the restart); criterion: < {limit:g} s of CPU. Does the recovery spin or rescan?"
    )


def segments_of(records: list[Record]) -> dict[Path, list[Record]]:
    out: dict[Path, list[Record]] = {}
    for record in records:
        out.setdefault(record.segment, []).append(record)
    return out


def flip_middle(record: Record) -> None:
    """Flip four bytes in the middle of the record's payload (its frame header stays valid)."""
    middle = (record.start + HEADER.size + record.end) // 2
    with open(record.segment, "r+b") as handle:
        handle.seek(middle)
        data = handle.read(4)
        handle.seek(middle)
        handle.write(bytes(byte ^ 0xFF for byte in data))


@pytest.mark.parametrize("missing", ["middle", "first"])
def test_d7_damaged_spool_restarts_fast_delivers_intact_records_once_and_counts_the_rest(
    tmp_path: Path, missing: str
) -> None:
    tenant = "d7"
    gone, kept = LogFile(tmp_path / "gone.log"), LogFile(tmp_path / "kept.log")
    config, spool, sensor = spool_first_run(tmp_path, tenant, [(gone, 0, 200), (kept, 10_000, 150)])
    database = tmp_path / "store" / "events.db"

    records = spooled(spool)
    assert len(records) == 350
    by_segment = segments_of(records)
    gone_segments = [s for s, rs in by_segment.items() if all(r.file == str(gone.path) for r in rs)]
    kept_segments = [s for s, rs in by_segment.items() if all(r.file == str(kept.path) for r in rs)]
    assert len(gone_segments) >= 6 and len(kept_segments) >= 3, [len(rs) for rs in by_segment.values()]
    # the damage, done while the sensor is stopped
    lost_segment = gone_segments[0 if missing == "first" else 2]
    flipped = [by_segment[gone_segments[4]][2], by_segment[kept_segments[1]][3]]
    torn = records[-1]  # the last record of the last segment, cut short
    lost_segment.unlink()
    for record in flipped:
        flip_middle(record)
    with open(torn.segment, "r+b") as handle:
        handle.truncate(torn.end - 10)
    damaged = {r.seq for r in by_segment[lost_segment]} | {r.seq for r in [*flipped, torn]}
    gone.path.unlink()  # its lines now exist only in the spool

    pid = sensor.start()
    try:
        cpu, wall = work_until_first_row(pid, partial(stored_count, database, tenant))
        intact_gone = {r.seq for r in records if r.file == str(gone.path)} - damaged
        expected = len(intact_gone) + kept.lines
        wait_for(
            lambda: (stored_count(database, tenant), checkpoint_offsets(config).get(fingerprint(kept))),
            f"{expected} rows stored and kept.log checkpointed at {kept.size}",
            until=lambda seen: seen[0] >= expected and seen[1] == kept.size,
        )
        sensor.signal(signal.SIGTERM)
        assert sensor.wait(timeout=60) == 0, sensor.log_text()[-3000:]
    finally:
        sensor.kill()
    assert_restarted_fast(cpu, wall)
    seqs = stored_seqs(database, tenant)
    assert not repeated(seqs), f"stored more than once: {repeated(seqs)}"
    assert {s for s in seqs if s < 10_000} == intact_gone, "an intact record of gone.log is lost, or a lost one came"
    assert {s for s in seqs if s >= 10_000} == set(range(10_000, 10_000 + kept.lines)), "a line of kept.log is lost"
    counters = sensor.counters()
    assert counters["records_corrupt"] == 3, counters  # two flipped, one torn
    assert counters["segments_missing"] == 1, counters
    intact_kept = sum(1 for r in records if r.file == str(kept.path) and r.seq not in damaged)
    # kept.log's intact records came from the spool first; its re-read copies were duplicates
    assert counters["duplicates"] == intact_kept, counters
    text = sensor.log_text()
    assert text.count("damaged record at offset") == 3, text[-3000:]
    assert "are missing; their records are lost" in text
    assert "Traceback" not in text, text[-3000:]
    print(f"D7 ({missing} segment missing): first row after {cpu:.2f}s CPU, {wall:.2f}s wall; {counters}")


def test_d7_restart_measure_fails_on_a_recovery_that_spins(tmp_path: Path) -> None:
    """D7's bound is not vacuous at any load: a stand-in for the sensor that spins 1.5 s of CPU
    before its first "row" (a flag file) fails a 1 s bound, however long that took in wall time.
    """
    flag = tmp_path / "first-row"
    spin = (
        "import sys, time\n"
        "while time.process_time() < 1.5:\n    pass\n"
        "open(sys.argv[1], 'w').close()\n"
        "time.sleep(120)\n"  # stays alive so that its CPU time can be read
    )
    child = subprocess.Popen([sys.executable, "-c", spin, str(flag)], stdin=subprocess.DEVNULL)
    try:
        cpu, wall = work_until_first_row(child.pid, lambda: int(flag.exists()))
    finally:
        child.kill()
        child.wait(timeout=30)
    assert cpu > 1.2, cpu  # the kernel counts CPU time in clock ticks, by sampling
    with pytest.raises(AssertionError, match=r"used 1\.\d s of CPU before its first row"):
        assert_restarted_fast(cpu, wall, limit=1.0)


@pytest.mark.parametrize("crash", ["segment_deleted_cursor_not_saved", "cursor_saved_segment_not_deleted"])
def test_d8_crash_around_deleting_a_delivered_segment_neither_loops_nor_loses(tmp_path: Path, crash: str) -> None:
    """The spool saves the cursor, then deletes the segments before it. A crash between the two
    leaves a delivered segment behind (``cursor_saved_segment_not_deleted``); RELIABILITY.md's
    order, delete then save, leaves the cursor inside a segment that no longer exists
    (``segment_deleted_cursor_not_saved``). Both are made here on the disk a killed sensor left,
    with the first segment's records delivered (added to the store as the sink would have).
    """
    tenant = "d8"
    lines = 300
    log = LogFile(tmp_path / "app.log")
    _, spool, sensor = spool_first_run(tmp_path, tenant, [(log, 0, lines)])
    log.path.rename(tmp_path / "app.log.1")  # out of the input's paths: the spool is the only copy
    database = tmp_path / "store" / "events.db"

    records = spooled(spool)
    by_segment = segments_of(records)
    assert len(by_segment) >= 3
    finished, *rest = by_segment
    store = SqliteStore(database)
    try:
        store.setup()
        assert store.add_events([r.event for r in by_segment[finished]]).created == len(by_segment[finished])
    finally:
        store.close()
    cursor = spool / "cursor.json"
    if crash == "segment_deleted_cursor_not_saved":
        # the cursor saved by the batch before: inside the segment, after its first record
        segment = int(finished.stem.split("-")[1])
        cursor.write_text(json.dumps({"segment": segment, "offset": by_segment[finished][0].end}))
        finished.unlink()
    else:
        cursor.write_text(json.dumps({"segment": int(rest[0].stem.split("-")[1]), "offset": 0}))

    sensor.start()
    try:
        wait_for(
            lambda: stored_count(database, tenant),
            "every spooled line to be delivered",
            until=lambda seen: seen >= lines,
        )
        wait_for(lambda: not spooled(spool, whole=False), "the spool to be drained")
        assert sensor.alive(), sensor.log_text()[-3000:]  # no crash loop
        sensor.signal(signal.SIGTERM)
        assert sensor.wait(timeout=60) == 0, sensor.log_text()[-3000:]
    finally:
        sensor.kill()
    seqs = stored_seqs(database, tenant)
    assert not repeated(seqs), f"stored more than once: {repeated(seqs)}"
    assert sorted(seqs) == list(range(lines)), "a line is lost"
    counters = sensor.counters()
    assert counters["duplicates"] == 0, f"the delivered segment was sent again: {counters}"
    assert counters["events_out"] == lines - len(by_segment[finished])
    assert counters["records_corrupt"] == 0
    # The spool cannot tell a segment deleted after delivery from one lost: it warns (one
    # missing) when its cursor points into a segment that is not there.
    assert counters["segments_missing"] == (1 if crash == "segment_deleted_cursor_not_saved" else 0), counters
    assert "Traceback" not in sensor.log_text()
