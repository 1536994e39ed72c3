"""Enrich actions: ``enrich_assets`` (the asset inventory) and ``enrich_intel`` (threat-intel
lists). Both only read, so both are idempotent and behave the same in dry-run.

Entities come from the alert's ``entities`` (``source.ip``, ``destination.ip``, ``host.name``, …)
and/or the step's own lists. Only the run's agency's hosts and lists, and the province-wide ones,
are consulted: another agency's inventory or lists never show in a run.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from intel import lists
from intel.lookup import DOMAIN_FIELDS, HASH_FIELDS, IP_FIELDS, URL_FIELDS, IntelIndex
from playbooks.actions.base import Action, ActionContext, ActionResult, register
from playbooks.assets import load_inventory
from soc_core.store import Store

HOST_FIELDS = ("host.name", "host.hostname", "related.hosts", "destination.domain", "source.domain")
MAX_VALUES = 200


def _entity_values(alert: Mapping[str, Any] | None, fields: Iterable[str]) -> list[str]:
    entities = (alert or {}).get("entities") or {}
    found: list[str] = []
    for name in fields:
        value = entities.get(name) if isinstance(entities, Mapping) else None
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item and item not in found:
                found.append(item)
    return found


class EnrichAssetsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alert: dict[str, Any] | None = None  # the alert document: its entities are looked up
    ips: list[str] = Field(default_factory=list, max_length=MAX_VALUES)
    hosts: list[str] = Field(default_factory=list, max_length=MAX_VALUES)


@register
class EnrichAssets(Action[EnrichAssetsParams]):
    """The inventory's hosts behind the alert's addresses and host names."""

    name: ClassVar[str] = "enrich_assets"
    Params: ClassVar[type[BaseModel]] = EnrichAssetsParams
    idempotent: ClassVar[bool] = True

    def run(self, ctx: ActionContext, params: EnrichAssetsParams) -> ActionResult:
        inventory = load_inventory(ctx.settings.playbooks.assets.paths)
        ips = list(dict.fromkeys([*_entity_values(params.alert, IP_FIELDS), *params.ips]))[:MAX_VALUES]
        hosts = list(dict.fromkeys([*_entity_values(params.alert, HOST_FIELDS), *params.hosts]))[:MAX_VALUES]
        matches = [match for ip in ips for match in inventory.by_ip(ip, ctx.tenant)]
        matches += [match for host in hosts for match in inventory.by_host(host, ctx.tenant)]
        found = {match.entity for match in matches}
        order = {"critical": 0, "high": 1, "medium": 2, "low": 3}
        top = min((match.asset.criticality for match in matches), key=order.__getitem__, default=None)
        return ActionResult(
            output={
                "assets": [match.to_dict() for match in matches],
                "unmatched": [value for value in [*ips, *hosts] if value not in found],
                "criticality": top,
            }
        )


class _IndexCache:
    """One lookup per store, rebuilt when the lists' generation moves (the engine has its own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, tuple[str | None, IntelIndex]] = {}

    def index(self, store: Store) -> IntelIndex:
        token = lists.generation(store)
        with self._lock:
            held = self._held.get(store.location)
            if held is not None and held[0] == token:
                return held[1]
        index = lists.load_index(store)
        with self._lock:
            self._held[store.location] = (token, index)
        return index


INDEXES = _IndexCache()


class EnrichIntelParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alert: dict[str, Any] | None = None
    ips: list[str] = Field(default_factory=list, max_length=MAX_VALUES)
    domains: list[str] = Field(default_factory=list, max_length=MAX_VALUES)
    urls: list[str] = Field(default_factory=list, max_length=MAX_VALUES)
    hashes: list[str] = Field(default_factory=list, max_length=MAX_VALUES)


@register
class EnrichIntel(Action[EnrichIntelParams]):
    """Threat-intel hits for the alert's entities: list, source, first seen, confidence."""

    name: ClassVar[str] = "enrich_intel"
    Params: ClassVar[type[BaseModel]] = EnrichIntelParams
    idempotent: ClassVar[bool] = True

    def run(self, ctx: ActionContext, params: EnrichIntelParams) -> ActionResult:
        index = INDEXES.index(ctx.store)
        wanted = {
            "ip": [*_entity_values(params.alert, IP_FIELDS), *params.ips],
            "domain": [*_entity_values(params.alert, DOMAIN_FIELDS), *params.domains],
            "url": [*_entity_values(params.alert, URL_FIELDS), *params.urls],
            "hash": [*_entity_values(params.alert, HASH_FIELDS), *params.hashes],
        }
        hits: list[dict[str, Any]] = []
        checked = 0
        for kind, values in wanted.items():
            for value in list(dict.fromkeys(values))[:MAX_VALUES]:
                checked += 1
                hits.extend(hit.to_dict() for hit in index.lookup(kind, value, ctx.tenant))
        top = max((hit["confidence"] for hit in hits), default=None)
        return ActionResult(output={"hits": hits, "checked": checked, "max_confidence": top})


__all__ = ["EnrichAssets", "EnrichAssetsParams", "EnrichIntel", "EnrichIntelParams"]
