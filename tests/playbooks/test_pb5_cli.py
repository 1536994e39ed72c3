"""Item 5 — ``soc playbook validate|list|run|runs``, as a user runs it (a real process)."""

from __future__ import annotations

from pathlib import Path

from soc_core.store import SqliteStore
from tests.playbooks.conftest import make_alert
from tests.support.cli import soc

TRIAGE = """\
name: triage
description: acknowledge and note
steps:
  - id: ack
    action: alert.set_status
    with: {status: acknowledged}
  - id: note
    action: alert.comment
    with: {text: "handled by {{ run.playbook }}"}
"""

BROKEN = """\
name: broken
steps:
  - id: ack
    action: alert.set_status
    with: {status: opened}
  - id: ack
    action: alert.nothing
"""


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    books = tmp_path / "playbooks"
    books.mkdir()
    (books / "triage.yml").write_text(TRIAGE)
    config = tmp_path / "config.yml"
    config.write_text(f"data_dir: {tmp_path / 'var'}\nplaybooks:\n  dirs: [{books}]\n")
    return books, config


def test_pb5_validate_reports_every_problem_with_file_and_line(tmp_path: Path) -> None:
    books, _ = _setup(tmp_path)
    (books / "broken.yml").write_text(BROKEN)
    result = soc("playbook", "validate", str(books / "triage.yml"), str(books / "broken.yml"), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("✓") and "triage v1, 2 step(s), trigger manual" in line for line in lines)
    broken = str(books / "broken.yml")
    assert any(f"{broken}:5: steps[0].with.status" in line for line in lines), result.stdout
    assert any(f"{broken}:6: steps[1].id: step id 'ack' is used twice" in line for line in lines)
    assert any(f"{broken}:7: steps[1].action: no action 'alert.nothing'" in line for line in lines)
    assert lines[-1] == "2 file(s), 3 problem(s)"
    ok = soc("playbook", "validate", str(books / "triage.yml"), cwd=tmp_path)
    assert ok.returncode == 0 and ok.stdout.splitlines()[-1] == "1 file(s), 0 problem(s)"


def test_pb5_list_run_and_runs(tmp_path: Path) -> None:
    _, config = _setup(tmp_path)
    listed = soc("-c", str(config), "playbook", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "triage" in listed.stdout and "ack → note" in listed.stdout

    store = SqliteStore(tmp_path / "var" / "canhgac.db")
    store.setup()
    alert_id = make_alert(store)
    dry = soc("-c", str(config), "playbook", "run", "triage", "--alert", alert_id, "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "(dry run)" in dry.stdout and "succeeded" in dry.stdout and "would change" in dry.stdout
    assert store.get_doc("alerts", alert_id).body["status"] == "new"

    live = soc("-c", str(config), "playbook", "run", "triage", "--alert", alert_id, cwd=tmp_path)
    assert live.returncode == 0, live.stdout + live.stderr
    assert store.get_doc("alerts", alert_id).body["status"] == "acknowledged"
    comments = store.get_doc("alerts", alert_id).body["comments"]
    assert [c["text"] for c in comments] == ["handled by triage"]

    again = soc("-c", str(config), "playbook", "run", "triage", "--alert", alert_id, cwd=tmp_path)
    assert again.returncode == 0  # acknowledged already: unchanged, not an error

    runs = soc("-c", str(config), "playbook", "runs", "--alert", alert_id, cwd=tmp_path)
    assert runs.returncode == 0, runs.stderr
    assert runs.stdout.count("triage") == 3 and "2/2 succeeded" in runs.stdout and "(dry run)" in runs.stdout

    missing = soc("-c", str(config), "playbook", "run", "nope", "--alert", alert_id, cwd=tmp_path)
    assert missing.returncode == 2 and "no playbook 'nope'" in missing.stderr and "loaded: triage" in missing.stderr
    unknown = soc("-c", str(config), "playbook", "run", "triage", "--alert", "no-such-alert", cwd=tmp_path)
    assert unknown.returncode == 2 and "no alerts document 'no-such-alert'" in unknown.stderr
    store.close()
