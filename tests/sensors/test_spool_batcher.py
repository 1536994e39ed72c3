"""The on-disk spool (framing, limits, damage on restart) and the pure batcher."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from sensors.errors import SpoolError, SpoolFull
from sensors.forwarder import Batcher, Spool
from sensors.forwarder.spool import MAGIC


def payloads(n: int, start: int = 0) -> list[bytes]:
    return [f'{{"n": {i}}}'.encode() for i in range(start, start + n)]


def fill(spool: Spool, items: list[bytes]) -> None:
    for item in items:
        spool.append(item)


def read_all(spool: Spool, *, commit: bool = True) -> list[bytes]:
    out = []
    while records := spool.read(7):
        out += [payload for _, payload in records]
        if commit:
            spool.commit(records[-1][0])
    return out


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


def test_roundtrip_across_segments_and_restart(spool_dir: Path) -> None:
    spool = Spool(spool_dir, max_bytes=100_000, segment_bytes=200)
    fill(spool, payloads(50))
    assert len(list(spool_dir.glob("segment-*.log"))) > 5
    first = spool.read(20)
    spool.commit(first[-1][0])
    spool.close()
    restarted = Spool(spool_dir, max_bytes=100_000, segment_bytes=200)
    assert read_all(restarted) == payloads(30, 20)
    assert not restarted.uncommitted
    assert restarted.size == 0  # drained: used segments deleted
    restarted.close()


def test_uncommitted_records_are_read_again_after_restart(spool_dir: Path) -> None:
    spool = Spool(spool_dir)
    fill(spool, payloads(10))
    assert len(read_all(spool, commit=False)) == 10
    spool.close()
    again = Spool(spool_dir)
    assert read_all(again) == payloads(10)
    again.close()


def test_full_spool_refuses_and_frees_space_after_commit(spool_dir: Path) -> None:
    spool = Spool(spool_dir, max_bytes=1024, segment_bytes=1024)
    accepted = 0
    with pytest.raises(SpoolFull):
        for item in payloads(1000):
            spool.append(item)
            accepted += 1
    assert spool.size <= 1024
    read_all(spool)
    spool.append(b"fits again")
    assert read_all(spool) == [b"fits again"]
    spool.close()


def test_record_larger_than_the_spool_is_an_error(spool_dir: Path) -> None:
    spool = Spool(spool_dir, max_bytes=1024, segment_bytes=1024)
    with pytest.raises(SpoolError, match="never fit"):
        spool.append(b"x" * 2000)
    spool.close()


def test_append_many_writes_runs_across_segments_and_stops_at_the_limit(spool_dir: Path) -> None:
    spool = Spool(spool_dir, max_bytes=2_000, segment_bytes=200)
    items = payloads(300)
    taken = spool.append_many(items)
    assert 0 < len(taken) < len(items)  # a prefix: the limit fell inside the run
    assert taken == sorted(taken) and len({position.segment for position in taken}) > 5
    assert spool.size <= 2_000 and spool.stats["appended"] == len(taken)
    with pytest.raises(SpoolFull):  # not even the first of the rest fits now
        spool.append_many(items[len(taken) :])
    assert read_all(spool) == items[: len(taken)]
    assert (
        spool.append_many(items[len(taken) : len(taken) + 3]) and read_all(spool) == items[len(taken) : len(taken) + 3]
    )
    spool.close()
    restarted = Spool(spool_dir, max_bytes=2_000, segment_bytes=200)
    assert read_all(restarted) == [] and restarted.stats["records_corrupt"] == 0
    restarted.close()


def test_append_many_failing_write_leaves_no_record_of_it(spool_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(spool_dir, max_bytes=100_000, segment_bytes=100_000)
    spool.append_many(payloads(3))
    real_write = os.write

    def half_then_enospc(fd: int, data: bytes | memoryview) -> int:
        if len(data) > 20:
            return real_write(fd, bytes(data[:20]))  # a short write; the next one fails
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_enospc)
    with pytest.raises(SpoolError, match="No space left"):
        spool.append_many(payloads(5, start=3))
    monkeypatch.setattr(os, "write", real_write)
    assert spool.stats["appended"] == 3
    spool.append_many(payloads(2, start=8))
    assert read_all(spool) == payloads(3) + payloads(2, start=8)
    assert spool.stats["records_corrupt"] == 0
    spool.close()


def _segments(spool_dir: Path) -> list[Path]:
    return sorted(spool_dir.glob("segment-*.log"))


def test_truncated_last_record_is_counted_and_skipped(spool_dir: Path) -> None:
    spool = Spool(spool_dir)
    fill(spool, payloads(5))
    spool.close()
    segment = _segments(spool_dir)[0]
    segment.write_bytes(segment.read_bytes()[:-3])
    again = Spool(spool_dir)
    assert read_all(again) == payloads(4)
    assert again.stats["records_corrupt"] == 1
    again.close()


def test_flipped_bytes_skip_only_the_damaged_record(spool_dir: Path) -> None:
    spool = Spool(spool_dir)
    fill(spool, payloads(5))
    spool.close()
    segment = _segments(spool_dir)[0]
    data = bytearray(segment.read_bytes())
    second = data.find(MAGIC, 1)
    data[second + 14] ^= 0xFF  # inside the second record's payload
    segment.write_bytes(bytes(data))
    again = Spool(spool_dir)
    assert read_all(again) == [payloads(5)[i] for i in (0, 2, 3, 4)]
    assert again.stats["records_corrupt"] == 1
    again.close()


def test_garbage_length_resyncs_on_the_next_record(spool_dir: Path) -> None:
    spool = Spool(spool_dir)
    fill(spool, payloads(3))
    spool.close()
    segment = _segments(spool_dir)[0]
    data = bytearray(segment.read_bytes())
    data[4:8] = b"\xff\xff\xff\x00"  # first record's length
    segment.write_bytes(bytes(data))
    again = Spool(spool_dir)
    assert read_all(again) == payloads(3)[1:]
    again.close()


def test_missing_segment_is_counted_and_the_rest_delivered(spool_dir: Path) -> None:
    spool = Spool(spool_dir, segment_bytes=100)
    fill(spool, payloads(20))
    spool.close()
    segments = _segments(spool_dir)
    segments[1].unlink()
    again = Spool(spool_dir, segment_bytes=100)
    got = read_all(again)
    assert again.stats["segments_missing"] == 1
    assert got[:3] == payloads(3) and got[-1] == payloads(20)[-1]
    again.close()


def test_crash_between_cursor_save_and_segment_delete(spool_dir: Path) -> None:
    spool = Spool(spool_dir, segment_bytes=100)
    fill(spool, payloads(20))
    records = spool.read(8)
    consumed = {p.segment for p, _ in records}
    stale = spool_dir / "stale-copy"
    stale.mkdir()
    for segment in _segments(spool_dir):  # keep copies of the segments commit deletes
        (stale / segment.name).write_bytes(segment.read_bytes())
    spool.commit(records[-1][0])
    spool.close()
    for copy in stale.iterdir():
        if not (spool_dir / copy.name).exists() and int(copy.name[8:20]) in consumed:
            copy.rename(spool_dir / copy.name)  # as if the delete never happened
    again = Spool(spool_dir, segment_bytes=100)
    assert read_all(again) == payloads(12, 8)
    again.close()


def test_unreadable_cursor_rereads_from_the_start(spool_dir: Path) -> None:
    spool = Spool(spool_dir)
    fill(spool, payloads(3))
    spool.close()
    (spool_dir / "cursor.json").write_text("garbage")
    again = Spool(spool_dir)
    assert read_all(again) == payloads(3)
    again.close()


# ------------------------------------------------------------------------------- batcher
def test_batcher_by_count() -> None:
    batcher: Batcher[int] = Batcher(max_items=3, max_bytes=1000, max_age=10)
    assert batcher.add(1, 1, now=0) == []
    assert batcher.add(2, 1, now=0) == []
    (batch,) = batcher.add(3, 1, now=0)
    assert batch.items == [1, 2, 3]
    assert len(batcher) == 0


def test_batcher_by_bytes_starts_a_new_batch() -> None:
    batcher: Batcher[str] = Batcher(max_items=100, max_bytes=10, max_age=10)
    assert batcher.add("a", 6, now=0) == []
    (batch,) = batcher.add("b", 6, now=0)
    assert batch.items == ["a"]
    assert [b.items for b in batcher.add("huge", 50, now=0)] == [["b"], ["huge"]]


def test_batcher_by_age() -> None:
    batcher: Batcher[int] = Batcher(max_items=100, max_bytes=1000, max_age=1.0)
    assert not batcher.due(now=5)
    batcher.add(1, 1, now=5)
    assert not batcher.due(now=5.5)
    assert batcher.due(now=6.0)
    batch = batcher.flush()
    assert batch is not None and batch.items == [1]
    assert batcher.flush() is None


def test_skip_passes_a_record_held_in_memory_only_when_it_is_the_next_one(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20, segment_bytes=64)  # 3 records a segment
    payloads = [f"record {n}".encode() for n in range(8)]
    ends = [spool.append(payload) for payload in payloads]
    assert len({end.segment for end in ends}) == 3  # the records span segment rolls
    assert not spool.skip(ends[1], len(payloads[1]))  # not the next one: nothing moves
    assert not spool.skip(ends[0], len(payloads[0]) + 1)  # a wrong size is not that record
    assert spool.skip(ends[0], len(payloads[0]))
    assert spool.read(1) == [(ends[1], payloads[1])]
    for n in range(2, 7):  # on across the segment boundaries
        assert spool.skip(ends[n], len(payloads[n])), n
    assert spool.read(5) == [(ends[7], payloads[7])] and not spool.unread
    spool.commit(ends[7])
    spool.close()
    again = Spool(tmp_path / "spool", max_bytes=1 << 20, segment_bytes=64)
    assert not again.unread  # skipped records count as read and, once committed, as delivered
    again.close()
