"""Item 1 of the intel brief: lists in the store, per agency or province-wide, on SQLite and
Elasticsearch — import, re-import (updates, never duplicates), list, delete, visibility."""

from __future__ import annotations

from pathlib import Path

import pytest

from intel import lists
from intel.lists import CHUNK_KIND
from intel.parsers import parse_file
from soc_core.errors import InvalidInput, NotFound
from soc_core.store import Store
from tests.intel.support import DATA, load


def test_i1_import_list_and_reimport_updates(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lists, "CHUNK_SIZE", 2)  # several chunks even for a small file
    first = load(store, "list.csv", tenant="police", list_name="blocklist", fmt="csv")
    assert (first.loaded, first.updated, first.removed, first.duplicates, len(first.skipped)) == (4, 0, 0, 1, 4)
    before = lists.generation(store)
    assert before is not None

    changed = tmp_path / "list.csv"
    changed.write_text("type,value,confidence\nip,203.0.113.9,70\nip,192.0.2.44,80\n", encoding="utf-8")
    parsed = parse_file(changed)
    again = lists.import_list(store, parsed, tenant="police", name="blocklist", fmt="csv", source="list.csv")
    assert (again.loaded, again.updated, again.removed, again.total) == (1, 1, 3, 2)
    assert lists.generation(store) != before

    [header] = [item for item in lists.lists(store, ("police",)) if item["name"] == "blocklist"]
    assert header["count"] == 2 and header["counts"] == {"ip": 2} and header["chunks"] == 1
    values = {i.value: i for i in lists.read_indicators(store, header, "police", "blocklist")}
    assert set(values) == {"203.0.113.9", "192.0.2.44"}
    kept = values["203.0.113.9"]
    assert kept.first_seen == "2026-11-19T00:00:00.000Z"  # the earliest first_seen survives a re-import
    # the old version's chunks are gone: nothing left behind
    with pytest.raises(NotFound):
        store.get_doc(CHUNK_KIND, f"police:blocklist:{header['generation']}:1")


def test_i1_scopes_and_delete(store: Store) -> None:
    load(store, "misp_feed", tenant="*", list_name="vncert")
    load(store, "list.csv", tenant="police", list_name="blocklist")
    load(store, "bundle.json", tenant="health", list_name="cert")
    police = [(item["tenant"], item["name"]) for item in lists.lists(store, ("police",))]
    assert police == [("*", "vncert"), ("police", "blocklist")]  # province-wide first, never health's
    assert len(lists.lists(store, None)) == 3

    index = lists.load_index(store)
    md5 = "79054025255fb1a26e4bc422aef54eb4"  # on health's STIX list only
    assert index.lookup("hash", md5, "health") and not index.lookup("hash", md5, "police")
    assert index.lookup("ip", "203.0.113.7", "police") and index.lookup("ip", "203.0.113.7", "health")  # '*'

    with pytest.raises(NotFound, match="no threat-intel list 'cert' for agency police"):
        lists.delete_list(store, tenant="police", name="cert")  # health's list, asked as police
    lists.delete_list(store, tenant="health", name="cert")
    assert [item["name"] for item in lists.lists(store, ("health",))] == ["vncert"]
    assert not lists.load_index(store).lookup("hash", md5, "health")


@pytest.mark.parametrize(("tenant", "name"), [("Police", "x"), ("police", "../x"), ("-", "x"), ("police", "")])
def test_i1_bad_scope_or_name(sqlite_store: Store, tenant: str, name: str) -> None:
    with pytest.raises(InvalidInput):
        lists.import_list(sqlite_store, parse_file(DATA / "list.csv"), tenant=tenant, name=name, fmt="csv", source="x")
