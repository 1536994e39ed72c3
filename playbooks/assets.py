"""The asset inventory: agency hosts with their addresses, networks, owner and criticality.

Read from YAML (``assets: [{name, ips, networks, owner, criticality, agency}, ...]`` or a bare
list) or CSV (``name,ips,networks,owner,criticality,agency``, several addresses or networks in
one cell separated by ``;`` or spaces) files named in ``playbooks.assets.paths``. Every bad
entry is reported (``file: assets[3].ips[0]: …`` or ``file:line: …``) in one
:class:`ConfigError`, never only the first.

Lookup (pure): an address matches a host that has it, or whose network holds it (the narrowest
network first); a host name matches case-insensitively, and a short name (``web01``) matches the
FQDN (``web01.soyte.gov.vn``) either way, while two FQDNs must be equal. An agency sees its own
hosts and province-wide ones (``agency: "*"``) only.
"""

from __future__ import annotations

import csv
import ipaddress
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from soc_core.config import read_config_file
from soc_core.errors import ConfigError
from soc_core.events import TENANT_ID

Criticality = Literal["low", "medium", "high", "critical"]
HOST_NAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})$")
SPLIT = re.compile(r"[;\s]+")
CSV_COLUMNS = ("name", "ips", "networks", "owner", "criticality", "agency")


class Asset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=253)
    ips: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    owner: str | None = Field(None, max_length=200)
    criticality: Criticality = "medium"
    agency: str

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not HOST_NAME.match(value):
            raise ValueError(f"{value!r} is not a host name")
        return value.rstrip(".").lower()

    @field_validator("ips")
    @classmethod
    def _ips(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(str(ipaddress.ip_address(item)) for item in value)  # ValueError names the bad one

    @field_validator("networks")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(str(ipaddress.ip_network(item, strict=True)) for item in value)

    @field_validator("agency")
    @classmethod
    def _agency(cls, value: str) -> str:
        if value != "*" and not TENANT_ID.match(value):
            raise ValueError(f"{value!r} is not an agency id (or '*' for province-wide)")
        return value

    @property
    def short_name(self) -> str:
        return self.name.split(".", 1)[0]


@dataclass(frozen=True)
class AssetMatch:
    entity: str
    matched_by: str  # "ip", "network 10.1.0.0/16" or "host name"
    asset: Asset

    def to_dict(self) -> dict[str, Any]:
        return {"entity": self.entity, "matched_by": self.matched_by, **self.asset.model_dump(mode="json")}


@dataclass
class AssetInventory:
    assets: list[Asset] = field(default_factory=list)

    def _visible(self, tenant: str) -> Iterable[Asset]:
        return (asset for asset in self.assets if asset.agency in (tenant, "*"))

    def by_ip(self, value: str, tenant: str) -> list[AssetMatch]:
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return []
        exact: list[AssetMatch] = []
        within: list[tuple[int, AssetMatch]] = []
        for asset in self._visible(tenant):
            if str(address) in asset.ips:
                exact.append(AssetMatch(value, "ip", asset))
                continue
            for text in asset.networks:
                network = ipaddress.ip_network(text)
                if address.version == network.version and address in network:
                    within.append((network.prefixlen, AssetMatch(value, f"network {text}", asset)))
                    break
        return exact + [match for _, match in sorted(within, key=lambda item: -item[0])]

    def by_host(self, value: str, tenant: str) -> list[AssetMatch]:
        name = value.strip().rstrip(".").lower()
        if not name:
            return []
        short = name.split(".", 1)[0]
        found = []
        for asset in self._visible(tenant):
            if asset.name == name or (("." not in name or "." not in asset.name) and asset.short_name == short):
                found.append(AssetMatch(value, "host name", asset))
        return found


_CACHE_LOCK = threading.Lock()
_CACHE: dict[tuple[tuple[str, int, int], ...], AssetInventory] = {}
CACHED_INVENTORIES = 8


def _stamp(paths: Sequence[Path]) -> tuple[tuple[str, int, int], ...] | None:
    try:
        return tuple((str(path), (stat := path.stat()).st_mtime_ns, stat.st_size) for path in paths)
    except OSError:  # missing or unreadable: loading reports it
        return None


def load_inventory(paths: Sequence[Path]) -> AssetInventory:
    """Every asset of these YAML/CSV files; one :class:`ConfigError` listing every bad entry.

    Kept while the files are unchanged (same modification time and size): every
    ``enrich_assets`` step loads it, and parsing and validating a few hundred hosts took most
    of a run's time (session 22's profile). Callers only read it."""
    stamp = _stamp(paths)
    with _CACHE_LOCK:
        cached = _CACHE.get(stamp) if stamp is not None else None
    if cached is not None:
        return cached
    inventory = _load(paths)
    if stamp is not None:
        with _CACHE_LOCK:
            if len(_CACHE) >= CACHED_INVENTORIES:
                _CACHE.clear()
            _CACHE[stamp] = inventory
    return inventory


def _load(paths: Sequence[Path]) -> AssetInventory:
    assets: list[Asset] = []
    problems: list[str] = []
    for path in paths:
        rows = _csv_rows(path, problems) if path.suffix.lower() == ".csv" else _yaml_rows(path, problems)
        for where, row in rows:
            try:
                assets.append(Asset.model_validate(row))
            except ValidationError as exc:
                for error in exc.errors():
                    location = ".".join(str(part) for part in error["loc"])
                    problems.append(f"{where}.{location}: {error['msg']}" if location else f"{where}: {error['msg']}")
    if problems:
        raise ConfigError(
            f"{len(problems)} problem(s) in the asset inventory:\n  " + "\n  ".join(problems),
            where="playbooks.assets.paths",
            hint="fix each entry named above",
        )
    return AssetInventory(assets)


def _yaml_rows(path: Path, problems: list[str]) -> list[tuple[str, Any]]:
    data = read_config_file(path, what="asset inventory")
    items = data.get("assets") if isinstance(data, dict) else data
    if not isinstance(items, list):
        problems.append(f"{path}: expected a list of hosts (or 'assets:' with one)")
        return []
    return [(f"{path}: assets[{number}]", item) for number, item in enumerate(items)]


def _csv_rows(path: Path, problems: list[str]) -> list[tuple[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot read: {exc}")
        return []
    reader = csv.DictReader(text.splitlines())
    unknown = [name for name in reader.fieldnames or () if name not in CSV_COLUMNS]
    if unknown or "name" not in (reader.fieldnames or ()):
        problems.append(f"{path}:1: the header must name columns of {','.join(CSV_COLUMNS)} (unknown: {unknown})")
        return []
    rows: list[tuple[str, Any]] = []
    for row in reader:
        values: dict[str, Any] = {key: value.strip() for key, value in row.items() if key and value and value.strip()}
        for key in ("ips", "networks"):
            if key in values:
                values[key] = [part for part in SPLIT.split(values[key]) if part]
        rows.append((f"{path}:{reader.line_num}", values))
    return rows


__all__ = ["Asset", "AssetInventory", "AssetMatch", "Criticality", "load_inventory"]
