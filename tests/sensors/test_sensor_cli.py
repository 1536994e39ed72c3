"""``soc sensor logs`` with the real SQLite store behind the injected factory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from sensors import cli
from soc_core.store.sqlite import SqliteStore


@pytest.fixture
def wired(tmp_path: Path) -> Path:
    return tmp_path / "events.sqlite"


@pytest.fixture
def sensor_app(wired: Path) -> typer.Typer:
    def open_store() -> SqliteStore:
        store = SqliteStore(wired)
        store.setup()
        return store

    return cli.build_sensor_app(open_store)


def count(db: Path) -> int:
    store = SqliteStore(db)
    try:
        return int(store.select("SELECT count(*) FROM events")[0][0])
    finally:
        store.close()


def test_one_shot_import_then_rerun_adds_only_new_lines(tmp_path: Path, wired: Path, sensor_app: typer.Typer) -> None:
    log = tmp_path / "auth.log"
    log.write_text(
        "".join(
            f"Feb  5 10:00:{i % 60:02d} h sshd[1]: Failed password for root from 10.0.0.{i} port 22 ssh2\n"
            for i in range(120)
        )
    )
    args = [
        "logs",
        str(log),
        "--tenant",
        "police",
        "--sensor-id",
        "s1",
        "--from-beginning",
        "--once",
        "--state-dir",
        str(tmp_path / "state"),
    ]
    result = CliRunner().invoke(sensor_app, args)
    assert result.exit_code == 0, result.output
    counters = json.loads(result.stdout.strip().splitlines()[-1])
    assert counters["events_out"] == 120
    assert count(wired) == 120
    with open(log, "a") as handle:
        handle.write("Feb  5 11:00:00 h sshd[1]: Accepted password for bob from 10.0.0.9 port 22 ssh2\n")
    result = CliRunner().invoke(sensor_app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["events_out"] == 1
    assert count(wired) == 121


def test_config_file_and_errors(tmp_path: Path, wired: Path, sensor_app: typer.Typer) -> None:
    (tmp_path / "a.log").write_text("Feb  5 10:00:00 h sudo:  al : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/id\n")
    config = tmp_path / "sensor.yml"
    config.write_text(
        f"tenant: so_y_te\nsensor_id: s2\nstate_dir: {tmp_path / 'st'}\n"
        f"inputs:\n  - paths: ['{tmp_path / '*.log'}']\n    parser: sudo\n    from_beginning: true\n"
    )
    result = CliRunner().invoke(sensor_app, ["logs", "--config", str(config), "--once"])
    assert result.exit_code == 0, result.output
    assert count(wired) == 1

    bad = CliRunner().invoke(sensor_app, ["logs", "x.log", "--tenant", "Bad-Tenant", "--sensor-id", "s", "--once"])
    assert bad.exit_code == 2
    assert "tenant" in bad.output
    config.write_text("tenant: [unclosed\n")
    broken = CliRunner().invoke(sensor_app, ["logs", "--config", str(config), "--once"])
    # the message may wrap at the terminal width inside a long temporary path (pytest-xdist's)
    assert broken.exit_code == 2 and "sensor.yml:" in broken.output.replace("\n", ""), broken.output
