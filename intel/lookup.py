"""The indicator lookup: pure, built once per version of the lists, asked per event.

* addresses, domains, URLs and hashes are exact keys of one dict per scope (agency or ``*``);
* a domain also matches its subdomains (``evil.example`` lists ``a.b.evil.example``): the
  event's name is looked up label by label from the left, at most one probe per label;
* networks (CIDR) become sorted, non-overlapping ranges per scope and IP version (the sweep of
  every network's start and end), each holding the networks that cover it, so an address is
  one bisection however many networks overlap.

An event of agency ``T`` is matched against the lists of ``T`` and the province-wide ones only;
another agency's list never matches it.
"""

from __future__ import annotations

import ipaddress
import socket
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from intel.indicators import PROVINCE_WIDE, Indicator, normalise_domain, normalise_url

IP_FIELDS = (
    "source.ip",
    "destination.ip",
    "client.ip",
    "server.ip",
    "host.ip",
    "related.ip",
    "source.nat.ip",
    "destination.nat.ip",
)
DOMAIN_FIELDS = (
    "dns.question.name",
    "url.domain",
    "destination.domain",
    "source.domain",
    "client.domain",
    "server.domain",
    "tls.client.server_name",
)
URL_FIELDS = ("url.full", "url.original")
HASH_FIELDS = (
    "file.hash.md5",
    "file.hash.sha1",
    "file.hash.sha256",
    "process.hash.md5",
    "process.hash.sha1",
    "process.hash.sha256",
    "related.hash",
)
HASH_TYPES = {32: "md5", 40: "sha1", 64: "sha256"}
EVENT_FIELDS: tuple[tuple[str, str], ...] = (
    *((field, "ip") for field in IP_FIELDS),
    *((field, "domain") for field in DOMAIN_FIELDS),
    *((field, "url") for field in URL_FIELDS),
    *((field, "hash") for field in HASH_FIELDS),
)


@dataclass(frozen=True)
class ListedIndicators:
    """One list as loaded: its scope (agency or ``*``), name and indicators."""

    scope: str
    name: str
    indicators: Sequence[Indicator]


@dataclass(frozen=True)
class Listed:
    """An indicator on a list."""

    scope: str
    list: str
    indicator: Indicator


@dataclass(frozen=True)
class Hit:
    """An event value (``field`` may be empty for a value looked up by itself) that is on a list."""

    field: str
    value: str
    listed: Listed

    def to_dict(self) -> dict[str, Any]:
        indicator = self.listed.indicator
        return {
            "list": self.listed.list,
            "scope": self.listed.scope,
            "field": self.field,
            "value": self.value,
            "type": indicator.type,
            "indicator": indicator.value,
            "confidence": indicator.confidence,
            "source": indicator.source,
            "first_seen": indicator.first_seen,
            "last_seen": indicator.last_seen,
        }


def parse_address(text: str) -> tuple[int, int] | None:
    """(version, integer) of an IP address, or None; ``inet_pton`` is several times faster than
    ``ipaddress`` and this runs for every address field of every event."""
    try:
        if ":" in text:
            return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, text.split("%", 1)[0]), "big")
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except OSError:
        return None


class _Ranges:
    """Networks of one IP version as sorted elementary ranges: ``bounds[i]`` starts range i,
    which ends where range i+1 starts; ``covering[i]`` is what covers it."""

    def __init__(self, networks: Iterable[tuple[int, int, Listed]]) -> None:
        starts: dict[int, list[Listed]] = {}
        ends: dict[int, list[Listed]] = {}
        for first, last, listed in networks:
            starts.setdefault(first, []).append(listed)
            ends.setdefault(last + 1, []).append(listed)
        self.bounds = sorted(set(starts) | set(ends))
        active: dict[Listed, int] = {}
        covering: list[tuple[Listed, ...]] = []
        for bound in self.bounds:
            for listed in ends.get(bound, ()):
                active[listed] -= 1
                if not active[listed]:
                    del active[listed]
            for listed in starts.get(bound, ()):
                active[listed] = active.get(listed, 0) + 1
            covering.append(tuple(active))
        self.covering = covering

    def find(self, address: int) -> tuple[Listed, ...]:
        position = bisect_right(self.bounds, address) - 1
        return self.covering[position] if position >= 0 else ()


