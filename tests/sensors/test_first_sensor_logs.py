"""`soc sensor logs` traps of a first hour (issue 14 item 15): a missing file, an unregistered
agency, a second --from-beginning run that silently reads nothing, a silent tail from the end,
and a parser that does not fit its files. Real processes, real files, both stores."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sensors.parsers import auth
from sensors.parsers.context import ParseContext
from soc_api.services import accounts
from soc_core.errors import ParseError
from soc_core.query import event_query
from soc_core.store import ElasticsearchStore, SqliteStore, Store
from tests.support.cli import soc

AUTH_LINES = "".join(
    f"Nov 25 10:00:{i:02d} web01 sshd[{100 + i}]: Failed password for root from 203.0.113.7 port {4000 + i} ssh2\n"
    for i in range(6)
)
DPKG_LINES = "".join(
    f"2026-12-01 10:00:{i:02d} status installed libfoo{i}:amd64 1.{i}\n"
    f"2026-12-01 10:00:{i:02d} configure bar:amd64 2.{i} <none>\n"
    for i in range(5)
)


def _store_env(store: Store) -> dict[str, str]:
    if isinstance(store, ElasticsearchStore):
        return {
            "SOC_STORE__BACKEND": "elasticsearch",
            "SOC_STORE__ELASTICSEARCH__URL": store.url,
            "SOC_STORE__ELASTICSEARCH__INDEX_PREFIX": store.prefix,
        }
    assert isinstance(store, SqliteStore)
    return {"SOC_STORE__BACKEND": "sqlite", "SOC_STORE__SQLITE_PATH": str(store.path)}


def _logs(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, sensor: str = "web01"
) -> tuple[int, str, dict[str, int]]:
    done = soc("sensor", "logs", *args, "--tenant", "police", "--sensor-id", sensor, "--once", cwd=tmp_path, env=env)
    assert "Traceback" not in done.stderr, done.stderr
    counters = json.loads(done.stdout) if done.stdout.strip() else {}
    return done.returncode, done.stderr, counters


def test_first_4_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    code, stderr, counters = _logs(tmp_path, str(tmp_path / "nothere.log"), "--from-beginning")
    assert code == 2 and counters == {}
    assert "no file matches" in stderr and "nothere.log" in stderr


def test_first_4_an_unregistered_agency_is_refused(store: Store, tmp_path: Path) -> None:
    accounts.add_tenant(store, tenant_id="polis", name="Police (typo'd elsewhere)")
    log = tmp_path / "auth.log"
    log.write_text(AUTH_LINES)
    code, stderr, _ = _logs(tmp_path, str(log), "--from-beginning", env=_store_env(store))
    assert code == 2, stderr
    assert "'police' is not registered" in stderr and "polis" in stderr and "soc tenant add" in stderr
    store.refresh()
    assert store.count_events(event_query(tenants=["police"]))[0].count == 0
    accounts.add_tenant(store, tenant_id="police", name="Police")
    code, stderr, counters = _logs(tmp_path, str(log), "--from-beginning", env=_store_env(store))
    assert code == 0 and counters["events_out"] == 6, stderr


def test_first_4_resuming_and_tailing_from_the_end_are_said_and_reset_rereads(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text(AUTH_LINES)
    size = log.stat().st_size
    code, stderr, counters = _logs(tmp_path, str(log), "--from-beginning")
    assert code == 0 and counters["events_out"] == 6, stderr
    assert f"reading {log} from the beginning" in stderr
    code, stderr, counters = _logs(tmp_path, str(log), "--from-beginning")
    assert code == 0 and counters["lines_read"] == 0
    assert f"resuming {log} at byte {size} of {size} from the checkpoint" in stderr and "--reset" in stderr, stderr
    code, stderr, counters = _logs(tmp_path, str(log), "--from-beginning", "--reset")
    assert code == 0 and counters["lines_read"] == 6 and counters["duplicates"] == 6, (stderr, counters)
    code, stderr, counters = _logs(tmp_path, str(log), sensor="fresh")
    assert code == 0 and counters["lines_read"] == 0
    assert f"tailing {log} from its end" in stderr and f"{size} bytes" in stderr and "--from-beginning" in stderr


def test_first_4_a_parser_that_does_not_fit_says_so(tmp_path: Path) -> None:
    log = tmp_path / "dpkg.log"
    log.write_text(DPKG_LINES)
    code, stderr, counters = _logs(tmp_path, str(log), "--from-beginning")
    assert counters["parse_failures"] == 10 and counters["events_out"] == 10, counters
    assert "parser 'auth' does not fit" in stderr and "failed on 10 of 10 lines" in stderr, stderr
    fitting = tmp_path / "auth.log"
    fitting.write_text(AUTH_LINES)
    code, stderr, counters = _logs(tmp_path, str(fitting), "--from-beginning", sensor="auth01")
    assert code == 0 and counters["parse_failures"] == 0 and "does not fit" not in stderr


def test_first_4_auth_parser_refuses_a_line_without_a_program() -> None:
    context = ParseContext(now=datetime(2026, 12, 1, tzinfo=UTC), tz=ZoneInfo("UTC"))
    with pytest.raises(ParseError, match="not an auth-log line"):
        auth.parse("2026-12-01 10:00:00 status installed libc6:amd64 2.36", context)
    fields = auth.parse("Dec  1 10:00:00 web01 CRON[12]: pam_unix(cron:session): session opened", context)
    assert fields["host.name"] == "web01"
