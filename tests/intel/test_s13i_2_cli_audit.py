"""Item 2 of the s13 intel brief: ``soc intel import|delete`` writes the audit records the API
writes (``intel.import`` with the counts, ``intel.delete``), the actor being the local operator
(``cli:<os user>``). As a user runs it (a real process, SQLite, the trail verified by ``soc
audit verify``), and the command's own code on both stores."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from intel.cli import build_intel_app
from soc_core.config import Settings
from soc_core.store import SqliteStore, Store
from tests.intel.support import DATA
from tests.support.cli import soc
from workflow import audit


def intel_records(store: Store) -> list[dict[str, Any]]:
    store.refresh()
    found = [doc.body for doc in store.list_docs("audit", size=1000).items]
    return sorted((body for body in found if body["action"].startswith("intel.")), key=lambda body: body["seq"])


def test_s13i_2_cli_import_and_delete_are_audited(tmp_path: Path) -> None:
    operator = f"cli:{getpass.getuser()}"
    done = soc("intel", "import", str(DATA / "list.csv"), "--tenant", "police", "--list", "blocklist", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    feed = soc("intel", "import", str(DATA / "bundle.json"), "--tenant", "*", "--list", "cert", cwd=tmp_path)
    assert feed.returncode == 0, feed.stderr
    assert soc("intel", "delete", "blocklist", "--tenant", "police", cwd=tmp_path).returncode == 0
    missing = soc("intel", "delete", "blocklist", "--tenant", "police", cwd=tmp_path)
    assert missing.returncode == 2  # nothing deleted: nothing recorded

    store = SqliteStore(tmp_path / "var" / "canhgac.db")
    try:
        records = intel_records(store)
    finally:
        store.close()
    assert [(r["action"], r["target"], r["tenant"], r["actor"]) for r in records] == [
        ("intel.import", "intel/police:blocklist", "police", operator),
        ("intel.import", "intel/*:cert", None, operator),
        ("intel.delete", "intel/police:blocklist", "police", operator),
    ]
    assert (records[0]["after"]["loaded"], records[0]["after"]["skipped"]) == (4, 4)
    verified = soc("audit", "verify", cwd=tmp_path)  # sealed with the server's key, like the API's
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_s13i_2_intel_commands_audit_on_every_store(store: Store, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)

    def open_store() -> Store:
        opened = store.reopened()  # the command closes what it opens
        audit.configure(opened, settings)
        return opened

    app = build_intel_app(open_store)
    runner = CliRunner()
    imported = runner.invoke(app, ["import", str(DATA / "list.csv"), "--tenant", "health", "--list", "bad"])
    assert imported.exit_code == 0, imported.output
    deleted = runner.invoke(app, ["delete", "bad", "--tenant", "health"])
    assert deleted.exit_code == 0, deleted.output
    audit.configure(store, settings)
    assert [(r["action"], r["target"], r["actor"]) for r in intel_records(store)] == [
        ("intel.import", "intel/health:bad", f"cli:{getpass.getuser()}"),
        ("intel.delete", "intel/health:bad", f"cli:{getpass.getuser()}"),
    ]
