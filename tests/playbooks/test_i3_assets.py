"""Item 3 of the intel brief: the asset inventory from YAML and CSV files; alert entities matched
by IP, CIDR and host name (case-insensitive, short name vs FQDN), per agency."""

from __future__ import annotations

from pathlib import Path

import pytest

from playbooks.assets import load_inventory
from soc_core.errors import ConfigError

YAML = """\
assets:
  - name: web01.soyte.gov.vn
    ips: [10.10.1.5, "2001:db8:10::5"]
    owner: Phòng CNTT Sở Y tế
    criticality: high
    agency: health
  - name: DB01
    networks: [10.10.2.0/24]
    criticality: critical
    agency: health
  - name: soc.tinh.gov.vn
    ips: [10.0.0.2]
    networks: [10.0.0.0/16]
    agency: "*"
"""

CSV = """\
name,ips,networks,owner,criticality,agency
gw01.congan.gov.vn,10.20.0.1;10.20.0.2,10.20.0.0/16,Công an tỉnh,critical,police
pc-17,,10.20.5.0/24 10.20.6.0/24,,low,police
"""


@pytest.fixture
def inventory_files(tmp_path: Path) -> list[Path]:
    (tmp_path / "health.yaml").write_text(YAML, encoding="utf-8")
    (tmp_path / "police.csv").write_text(CSV, encoding="utf-8")
    return [tmp_path / "health.yaml", tmp_path / "police.csv"]


def test_i3_lookup_by_ip_cidr_and_name(inventory_files: list[Path]) -> None:
    inventory = load_inventory(inventory_files)
    assert len(inventory.assets) == 5

    [web] = inventory.by_ip("10.10.1.5", "health")
    assert (web.asset.name, web.matched_by, web.asset.owner) == ("web01.soyte.gov.vn", "ip", "Phòng CNTT Sở Y tế")
    assert [m.asset.name for m in inventory.by_ip("2001:DB8:10:0::5", "health")] == ["web01.soyte.gov.vn"]
    [db] = inventory.by_ip("10.10.2.77", "health")
    assert (db.asset.name, db.matched_by, db.asset.criticality) == ("db01", "network 10.10.2.0/24", "critical")
    # the narrowest network first; the province-wide SOC host is visible to every agency
    assert [m.matched_by for m in inventory.by_ip("10.20.5.9", "police")] == [
        "network 10.20.5.0/24",
        "network 10.20.0.0/16",
    ]
    assert [m.asset.name for m in inventory.by_ip("10.0.0.2", "police")] == ["soc.tinh.gov.vn"]

    assert [m.asset.name for m in inventory.by_host("WEB01", "health")] == ["web01.soyte.gov.vn"]  # short → FQDN
    assert [m.asset.name for m in inventory.by_host("db01.soyte.gov.vn.", "health")] == ["db01"]  # FQDN → short
    assert inventory.by_host("web01.other.gov.vn", "health") == []  # two FQDNs must be equal
    assert [m.asset.name for m in inventory.by_host("GW01.congan.gov.vn", "police")] == ["gw01.congan.gov.vn"]


def test_i3_another_agency_never_sees_the_host(inventory_files: list[Path]) -> None:
    inventory = load_inventory(inventory_files)
    assert inventory.by_ip("10.10.1.5", "police") == []
    assert inventory.by_host("web01", "police") == []
    assert inventory.by_ip("10.20.0.1", "health") == []
    assert inventory.by_ip("not-an-ip", "health") == []


def test_i3_every_bad_entry_is_reported(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "- name: ok\n  agency: health\n"
        "- name: x\n  ips: [10.0.0.300]\n  agency: health\n"
        "- name: y\n  networks: [10.0.0.1/24]\n  agency: Health\n  colour: red\n",
        encoding="utf-8",
    )
    (tmp_path / "bad.csv").write_text("name,ips,agency\nz,1.2.3.4,police\nw,nope,police\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_inventory([tmp_path / "bad.yaml", tmp_path / "bad.csv"])
    text = caught.value.message
    assert f"{tmp_path / 'bad.yaml'}: assets[1].ips" in text and "10.0.0.300" in text
    assert f"{tmp_path / 'bad.yaml'}: assets[2].networks" in text and "host bits set" in text
    assert f"{tmp_path / 'bad.yaml'}: assets[2].agency" in text and f"{tmp_path / 'bad.yaml'}: assets[2].colour" in text
    assert f"{tmp_path / 'bad.csv'}:3.ips" in text
    assert "5 problem(s)" in text
