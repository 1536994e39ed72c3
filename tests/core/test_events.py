from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from soc_core.errors import ParseError
from soc_core.events import (
    check_tenant_id,
    event_id,
    flatten,
    format_timestamp,
    make_event,
    mark_parse_failure,
    parse_timestamp,
    validate_event,
)


def test_event_id_is_deterministic_and_position_sensitive() -> None:
    a = event_id("sensor-1", "fp:abc", 10, b"line")
    assert a == event_id("sensor-1", "fp:abc", 10, b"line")
    assert a != event_id("sensor-1", "fp:abc", 11, b"line")
    assert a != event_id("sensor-2", "fp:abc", 10, b"line")
    assert a != event_id("sensor-1", "fp:abd", 10, b"line")
    assert a != event_id("sensor-1", "fp:abc", 10, b"line ")
    # the parts are length-prefixed: shifting bytes between parts changes the id
    assert event_id("ab", "c", 1, b"") != event_id("a", "bc", 1, b"")


def test_make_event_fixes_the_tenant_from_the_sensor_not_the_input() -> None:
    event = make_event(
        tenant="police",
        dataset="system.auth",
        sensor_id="s",
        source="f",
        position=0,
        raw=b"x",
        timestamp=datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        fields={"organization.id": "health", "user.name": "root"},
    )
    assert event["organization.id"] == "police"
    assert event["@timestamp"] == "2026-01-02T03:04:05.678Z"
    assert event["event.module"] == "system"
    assert validate_event(event) == []


def test_validation_names_every_problem() -> None:
    problems = validate_event({"event.kind": "bogus", "@timestamp": "yesterday", "organization.id": "Bad-Id"})
    text = "; ".join(problems)
    for expected in ("event.id", "event.dataset", "bogus", "@timestamp", "organization.id"):
        assert expected in text


def test_parse_failures_keep_the_raw_line() -> None:
    event = mark_parse_failure({}, "garbage \x1b[31m", "no timestamp")
    assert event["event.original"] == "garbage \x1b[31m"
    assert event["error.message"] == "no timestamp"
    assert event["tags"] == ["parse_failure"]


def test_timestamps_round_trip_in_utc() -> None:
    local = datetime(2026, 11, 25, 7, 0, tzinfo=timezone(timedelta(hours=7)))
    assert format_timestamp(local) == "2026-11-25T00:00:00.000Z"
    assert parse_timestamp("2026-11-25T00:00:00.000Z") == local
    with pytest.raises(ParseError):
        parse_timestamp("not a time")


def test_tenant_ids_cannot_collide_in_index_names() -> None:
    assert check_tenant_id("so_y_te") == "so_y_te"
    for bad in ("police-hq", "Police", "", "1abc", "a" * 41, "x*"):
        with pytest.raises(ParseError):
            check_tenant_id(bad)


def test_flatten_nested_beats_documents() -> None:
    assert flatten({"source": {"ip": "1.2.3.4", "geo": {}}, "tags": ["a"], "event": {"code": 4624}}) == {
        "source.ip": "1.2.3.4",
        "source.geo": {},
        "tags": ["a"],
        "event.code": 4624,
    }


@given(st.text(), st.binary())
def test_event_id_never_fails(source: str, raw: bytes) -> None:
    assert len(event_id("s", source, 0, raw)) == 32


def test_encode_stored_reuses_the_spool_bytes_and_equals_a_fresh_encoding() -> None:
    from soc_core.events import encode_event, encode_stored  # noqa: PLC0415

    event = make_event(tenant="police", dataset="app.log", sensor_id="s1", source="f", position=3, raw=b"x")
    event["labels.when"] = datetime(2024, 2, 5, tzinfo=UTC)  # no JSON type: written as text, both ways
    event["tags"] = ("a", "b")
    spliced = orjson.loads(encode_stored(event, "2024-02-05T00:00:00.000Z", encode_event(event)))
    fresh = orjson.loads(encode_stored(event, "2024-02-05T00:00:00.000Z"))
    assert spliced == fresh and fresh["event.ingested"] == "2024-02-05T00:00:00.000Z"
    assert fresh["labels.when"] == "2024-02-05T00:00:00+00:00" and fresh["tags"] == ["a", "b"]
    event["event.ingested"] = "earlier"  # never two keys of the same name: the store's value wins
    again = encode_stored(event, "now", encode_event(event))
    assert again.count(b'"event.ingested"') == 1 and orjson.loads(again)["event.ingested"] == "now"
