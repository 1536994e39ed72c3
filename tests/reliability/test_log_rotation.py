"""D9–D14 (RELIABILITY.md): a real ``soc sensor logs --follow`` process tails files that are
rotated, truncated, replaced and written with a huge line, into the SQLite store (D9 also into a
real Elasticsearch node).

Every line carries ``seq=N``; the tests compare what was stored with what was written, row by
row. Event ids are deterministic, so a line read twice at the same place is stored once: such a
re-delivery shows only in the ``duplicates`` counter, which the tests check too.

The tests wait until the checkpoint of every file identity (a fingerprint of its first line)
reaches the file's size: then the sensor has nothing left to read, and a late duplicate would
already be there.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from elasticsearch import Elasticsearch, helpers

from sensors.sources.logfile import fingerprint_of
from tests.reliability.sensor_process import (
    LogFile,
    SensorProcess,
    checkpoint_offsets,
    elasticsearch_env,
    seq_of,
    sqlite_env,
    write_sensor_config,
)
from tests.reliability.stored_events import repeated, stored_docs, stored_seqs
from tests.shared_data import unavailable
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


def fingerprint(path: Path) -> str:
    with open(path, "rb") as handle:
        found = fingerprint_of(handle, 1024)
    assert found is not None, f"{path} has no complete first line"
    return found


@dataclass
class Identity:
    """A file as the tailer knows it: its fingerprint, and how much of it was written."""

    fingerprint: str
    log: LogFile


def wait_delivered(config: Path, identities: list[Identity], what: str) -> None:
    """Wait until the saved checkpoint of every identity is at its end (all read and
    acknowledged), for as long as checkpoints or files keep moving; on failure the message shows
    each (checkpoint, size) pair."""

    def positions() -> list[tuple[int | None, int]]:
        saved = checkpoint_offsets(config)
        return [(saved.get(identity.fingerprint), identity.log.size) for identity in identities]

    wait_for(positions, what, until=lambda seen: all(offset == size for offset, size in seen))


def wait_found(config: Path, identity: Identity) -> None:
    """Wait until the saved checkpoints list ``identity``: a poll found it (and holds it open)."""
    listed = identity.fingerprint
    wait_for(lambda: checkpoint_offsets(config), "the sensor to find the file", until=lambda saved: listed in saved)


def sensor_for(
    tmp_path: Path, tenant: str, paths: list[str], store_env: dict[str, str], **input_options: Any
) -> tuple[Path, SensorProcess]:
    config = write_sensor_config(tmp_path / "sensor", tenant=tenant, paths=paths, input_id="app")
    if input_options:
        body = yaml.safe_load(config.read_text())
        body["inputs"][0].update(input_options)
        config.write_text(yaml.safe_dump(body))
    return config, SensorProcess(config, store_env, tmp_path / "sensor.log")


def stop(sensor: SensorProcess) -> dict[str, int]:
    """SIGTERM; the process must flush and exit 0. Its counters."""
    sensor.signal(signal.SIGTERM)
    assert sensor.wait(timeout=60) == 0, sensor.log_text()[-3000:]
    return sensor.counters()


def line_report(seqs: list[int], expected: set[int]) -> str:
    """Which lines are missing, doubled or unexpected in the store ("" if none)."""
    doubled, missing, extra = repeated(seqs), expected - set(seqs), set(seqs) - expected
    problems = [
        f"{len(missing)} missing (e.g. {sorted(missing)[:5]})" if missing else "",
        f"{len(doubled)} stored more than once (e.g. {sorted(doubled.items())[:5]})" if doubled else "",
        f"{len(extra)} unexpected (e.g. {sorted(extra)[:5]})" if extra else "",
    ]
    return ", ".join(problem for problem in problems if problem)


def assert_once(seqs: list[int], expected: set[int]) -> None:
    report = line_report(seqs, expected)
    assert not report, report


# ------------------------------------------------------------------------------- stores
@dataclass
class Stored:
    """Where the sensor writes, and how the test reads it back."""

    env: dict[str, str]
    seqs: Callable[[], list[int]]


def sqlite_stored(database: Path, tenant: str) -> Stored:
    return Stored(sqlite_env(database), lambda: stored_seqs(database, tenant))


@pytest.fixture
def es_client(request: pytest.FixtureRequest) -> Iterator[Elasticsearch]:
    url: str = request.getfixturevalue("elasticsearch_url")  # fails under CI=true if no node
    client = Elasticsearch(url, request_timeout=60)
    try:
        yield client
    finally:
        client.close()


def es_stored(client: Elasticsearch, url: str, tenant: str) -> Stored:
    index = f"canhgac-events-{tenant}-*"

    def seqs() -> list[int]:
        client.indices.refresh(index=index, allow_no_indices=True)
        hits = helpers.scan(client, index=index, query={"query": {"match_all": {}}}, size=5000)
        return [seq_of(hit["_source"]["message"]) for hit in hits]

    return Stored(elasticsearch_env(url, 10.0), seqs)


def drop_tenant_indices(client: Elasticsearch, tenant: str) -> None:
    # destructive actions need concrete index names (action.destructive_requires_name)
    for name in client.indices.get(index=f"canhgac-events-{tenant}-*", allow_no_indices=True):
        client.indices.delete(index=name)


# --------------------------------------------------------------------------------- D9
ROTATIONS = 10
BURST = 250  # lines every 50 ms: about 5,000 lines/s


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
def test_d9_rename_rotation_ten_times_at_5k_lines_per_second_loses_and_duplicates_nothing(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """``app.log`` → ``app.log.N`` (not matched) and a new ``app.log``, ten times, while lines
    keep coming. Rotation waits until the sensor has found the current file, as any tailer of
    rename-rotated files needs: a file renamed out of the glob before any poll saw it is out of
    reach. A file found is held open (even when the poll's budget went to another file's
    backlog, as under load), and the open handle reads the renamed file to its end.
    """
    tenant = f"d9_{uuid.uuid4().hex[:8]}"
    client = None
    if backend == "sqlite":
        stored = sqlite_stored(tmp_path / "canhgac.db", tenant)
    else:
        client = request.getfixturevalue("es_client")
        stored = es_stored(client, request.getfixturevalue("elasticsearch_url"), tenant)
    current = tmp_path / "app.log"
    config, sensor = sensor_for(tmp_path, tenant, [str(current)], stored.env)
    identities: list[Identity] = []
    seq = 0
    sensor.start()
    try:
        for rotation in range(ROTATIONS + 1):
            log = LogFile(current)
            until = time.monotonic() + 0.5
            while time.monotonic() < until:
                log.append(seq, seq + BURST)
                seq += BURST
                time.sleep(0.05)
            identities.append(Identity(fingerprint(current), log))
            if rotation < ROTATIONS:
                # listed in the saved checkpoints = found by a poll, and so held open (an open
                # descriptor alone may be the scan's short look at the first line)
                wait_found(config, identities[-1])
                current.rename(tmp_path / f"app.log.{rotation + 1}")
        try:
            wait_delivered(config, identities, "every file to be read and delivered")
        except AssertionError as stalled:  # slowness or loss? say what the store holds
            report = line_report(stored.seqs(), set(range(seq))) or f"all {seq} lines stored once"
            raise AssertionError(f"{stalled}\nstore: {report}\nsensor log: {sensor.log_text()[-4000:]}") from None
        # checkpoints at the ends: everything is stored already, before the stop flushes anything
        assert_once(stored.seqs(), set(range(seq)))
        counters = stop(sensor)
        seqs = stored.seqs()
    finally:
        sensor.kill()
        if client is not None:
            drop_tenant_indices(client, tenant)
    assert_once(seqs, set(range(seq)))
    assert counters["duplicates"] == 0, counters
    assert counters["identity_lost"] == 0 and counters["truncations"] == 0, counters
    assert counters["files_opened"] == ROTATIONS + 1, counters
    print(f"D9 ({backend}): {seq} lines over {ROTATIONS + 1} files; {counters}")


# -------------------------------------------------------------------------------- D10
@pytest.mark.parametrize("copy_matched", [True, False], ids=["copy_matched", "copy_not_matched"])
def test_d10_copytruncate_loses_only_the_lines_of_the_documented_window_and_reports_them(
    tmp_path: Path, copy_matched: bool
) -> None:
    """copytruncate: ``app.log`` copied to ``app.log.1``, then truncated; the writer goes on.

    The documented window (sensors/sources/logfile.py): lines written after the tailer's last
    read and before the truncation. The sensor is stopped (SIGSTOP) around the copytruncate to
    put exactly 100 lines in that window. If the glob matches the copy they are read from it;
    if not, exactly they are lost, counted in ``identity_lost`` and logged with the offset.
    """
    tenant = "d10"
    database = tmp_path / "canhgac.db"
    path, copy = tmp_path / "app.log", tmp_path / "app.log.1"
    log = LogFile(path)
    log.append(0, 1000)
    first = Identity(fingerprint(path), log)
    patterns = [str(tmp_path / "app.log*")] if copy_matched else [str(path)]
    config, sensor = sensor_for(tmp_path, tenant, patterns, sqlite_env(database))
    sensor.start()
    try:
        wait_delivered(config, [first], "the first lines to be delivered")
        last_read = log.size
        sensor.signal(signal.SIGSTOP)
        try:
            log.append(1000, 1100)  # the window: never read before the truncation
            shutil.copyfile(path, copy)
            os.truncate(path, 0)
            after = LogFile(path)
            after.append(1100, 1200)
        finally:
            sensor.signal(signal.SIGCONT)
        second = Identity(fingerprint(path), after)
        wait_delivered(
            config, [first, second] if copy_matched else [second], "the lines after the truncation to be delivered"
        )
        counters = stop(sensor)
    finally:
        sensor.kill()
    seqs = stored_seqs(database, tenant)
    window = set(range(1000, 1100))
    text = sensor.log_text()
    if copy_matched:
        assert_once(seqs, set(range(1200)))
        assert counters["identity_lost"] == 0, counters
        assert "truncated in place (copytruncate?)" not in text, text[-3000:]
    else:
        assert_once(seqs, set(range(1200)) - window)
        assert counters["identity_lost"] == 1, counters
        assert f"lines written after offset {last_read} and before the truncation are lost" in text, text[-3000:]
    assert counters["duplicates"] == 0, counters


# -------------------------------------------------------------------------------- D11
def test_d11_file_emptied_in_place_new_lines_delivered_once_and_reported(tmp_path: Path) -> None:
    """``: > app.log`` then new lines: the first line changed, so the new content is a new
    identity read from 0; the old identity's end is reported (``identity_lost``), though here
    every old line had been delivered."""
    tenant = "d11"
    database = tmp_path / "canhgac.db"
    path = tmp_path / "app.log"
    log = LogFile(path)
    log.append(0, 500)
    old = Identity(fingerprint(path), log)
    config, sensor = sensor_for(tmp_path, tenant, [str(path)], sqlite_env(database))
    sensor.start()
    try:
        wait_delivered(config, [old], "the first lines to be delivered")
        os.truncate(path, 0)
        new = LogFile(path)
        new.append(500, 600)
        wait_delivered(config, [Identity(fingerprint(path), new)], "the new lines to be delivered")
        counters = stop(sensor)
    finally:
        sensor.kill()
    assert_once(stored_seqs(database, tenant), set(range(600)))
    assert counters["identity_lost"] == 1 and counters["duplicates"] == 0, counters
    assert "was truncated in place" in sensor.log_text()


def test_d11_file_shortened_in_place_is_detected_and_new_lines_delivered_once(tmp_path: Path) -> None:
    """The file is cut back to its first 10 lines (same first line, shorter file): detected
    (``truncations``, a warning), read again from 0 under a new generation — so the 10 kept
    lines are stored a second time as new events, as documented — and the lines written
    afterwards arrive once."""
    tenant = "d11b"
    database = tmp_path / "canhgac.db"
    path = tmp_path / "app.log"
    log = LogFile(path)
    log.append(0, 500)
    identity = Identity(fingerprint(path), log)
    config, sensor = sensor_for(tmp_path, tenant, [str(path)], sqlite_env(database))
    sensor.start()
    try:
        wait_delivered(config, [identity], "the first lines to be delivered")
        os.truncate(path, log.ends[9])
        del log.ends[10:]
        wait_for(lambda: "was truncated in place; reading it again" in sensor.log_text(), "the truncation seen")
        log.append(500, 600)
        wait_delivered(config, [identity], "the new lines to be delivered")
        counters = stop(sensor)
    finally:
        sensor.kill()
    docs = stored_docs(database, tenant)
    seqs = [seq_of(str(doc["message"])) for doc in docs]
    assert repeated(seqs) == dict.fromkeys(range(10), 2), "only the 10 kept lines come twice"
    assert set(seqs) == set(range(600))
    assert len({doc["event.id"] for doc in docs}) == len(docs)
    assert counters["truncations"] == 1 and counters["identity_lost"] == 0, counters
    assert checkpoint_offsets(config) == {identity.fingerprint: log.size}


# -------------------------------------------------------------------------------- D12
@pytest.fixture
def private_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB ext4 filesystem of the test's own (a loop-mounted image), unmounted afterwards.

    ext4 hands a freed inode number to the next file created, but on a shared disk another
    process (Elasticsearch, a parallel test) may create that file first; on a filesystem
    nothing else writes to, the reuse is certain.
    """
    if os.geteuid() != 0:
        unavailable("D12 mounts a loop filesystem and needs root")
    image, mountpoint = tmp_path / "disk.img", tmp_path / "disk"
    with image.open("wb") as handle:
        handle.truncate(16 * 1024 * 1024)
    mountpoint.mkdir()
    for command in (["mkfs.ext4", "-q", "-F", str(image)], ["mount", "-o", "loop", str(image), str(mountpoint)]):
        done = subprocess.run(command, check=False, capture_output=True, text=True)
        if done.returncode != 0:
            unavailable(f"D12 needs a loop-mounted ext4 ({' '.join(command[:2])}): {done.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=False, capture_output=True)


def same_inode_file(directory: Path, inode: int, content: bytes) -> Path:
    """A file in ``directory`` holding ``content`` whose inode number is ``inode`` (freed)."""
    misses: list[Path] = []
    for attempt in range(200):
        candidate = directory / f"new-{attempt}.tmp"
        candidate.write_bytes(content)
        if candidate.stat().st_ino == inode:
            for miss in misses:
                miss.unlink()
            return candidate
        misses.append(candidate)
    for miss in misses:
        miss.unlink()
    unavailable(f"the filesystem of {directory} did not reuse inode {inode} in 200 new files")


def test_d12_inode_reuse_new_file_is_read_from_zero(tmp_path: Path, private_disk: Path) -> None:
    """``app.log`` deleted while the sensor is stopped, then a new, longer ``app.log`` with other
    content and the very same inode number: the restarted sensor reads it from 0, not from the
    old file's saved offset. (Stopped, because while it runs the sensor's own checkpoint and
    store files take the freed inode number first.)"""
    tenant = "d12"
    database = tmp_path / "canhgac.db"
    path = private_disk / "app.log"  # the sensor's state and store stay on the shared disk
    log = LogFile(path)
    log.append(0, 300)
    old = Identity(fingerprint(path), log)
    config, sensor = sensor_for(tmp_path, tenant, [str(path)], sqlite_env(database))
    sensor.start()
    try:
        wait_delivered(config, [old], "the first file to be delivered")
        first_counters = stop(sensor)
        staging = LogFile(private_disk / "staging")
        staging.append(1000, 1600)  # longer than the old offset: resuming there would skip lines
        content = staging.path.read_bytes()
        staging.path.unlink()
        inode = path.stat().st_ino
        path.unlink()
        same_inode_file(private_disk, inode, content).rename(path)
        assert path.stat().st_ino == inode
        assert checkpoint_offsets(config) == {old.fingerprint: log.size}
        new = Identity(fingerprint(path), LogFile(path, list(staging.ends)))
        sensor.start()
        wait_delivered(config, [new], "the new file to be delivered")
        counters = stop(sensor)
    finally:
        sensor.kill()
    assert first_counters["duplicates"] == 0
    assert_once(stored_seqs(database, tenant), set(range(300)) | set(range(1000, 1600)))
    assert counters["duplicates"] == 0 and counters["identity_lost"] == 0 and counters["truncations"] == 0, counters
    docs = stored_docs(database, tenant)
    assert min(doc["log.offset"] for doc in docs if seq_of(str(doc["message"])) >= 1000) == 0


# -------------------------------------------------------------------------------- D13
def test_d13_glob_matching_rotated_files_reads_each_line_once_across_rotations_and_restarts(
    tmp_path: Path,
) -> None:
    """``access.log*``: logrotate-style shifts (``.2`` → ``.3``, ``.1`` → ``.2``, ``access.log``
    → ``.1``, oldest deleted once delivered), the writer still appending to the renamed file
    for a moment, rotations both while the sensor runs and while it is stopped."""
    tenant = "d13"
    database = tmp_path / "canhgac.db"
    current = tmp_path / "access.log"
    config, sensor = sensor_for(tmp_path, tenant, [str(tmp_path / "access.log*")], sqlite_env(database))
    identities: list[Identity] = []
    seq = 0
    duplicates = 0
    sensor.start()
    try:
        for rotation in range(6):
            log = LogFile(current)
            log.append(seq, seq + 300)
            seq += 300
            identities.append(Identity(fingerprint(current), log))
            stopped = rotation % 2 == 1
            if stopped:
                wait_delivered(config, identities, "the lines so far to be delivered")
                duplicates += stop(sensor)["duplicates"]
            oldest = tmp_path / "access.log.3"
            if oldest.exists():
                wait_delivered(config, identities[:-3], "the oldest file to be delivered")
                oldest.unlink()
            for number in (2, 1):
                older = tmp_path / f"access.log.{number}"
                if older.exists():
                    older.rename(tmp_path / f"access.log.{number + 1}")
            current.rename(tmp_path / "access.log.1")
            log.path = tmp_path / "access.log.1"
            log.append(seq, seq + 20)  # the application still writes to its open file
            seq += 20
            if stopped:
                sensor.start()
        last = LogFile(current)
        last.append(seq, seq + 300)
        seq += 300
        identities.append(Identity(fingerprint(current), last))
        wait_delivered(config, identities, "every file to be delivered")
        counters = stop(sensor)
    finally:
        sensor.kill()
    assert_once(stored_seqs(database, tenant), set(range(seq)))
    assert duplicates + counters["duplicates"] == 0, "a line was sent again (same id, stored once)"
    assert counters["identity_lost"] == 0 and counters["truncations"] == 0, counters


# -------------------------------------------------------------------------------- D14
def test_d14_a_2_mib_line_is_stored_truncated_and_flagged_and_the_file_stays_tailed(tmp_path: Path) -> None:
    tenant = "d14"
    database = tmp_path / "canhgac.db"
    path = tmp_path / "app.log"
    log = LogFile(path)
    log.append(0, 10)
    identity = Identity(fingerprint(path), log)
    config, sensor = sensor_for(tmp_path, tenant, [str(path)], sqlite_env(database))
    long_line = b"Feb  5 08:00:10 web01 app[1010]: job done seq=10 " + b"x" * (2 * 1024 * 1024) + b"\n"
    sensor.start()
    try:
        wait_delivered(config, [identity], "the first lines to be delivered")
        with open(path, "ab") as handle:  # written in pieces, as a slow writer would
            for start in range(0, len(long_line), 64 * 1024):
                handle.write(long_line[start : start + 64 * 1024])
                handle.flush()
                time.sleep(0.005)
        log.ends.append(log.size + len(long_line))
        log.append(11, 21)
        wait_delivered(config, [identity], "the long line and the next ones to be delivered")
        log.append(21, 31)
        wait_delivered(config, [identity], "later lines to be delivered")
        counters = stop(sensor)
    finally:
        sensor.kill()
    docs = {seq_of(str(doc["message"])): doc for doc in stored_docs(database, tenant)}
    assert_once(stored_seqs(database, tenant), set(range(31)))
    long = docs[10]
    assert long["tags"] == ["truncated"] and long["log.flags"] == ["truncated"], {
        k: long[k] for k in long if k != "message"
    }
    assert str(long["message"]).startswith("job done seq=10 xxx")
    assert len(str(long["message"]).encode()) < 1024 * 1024  # cut at max_line_bytes (1 MiB)
    assert docs[11]["log.offset"] == log.ends[10], "the line after the long one starts where it ends"
    assert all("tags" not in doc for seq, doc in docs.items() if seq != 10)
    assert counters["lines_truncated"] == 1, counters
