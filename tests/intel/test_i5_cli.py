"""Item 5 of the intel brief: ``soc intel import|lists|delete`` as a user runs them (a real
process on a SQLite store; the list code under it is tested on both stores in test_i1_lists)."""

from __future__ import annotations

from pathlib import Path

from intel import lists
from soc_core.store import SqliteStore
from tests.intel.support import DATA
from tests.support.cli import soc


def test_i5_import_lists_delete(tmp_path: Path) -> None:
    done = soc("intel", "import", str(DATA / "list.csv"), "--tenant", "police", "--list", "blocklist", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"skipped {DATA / 'list.csv'}:7: '10.20.1.5/16' is not an IP address or network" in done.stdout
    assert (
        "list 'blocklist' (agency police, csv): 4 loaded, 0 updated, 0 removed, 1 duplicates, 4 skipped; "
        "4 indicators now" in done.stdout
    )
    again = soc(
        "intel", "import", str(DATA / "list.csv"), "-t", "police", "-l", "blocklist", "--show", "1", cwd=tmp_path
    )
    assert "0 loaded, 4 updated, 0 removed" in again.stdout and "… 3 more skipped" in again.stdout

    feed = soc("intel", "import", str(DATA / "misp_feed"), "--tenant", "*", cwd=tmp_path)
    assert "list 'misp_feed' (province-wide, misp): 4 loaded" in feed.stdout, feed.stdout + feed.stderr
    values = soc(
        "intel",
        "import",
        str(DATA / "domains.txt"),
        "-t",
        "health",
        "--format",
        "csv",
        "--type",
        "domain",
        cwd=tmp_path,
    )
    assert "list 'domains' (agency health, csv): 1 loaded" in values.stdout, values.stdout + values.stderr

    listed = soc("intel", "lists", "--tenant", "police", cwd=tmp_path)
    assert listed.returncode == 0 and "misp_feed" in listed.stdout and "blocklist" in listed.stdout
    assert "domains" not in listed.stdout and "2 lists" in listed.stdout
    assert "3 lists" in soc("intel", "lists", cwd=tmp_path).stdout

    wrong = soc("intel", "delete", "domains", "--tenant", "police", cwd=tmp_path)
    assert wrong.returncode == 2 and "no threat-intel list 'domains' for agency police" in wrong.stderr
    assert soc("intel", "delete", "domains", "--tenant", "health", cwd=tmp_path).returncode == 0
    store = SqliteStore(tmp_path / "var" / "canhgac.db")
    try:
        assert [(item["tenant"], item["name"]) for item in lists.lists(store, None)] == [
            ("*", "misp_feed"),
            ("police", "blocklist"),
        ]
    finally:
        store.close()


def test_i5_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    missing = soc("intel", "import", str(tmp_path / "nope.csv"), "--tenant", "police", cwd=tmp_path)
    assert missing.returncode == 2 and "nope.csv: no such file" in missing.stderr
    bad_tenant = soc("intel", "import", str(DATA / "list.csv"), "--tenant", "Police", cwd=tmp_path)
    assert bad_tenant.returncode == 2 and "bad tenant id 'Police'" in bad_tenant.stderr
    bad_format = soc("intel", "import", str(DATA / "list.csv"), "-t", "police", "--format", "xml", cwd=tmp_path)
    assert bad_format.returncode == 2 and "unknown format 'xml'" in bad_format.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"type": "bundle", "objects": [', encoding="utf-8")
    not_json = soc("intel", "import", str(broken), "-t", "police", cwd=tmp_path)
    assert not_json.returncode == 2 and f"{broken}: not JSON" in not_json.stderr
