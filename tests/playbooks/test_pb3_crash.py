"""Item 3 — a real restart in the middle of a run: the process driving it is killed (SIGKILL)
while a step's action runs; once its lease runs out another runner resumes the run. The
idempotent step runs again; the non-idempotent one is marked ``interrupted`` and never repeated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from playbooks.format import Library
from playbooks.records import get_run
from playbooks.runner import Runner
from playbooks.service import start_run
from soc_core.config import Settings
from soc_core.events import parse_timestamp, utcnow
from soc_core.store import Store
from tests.playbooks.conftest import make_alert, playbook
from tests.support.waiting import wait_for
from workflow import audit

# a runner process killed and restarted: the full suite runs it, `make check` does not
pytestmark = pytest.mark.slow

CHILD = """
import sys
import tests.playbooks.fake_actions
from pathlib import Path
from playbooks.format import Library, load_playbook
from playbooks.runner import Runner
from workflow import audit
from soc_core.config import Settings
from soc_core.store import SqliteStore

db, data, run_id, text = sys.argv[1:5]
store = SqliteStore(Path(db))
settings = Settings(data_dir=Path(data))
audit.configure(store, settings)
book = load_playbook(text, source="child.yml")
Runner(store, settings, Library(playbooks={book.name: book}), holder="child", lease_seconds=0.5).execute(run_id)
"""

BOOK = """\
name: crash
steps:
  - id: work
    action: {action}
    with: {{path: "{marks}", hold: "{hold}"}}
    timeout: 3
    on_error: continue
  - id: after
    action: test.echo
    with: {{key: after}}
"""


@pytest.mark.parametrize(
    ("action", "calls", "status"), [("test.mark_idempotent", 2, "succeeded"), ("test.mark", 1, "interrupted")]
)
def test_pb3_a_killed_runner_is_resumed_without_repeating_what_is_not_idempotent(
    sqlite_store: Store, tmp_path: Path, action: str, calls: int, status: str
) -> None:
    marks, hold = tmp_path / "marks", tmp_path / "hold"
    hold.touch()
    text = BOOK.format(action=action, marks=marks, hold=hold)
    book = playbook(text)
    settings = Settings(data_dir=tmp_path)
    audit.configure(sqlite_store, settings)
    run = start_run(sqlite_store, playbook=book, alert_id=make_alert(sqlite_store), scope=None, actor="tester")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "canhgac.db"), str(tmp_path), run.id, text],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        wait_for(lambda: marks.exists() and marks.read_text(), "the child to start the step")
        wait_for(
            lambda: get_run(sqlite_store, run.id).body["steps"][0]["status"],
            "the step to be running",
            until=lambda s: s == "running",
        )
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    hold.unlink()
    lease = get_run(sqlite_store, run.id).body["lease"]
    assert lease["holder"] == "child"
    wait_for(utcnow, "the dead runner's lease to run out", until=lambda now: now > parse_timestamp(lease["until"]))
    runner = Runner(sqlite_store, settings, Library(playbooks={book.name: book}), holder="after-restart")
    try:
        assert runner.execute(run.id) == "succeeded"
    finally:
        runner.close()
    steps = get_run(sqlite_store, run.id).body["steps"]
    assert marks.read_text().count("called") == calls
    assert steps[0]["status"] == status and steps[1]["status"] == "succeeded"