class _Scope:
    def __init__(self, lists: Iterable[ListedIndicators]) -> None:
        self.exact: dict[tuple[str, str], list[Listed]] = {}
        networks: dict[int, list[tuple[int, int, Listed]]] = {4: [], 6: []}
        for one in lists:
            for indicator in one.indicators:
                listed = Listed(one.scope, one.name, indicator)
                if indicator.type == "ip" and "/" in indicator.value:
                    network = ipaddress.ip_network(indicator.value)
                    networks[network.version].append(
                        (int(network.network_address), int(network.broadcast_address), listed)
                    )
                else:
                    self.exact.setdefault(indicator.key, []).append(listed)
        self.ranges = {version: _Ranges(found) for version, found in networks.items() if found}

    def ip(self, text: str, parsed: tuple[int, int] | None = None) -> list[Listed]:
        """Listings of an address: ``parsed`` is its (version, integer) when the caller has it."""
        found = list(self.exact.get(("ip", text), ()))
        if not found and ":" in text:  # IPv6 has many spellings; lists hold the canonical one
            try:
                found = list(self.exact.get(("ip", str(ipaddress.ip_address(text))), ()))
            except ValueError:
                return found
        if self.ranges:
            parsed = parsed or parse_address(text)
            if parsed is None:
                return found
            table = self.ranges.get(parsed[0])
            if table is not None:
                found.extend(table.find(parsed[1]))
        return found

    def domain(self, name: str) -> list[Listed]:
        found: list[Listed] = []
        labels = name.split(".")
        for start in range(len(labels) - 1):  # a bare top-level label is never a listed domain
            found.extend(self.exact.get(("domain", ".".join(labels[start:])), ()))
        return found

    def other(self, kind: str, value: str) -> list[Listed]:
        return list(self.exact.get((kind, value), ()))


class IntelIndex:
    """Every loaded list, by scope."""

    def __init__(self, lists: Iterable[ListedIndicators] = ()) -> None:
        by_scope: dict[str, list[ListedIndicators]] = {}
        for one in lists:
            by_scope.setdefault(one.scope, []).append(one)
        self.scopes = {scope: _Scope(found) for scope, found in by_scope.items()}
        self.size = sum(len(one.indicators) for found in by_scope.values() for one in found)

    def __bool__(self) -> bool:
        return self.size > 0

    def _visible(self, tenant: str) -> list[_Scope]:
        return [scope for name in (tenant, PROVINCE_WIDE) if (scope := self.scopes.get(name)) is not None]

    def match_event(self, event: Mapping[str, Any], tenant: str) -> list[Hit]:
        """Every listed value of the event that agency ``tenant`` may see, once per (value, list entry)."""
        scopes = self._visible(tenant)
        if not scopes:
            return []
        hits: dict[tuple[str, Listed], Hit] = {}
        ranged = any(scope.ranges for scope in scopes)
        for field, kind in EVENT_FIELDS:  # one pass, one dict lookup per field: this runs per event
            value = event.get(field)
            if value is None:
                continue
            for item in value if isinstance(value, list) else (value,):
                if isinstance(item, str) and item:
                    for listed in self._listed(kind, item, scopes, ranged):
                        hits.setdefault((item, listed), Hit(field, item, listed))
        return list(hits.values())

    @staticmethod
    def _listed(kind: str, value: str, scopes: list[_Scope], ranged: bool) -> list[Listed]:
        found: list[Listed] = []
        if kind == "ip":
            parsed = parse_address(value) if ranged else None
            for scope in scopes:
                found += scope.ip(value, parsed)
        elif kind == "domain":
            name = value.rstrip(".").lower()
            if not name.isascii():
                try:
                    name = normalise_domain(name)
                except ValueError:
                    return found
            for scope in scopes:
                found += scope.domain(name)
        elif kind == "url":
            if "://" not in value:
                return found  # a path alone (web access logs) names no URL we list
            try:
                url = normalise_url(value)
            except ValueError:
                return found
            for scope in scopes:
                found += scope.other("url", url)
        else:
            digest = value.lower()
            hash_type = HASH_TYPES.get(len(digest))
            if hash_type is not None:
                for scope in scopes:
                    found += scope.other(hash_type, digest)
        return found

    def lookup(self, kind: str, value: str, tenant: str) -> list[Hit]:
        """A value by itself (enrichment): ``kind`` is ip, domain, url or hash (others find nothing)."""
        found: list[Listed] = []
        for scope in self._visible(tenant):
            if kind == "ip":
                try:
                    found.extend(scope.ip(str(ipaddress.ip_address(value))))  # listed in canonical form
                except ValueError:
                    continue
            elif kind in ("domain", "url"):
                try:
                    normal = normalise_domain(value) if kind == "domain" else normalise_url(value)
                except ValueError:
                    continue
                found.extend(scope.domain(normal) if kind == "domain" else scope.other("url", normal))
            elif kind == "hash":
                found.extend(scope.other(HASH_TYPES.get(len(value), ""), value.lower()))
        return [Hit("", value, listed) for listed in dict.fromkeys(found)]


__all__ = ["DOMAIN_FIELDS", "HASH_FIELDS", "IP_FIELDS", "URL_FIELDS", "Hit", "IntelIndex", "Listed", "ListedIndicators"]
