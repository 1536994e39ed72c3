"""Item 3 — ``soc report weekly``, as a user runs it (a real process) on a seeded SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reports.metrics import weekly
from soc_core.config import Settings
from soc_core.store import SqliteStore
from tests.reports.seeded_week import NOW, seed_week
from tests.support.cli import soc
from workflow import audit


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    settings = Settings(data_dir=tmp_path / "var")
    store = SqliteStore(settings.sqlite_path)
    store.setup()
    audit.configure(store, settings)
    seed_week(store, monkeypatch)
    store.close()
    path = tmp_path / "soc.yml"
    path.write_text(f"data_dir: {tmp_path / 'var'}\n")
    return path


def test_s13m_cli_weekly_json_to_file_and_stdout(tmp_path: Path, config: Path) -> None:
    out = tmp_path / "w48.json"
    args = ("--config", str(config), "report", "weekly", "--week", "2026-W48", "--tenant", "police", "--format", "json")
    written = soc(*args, "--output", str(out), cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    assert f"written to {out}" in written.stderr
    settings = Settings(data_dir=tmp_path / "var")
    store = SqliteStore(settings.sqlite_path)
    expected = weekly(store, settings, week="2026-W48", tenant="police", now=NOW).model_dump(mode="json")
    got = json.loads(out.read_text())
    assert got.pop("generated_at") != expected.pop("generated_at")  # made now, not at NOW
    assert got == expected
    printed = soc(*args, cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout)["alerts"]["total"] == 6
    province = soc("--config", str(config), "report", "weekly", "-w", "2026-W48", cwd=tmp_path)
    assert [row["tenant"] for row in json.loads(province.stdout)["agencies"]] == ["health", "police"]


def test_s13m_cli_weekly_refuses_bad_input(tmp_path: Path, config: Path) -> None:
    base = ("--config", str(config), "report", "weekly")
    unknown = soc(*base, "--week", "2026-W48", "--tenant", "transport", cwd=tmp_path)
    assert unknown.returncode == 2
    assert "no agency 'transport'" in unknown.stderr and "soc tenant list" in unknown.stderr
    week = soc(*base, "--week", "2026-48", cwd=tmp_path)
    assert week.returncode == 2 and "is not an ISO week" in week.stderr
    fmt = soc(*base, "--week", "2026-W48", "--format", "docx", cwd=tmp_path)
    assert fmt.returncode == 2 and "--format 'docx' is not a report format" in fmt.stderr
