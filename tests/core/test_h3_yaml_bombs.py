"""Issue 11 item 3: YAML alias bombs and other oversized YAML are refused before they are expanded,
with the file and line, wherever YAML is read (rules, configuration, sensor configuration)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sensors.config import load_config
from soc_api.main import create_app
from soc_api.services import accounts
from soc_core.auth import PROVINCE, Membership
from soc_core.config import Settings, load_settings
from soc_core.errors import ConfigError
from soc_core.store import SqliteStore
from tests.support.cli import soc

# six levels of nine aliases: a detection of 9**6 = 531,441 values from about 500 bytes of YAML, which
# pySigma expands in full (tens of seconds and hundreds of MB before this fix)
BOMB = """title: Alias Bomb
id: 9a0e6c1d-5f2b-4c8e-a7d3-1b2c3d4e5f60
logsource: {product: linux, service: sshd}
detection:
  a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]
  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
  f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
  selection: *f
  condition: selection
level: low
"""

CONFIG_BOMB = """data_dir: /tmp
api: &api {host: 127.0.0.1, port: 8000}
log: *api
"""


def test_h3_validate_refuses_the_alias_bomb_with_its_line(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "canhgac.db")
    store.setup()
    password = "a-very-long-password"
    accounts.add_user(store, username="hq", password=password, memberships=[Membership(PROVINCE, "rule_admin")])
    client = TestClient(create_app(Settings(), store))
    token = client.post("/api/auth/login", json={"username": "hq", "password": password}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    report = client.post("/api/rules/validate", json={"yaml": BOMB}, headers=headers).json()
    assert report == {
        "valid": False,
        "errors": [
            "<submitted rule>:5: YAML anchors and aliases (&name, *name) are not allowed — write the value out in full"
        ],
    }
    deep = "title: Deep\nid: 9a0e6c1d-5f2b-4c8e-a7d3-1b2c3d4e5f61\nextra: " + "[" * 3000 + "]" * 3000 + "\n"
    nested = client.post("/api/rules/validate", json={"yaml": deep}, headers=headers).json()
    assert not nested["valid"] and "nested more than 64 levels" in nested["errors"][0]
    store.close()


def test_h3_rules_check_refuses_the_alias_bomb(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "bomb.yml").write_text(BOMB)
    done = soc("rules", "check", str(rules), cwd=tmp_path)
    assert done.returncode == 1
    assert f"{rules / 'bomb.yml'}:5: YAML anchors and aliases (&name, *name) are not allowed" in done.stdout


def test_h3_configuration_refuses_aliases_with_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "soc.yml"
    config.write_text(CONFIG_BOMB)
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert caught.value.where == f"{config}:2" and "aliases" in caught.value.message
    done = soc("--config", str(config), "config", "show", cwd=tmp_path)
    assert done.returncode == 2 and f"{config}:2" in done.stderr and "Traceback" not in done.stderr
    sensor = tmp_path / "sensor.yml"
    sensor.write_text("tenant: &t police\nsensor_id: *t\n")
    with pytest.raises(ConfigError, match="aliases") as caught:
        load_config(sensor)
    assert caught.value.where == f"{sensor}:1"


def test_h3_yaml_is_read_only_through_the_safe_loader() -> None:
    """Every YAML read in the product goes through soc_core.safe_yaml (no yaml.safe_load elsewhere)."""
    root = Path(__file__).resolve().parents[2]
    readers = {"safe_load", "safe_load_all", "load", "load_all", "SafeLoader", "CSafeLoader", "compose", "parse"}
    found = []
    for package in ("soc_core", "sensors", "detections", "soc_api"):
        for path in sorted((root / package).rglob("*.py")):
            if path == root / "soc_core" / "safe_yaml.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Attribute) and node.attr in readers and getattr(node.value, "id", "") == "yaml":
                    found.append(f"{path.relative_to(root)}:{node.lineno}: yaml.{node.attr}")
    assert found == []
