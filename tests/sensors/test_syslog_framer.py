"""The RFC 6587 framer as a pure core: properties and fuzzing (RELIABILITY.md S3, S4)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensors.sources.syslog import MAX_OCTET_COUNT, Frame, FramingError, SyslogFramer

LIMIT = 256


def feed_in_chunks(framer: SyslogFramer, data: bytes, cuts: list[int]) -> list[Frame]:
    frames: list[Frame] = []
    start = 0
    for cut in [*sorted({min(c, len(data)) for c in cuts}), len(data)]:
        frames.extend(framer.feed(data[start:cut]))
        start = cut
        assert framer.buffered <= LIMIT + 7
    return frames + framer.finish()


messages = st.binary(min_size=1, max_size=2 * LIMIT)
cuts = st.lists(st.integers(min_value=0, max_value=4096), max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.lists(messages, min_size=1, max_size=8), cuts)
def test_octet_counted_messages_survive_any_chunking(sent: list[bytes], where: list[int]) -> None:
    stream = b"".join(str(len(m)).encode() + b" " + m for m in sent)
    frames = feed_in_chunks(SyslogFramer(LIMIT), stream, where)
    assert [f.data for f in frames] == [m[:LIMIT] for m in sent]
    assert [f.truncated for f in frames] == [len(m) > LIMIT for m in sent]


lf_messages = st.binary(min_size=1, max_size=2 * LIMIT).filter(
    lambda m: b"\n" not in m and m[:1] not in b"\r\x000123456789"
)


@settings(max_examples=300, deadline=None)
@given(st.lists(lf_messages, min_size=1, max_size=8), cuts)
def test_lf_framed_messages_survive_any_chunking(sent: list[bytes], where: list[int]) -> None:
    stream = b"".join(m + b"\n" for m in sent)
    frames = feed_in_chunks(SyslogFramer(LIMIT), stream, where)
    assert [f.data for f in frames] == [m[:LIMIT] for m in sent]
    assert [f.truncated for f in frames] == [len(m) > LIMIT for m in sent]


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=3 * LIMIT), cuts)
def test_fuzz_never_raises_anything_but_framing_error_and_stays_bounded(data: bytes, where: list[int]) -> None:
    framer = SyslogFramer(LIMIT)
    try:
        frames = feed_in_chunks(framer, data, where)
    except FramingError as exc:
        frames = exc.frames
    assert all(len(frame.data) <= LIMIT for frame in frames)


def test_mixed_framings_and_stray_trailers() -> None:
    framer = SyslogFramer(LIMIT)
    frames = framer.feed(b"5 hello\n\n<13>lf one\r\n4 <13>2024-02-05 no count\n3 abc\n")
    # once LF-framed, digits and a space count octets only when a message ("<PRI>") follows
    assert [f.data for f in frames] == [b"hello", b"<13>lf one\r", b"<13>", b"2024-02-05 no count", b"3 abc"]


def test_bogus_counts_raise_with_the_frames_before_them() -> None:
    framer = SyslogFramer(LIMIT)
    with pytest.raises(FramingError, match="bogus octet count") as caught:
        framer.feed(b"4 <13>" + f"{MAX_OCTET_COUNT + 1} ".encode() + b"rest")
    assert [f.data for f in caught.value.frames] == [b"<13>"]


def test_a_huge_valid_count_is_skipped_without_buffering() -> None:
    framer = SyslogFramer(LIMIT)
    assert framer.feed(f"{MAX_OCTET_COUNT} ".encode()) == []
    for _ in range(MAX_OCTET_COUNT // 65536 - 1):
        assert framer.feed(b"a" * 65536) == []
        assert framer.buffered == LIMIT
    frames = framer.feed(b"a" * 65536 + b"<13>next\n")
    assert [(f.data, f.truncated) for f in frames] == [(b"a" * LIMIT, True), (b"<13>next", False)]
