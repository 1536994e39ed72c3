"""Issue 11 item 5 from the command line: `soc apikey create|list|revoke|owner`, real processes
on the embedded store."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from soc_api.services import apikeys
from soc_core.auth import api_key_id
from soc_core.errors import AuthError
from soc_core.store import SqliteStore
from tests.support.cli import soc


def listed(tmp_path: Path) -> dict[str, dict[str, object]]:
    done = soc("apikey", "list", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return {item["id"]: item for item in json.loads(done.stdout)}


@pytest.mark.slow  # a dozen `soc` processes
def test_h5_cli_create_list_revoke_and_owner(tmp_path: Path) -> None:
    assert soc("tenant", "add", "police", "Công an", cwd=tmp_path).returncode == 0
    for name, member in (("chief", "police:admin"), ("ana", "police:analyst")):
        added = soc("user", "add", name, "-m", member, "--password-stdin", cwd=tmp_path, stdin="long-password-123\n")
        assert added.returncode == 0, added.stderr
    created = soc("apikey", "create", "siem", "--tenant", "police", "--owner", "ana", "--expires", "30", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    key = re.search(r"cgk_\S+", created.stdout)
    assert key
    key_id = api_key_id(key.group())
    assert key_id
    # refused with the reason: more than the owner holds, too long, no owner
    beyond = soc("apikey", "create", "x", "--tenant", "police", "--owner", "ana", "--role", "admin", cwd=tmp_path)
    assert beyond.returncode == 2 and "owner 'ana'" in beyond.stderr and "Traceback" not in beyond.stderr
    too_long = soc("apikey", "create", "x", "--tenant", "police", "--owner", "ana", "--expires", "400", cwd=tmp_path)
    assert too_long.returncode == 2 and "365" in too_long.stderr
    ownerless = soc("apikey", "create", "x", "--tenant", "police", cwd=tmp_path)
    assert ownerless.returncode != 0 and "owner" in ownerless.stderr  # --owner is required
    # a request with the key records its last use, which the list shows (never the key)
    store = SqliteStore(tmp_path / "var" / "canhgac.db")
    try:
        apikeys.principal_from_api_key(store, key.group(), source_ip="192.0.2.9")
    finally:
        store.close()
    entry = listed(tmp_path)[key_id]
    assert entry["status"] == "active" and entry["owner"] == "ana" and entry["last_used_ip"] == "192.0.2.9"
    assert str(entry["expires_at"]) > str(entry["created_at"])
    table = soc("apikey", "list", cwd=tmp_path)
    assert key_id in table.stdout and "active" in table.stdout and "192.0.2.9" in table.stdout
    assert key.group() not in table.stdout and key.group() not in soc("apikey", "list", "--json", cwd=tmp_path).stdout
    # revoke: refused from then on
    assert soc("apikey", "revoke", key_id, cwd=tmp_path).returncode == 0
    assert listed(tmp_path)[key_id]["status"] == "revoked"
    store = SqliteStore(tmp_path / "var" / "canhgac.db")
    try:
        with pytest.raises(AuthError):
            apikeys.principal_from_api_key(store, key.group())
        # a key stored before owners were required: refused until given one
        other = soc("apikey", "create", "legacy", "--tenant", "police", "--owner", "ana", cwd=tmp_path)
        legacy = re.search(r"cgk_\S+", other.stdout)
        assert legacy
        legacy_id = str(api_key_id(legacy.group()))
        doc = store.get_doc("apikeys", legacy_id)
        store.update_doc("apikeys", legacy_id, {**doc.body, "owner": ""}, version=doc.version)
        with pytest.raises(AuthError):
            apikeys.principal_from_api_key(store, legacy.group())
        assert listed(tmp_path)[legacy_id]["status"] == "no_owner"
        assert soc("apikey", "owner", legacy_id, "chief", cwd=tmp_path).returncode == 0
        assert apikeys.principal_from_api_key(store, legacy.group()).owner == "chief"
        actions = {d.body["action"]: d.body["actor"] for d in store.list_docs("audit", size=100).items}
        assert actions["apikey.revoke"].startswith("cli:") and actions["apikey.owner"].startswith("cli:")
    finally:
        store.close()
