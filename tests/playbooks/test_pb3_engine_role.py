"""Item 3 — the runner inside ``soc up --role engine``: two engine processes on one SQLite
store, alerts written meanwhile; each alert gets its playbook run exactly once, and the
non-idempotent comment step acts once per alert."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import yaml

from playbooks.records import auto_run_id
from soc_core.store import SqliteStore
from tests.playbooks.conftest import make_alert
from tests.soc_api.test_h4_roles import Soc
from tests.support.waiting import wait_for

# whole `soc` processes killed and restarted: the full suite runs them, `make check` does not
pytestmark = pytest.mark.slow

AUTO = """\
name: auto-triage
trigger: {type: alert, levels: [high, critical]}
steps:
  - id: ack
    action: alert.set_status
    with: {status: acknowledged}
  - id: note
    action: alert.comment
    with: {text: "auto-triage saw {{ alert['rule.name'] }}"}
"""


def test_pb3_two_engine_processes_run_each_alert_once(tmp_path: Path) -> None:
    books = tmp_path / "playbooks"
    books.mkdir()
    (books / "auto.yml").write_text(AUTO)
    config = tmp_path / "soc.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp_path),
                "detection": {"enabled": False},
                "playbooks": {"dirs": [str(books)], "poll_seconds": 0.1},
                "log": {"json_format": True},
            }
        )
    )
    store = SqliteStore(tmp_path / "canhgac.db")
    store.setup()
    engines = [Soc(config, "engine", tmp_path / f"engine{i}.log") for i in range(2)]
    try:
        for engine in engines:
            wait_for(partial(_started, engine), "an engine to start")
        alerts = [make_alert(store) for _ in range(3)]
        low = make_alert(store, **{"rule.level": "low"})

        def finished() -> list[str]:
            runs = [d.body for d in store.list_docs("playbook_runs", size=100).items]
            return sorted(str(r["status"]) for r in runs)

        wait_for(finished, "the runs to finish", until=lambda s: s == ["succeeded"] * 3)
    finally:
        codes = [engine.stop() for engine in engines]
    assert codes == [0, 0], [e.text() for e in engines]
    for alert_id in alerts:
        store.get_doc("playbook_runs", auto_run_id("auto-triage", alert_id))
        body = store.get_doc("alerts", alert_id).body
        assert body["status"] == "acknowledged"
        assert [c["text"] for c in body["comments"]] == ["auto-triage saw SSH brute force"]
    assert store.get_doc("alerts", low).body["status"] == "new"
    started = [r["parts"] for e in engines for r in e.records() if r["message"] == "started"]
    assert started == [["playbooks", "scheduler"]] * 2
    store.close()


def _started(engine: Soc) -> bool:
    return any(record["message"] == "started" for record in engine.records())
