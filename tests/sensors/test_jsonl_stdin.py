"""JSON lines: the parser, the stream reader, and ``soc sensor jsonl -`` / ``logs -`` on stdin."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sensors import cli
from sensors.parsers import PARSERS, ParseContext
from sensors.sources.jsonl import read_lines
from soc_core.errors import ParseError
from soc_core.store.sqlite import SqliteStore

CTX = ParseContext(now=datetime(2024, 3, 1, tzinfo=UTC))


def test_nested_json_is_flattened_and_sensor_fields_are_not_trusted() -> None:
    line = json.dumps(
        {
            "@timestamp": "2024-02-05T10:00:00+07:00",
            "event": {"dataset": "myapp.audit", "id": "forged", "action": "login"},
            "organization": {"id": "other_agency"},
            "user": {"name": "an"},
            "tags": ["x"],
        }
    )
    fields = PARSERS["jsonl"].parse(line, CTX)
    assert fields["@timestamp"] == datetime(2024, 2, 5, 3, 0, tzinfo=UTC)
    assert fields["event.dataset"] == "myapp.audit"
    assert fields["event.action"] == "login" and fields["user.name"] == "an"
    assert "event.id" not in fields and "organization.id" not in fields
    epoch = PARSERS["jsonl"].parse('{"@timestamp": 1707127200000, "event": {"dataset": "Bad Name"}}', CTX)
    assert epoch["@timestamp"] == datetime(2024, 2, 5, 10, 0, tzinfo=UTC)
    assert epoch["event.dataset"] == "json.generic" and epoch["json.event.dataset"] == "Bad Name"
    for bad in ("{not json", "[1, 2]", '"text"'):
        with pytest.raises(ParseError):
            PARSERS["jsonl"].parse(bad, CTX)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=50).filter(lambda b: b"\n" not in b), max_size=20), st.integers(1, 30))
def test_read_lines_offsets_and_truncation(lines: list[bytes], limit: int) -> None:
    data = b"".join(line + b"\n" for line in lines)
    out = list(read_lines(io.BytesIO(data), max_line_bytes=limit))
    assert [o.raw for o in out] == [line[:limit] for line in lines]
    assert [o.truncated for o in out] == [len(line) > limit for line in lines]
    offsets = [sum(len(x) + 1 for x in lines[:i]) for i in range(len(lines))]
    assert [o.offset for o in out] == offsets


def test_last_line_without_newline_is_kept() -> None:
    assert [o.raw for o in read_lines(io.BytesIO(b"a\nb"))] == [b"a", b"b"]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "events.sqlite"


@pytest.fixture
def sensor_app(db: Path) -> typer.Typer:
    def open_store() -> SqliteStore:
        store = SqliteStore(db)
        store.setup()
        return store

    return cli.build_sensor_app(open_store)


def docs(path: Path) -> list[dict[str, object]]:
    store = SqliteStore(path)
    try:
        return [json.loads(doc) for (doc,) in store.select("SELECT doc FROM events ORDER BY rowid")]
    finally:
        store.close()


def test_jsonl_from_stdin_invalid_lines_become_parse_failures(
    tmp_path: Path, db: Path, sensor_app: typer.Typer
) -> None:
    stdin = '{"a": {"b": 1}}\nnot json at all\n{"message": "hi"}\n\n'
    args = ["jsonl", "-", "--tenant", "police", "--sensor-id", "app01", "--state-dir", str(tmp_path / "s")]
    result = CliRunner().invoke(sensor_app, [*args, "--source-id", "run1"], input=stdin)
    assert result.exit_code == 0, result.output
    counters = json.loads(result.stdout.strip().splitlines()[-1])
    assert counters["records"] == counters["events_out"] == 4
    assert counters["parse_failures"] == 2  # the bad line and the empty one
    events = docs(db)
    assert events[0]["a.b"] == 1 and events[0]["event.dataset"] == "json.generic"
    assert events[1]["event.original"] == "not json at all" and "parse_failure" in events[1]["tags"]  # type: ignore[operator]
    again = CliRunner().invoke(sensor_app, [*args, "--source-id", "run1"], input=stdin)
    assert json.loads(again.stdout.strip().splitlines()[-1])["duplicates"] == 4
    assert len(docs(db)) == 4


def test_logs_dash_reads_stdin_with_any_parser(tmp_path: Path, db: Path, sensor_app: typer.Typer) -> None:
    line = '10.0.0.1 - - [05/Feb/2024:10:00:00 +0000] "GET /a?b=c HTTP/1.1" 200 5 "-" "curl/8"\n'
    args = ["logs", "-", "--parser", "nginx", "--tenant", "police", "--sensor-id", "web01"]
    result = CliRunner().invoke(sensor_app, [*args, "--state-dir", str(tmp_path / "s")], input=line * 3)
    assert result.exit_code == 0, result.output
    events = docs(db)
    assert len(events) == 3
    assert {e["event.dataset"] for e in events} == {"nginx.access"}
    assert events[0]["url.query"] == "b=c"


def test_jsonl_files_go_through_the_tailer(tmp_path: Path, db: Path, sensor_app: typer.Typer) -> None:
    (tmp_path / "app.jsonl").write_text('{"event": {"action": "x"}}\n{"event": {"action": "y"}}\n')
    args = ["jsonl", str(tmp_path / "*.jsonl"), "--tenant", "police", "--sensor-id", "a"]
    result = CliRunner().invoke(sensor_app, [*args, "--from-beginning", "--once", "--state-dir", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert [e["event.action"] for e in docs(db)] == ["x", "y"]
