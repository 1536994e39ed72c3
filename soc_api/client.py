"""The client's address: the TCP peer, or what a trusted reverse proxy says in X-Forwarded-For.

Anyone can send ``X-Forwarded-For``, so it is read only when the peer is one of
``api.trusted_proxies``; then the hops are walked from the right (the nearest proxy appended
the last one) past every trusted proxy, and the first other address is the client. Without a
trusted peer the header is ignored: a throttled attacker cannot pick a fresh address per try.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from fastapi import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(items: Sequence[str]) -> list[Network]:
    return [ipaddress.ip_network(item, strict=False) for item in items]


def _trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def forwarded_client(peer: str | None, forwarded_for: Sequence[str], trusted_proxies: Sequence[str]) -> str | None:
    """The client's address for a request from ``peer`` carrying these X-Forwarded-For values."""
    networks = _networks(trusted_proxies)
    if peer is None or not networks or not _trusted(peer, networks):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    client = peer
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # a malformed hop: keep the last address a trusted proxy vouched for
        client = hop
        if not _trusted(hop, networks):
            break
    return client


def client_address(request: Request) -> str | None:
    peer = request.client.host if request.client else None
    trusted: list[str] = request.app.state.settings.api.trusted_proxies
    return forwarded_client(peer, request.headers.getlist("x-forwarded-for"), trusted)


__all__ = ["client_address", "forwarded_client"]
