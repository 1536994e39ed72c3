"""Sign-in throttling that nobody can turn into a lock-out.

Two limits, both kept as ``throttle`` documents in the store so every API process shares them:

- per (account, address): the first ``free_failures`` failures cost nothing, then each further
  one makes that pair wait ``base·2^n`` seconds (capped at ``max_delay``). Someone guessing
  ``admin``'s password from one address slows only themselves; ``admin`` signing in from
  another address is not delayed at all.
- per address: at most ``address_failures`` failures in ``address_window`` seconds, over every
  account (a password spray), then that address waits for the window to end.

An IPv6 client is counted by its /64 (one host usually owns a whole /64). The answer is the same
whether or not the account exists, so throttling reveals nothing about accounts. Writes use the
store's optimistic concurrency, so two processes counting the same failure never lose one.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from soc_core.config import ThrottleSettings
from soc_core.errors import Conflict, NotFound
from soc_core.events import format_timestamp, utcnow
from soc_core.store import Store

KIND = "throttle"
_WRITE_ATTEMPTS = 8  # concurrent failures for the same key retry their read-modify-write


def address_key(address: str | None) -> str:
    """The unit an address is counted in: an IPv4 address, an IPv6 /64, or the raw text."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _doc_id(*parts: str) -> str:
    # document ids must be safe in every store; names and addresses are caller-chosen text
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class Wait:
    """Refused for now: try again after ``seconds``."""

    seconds: float

    @property
    def retry_after(self) -> int:
        return max(1, int(self.seconds + 0.999))


class LoginThrottle:
    def __init__(self, store: Store, settings: ThrottleSettings, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock  # wall time: several processes compare the same stored instants

    def _pair_id(self, username: str, address: str | None) -> str:
        return "pair-" + _doc_id(username.lower(), address_key(address))

    def _address_id(self, address: str | None) -> str:
        return "addr-" + _doc_id(address_key(address))

    def _get(self, doc_id: str) -> dict[str, Any]:
        try:
            return self.store.get_doc(KIND, doc_id).body
        except NotFound:
            return {}

    def check(self, username: str, address: str | None) -> Wait | None:
        """How long this (account, address) must wait before its next attempt, or None."""
        now = self.clock()
        pair = self._get(self._pair_id(username, address))
        waits = [float(pair.get("blocked_until", 0.0)) - now]
        per_address = self._get(self._address_id(address))
        window_end = float(per_address.get("window_start", 0.0)) + self.settings.address_window_seconds
        if window_end > now and int(per_address.get("failures", 0)) >= self.settings.address_failures:
            waits.append(window_end - now)
        longest = max(waits)
        return Wait(longest) if longest > 0 else None

    def failed(self, username: str, address: str | None) -> None:
        now = self.clock()
        self._update(self._pair_id(username, address), lambda body: self._pair_failed(body, now))
        self._update(self._address_id(address), lambda body: self._address_failed(body, now))

    def succeeded(self, username: str, address: str | None) -> None:
        """The pair starts afresh; the address's count stays (a spray may include a success)."""
        self.store.delete_doc(KIND, self._pair_id(username, address))

    def _pair_failed(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        settings = self.settings
        # a pair quiet for a whole maximum delay after its last failure or wait is forgiven
        quiet_since = max(float(body.get("blocked_until", 0.0)), float(body.get("last_failure", 0.0)))
        if now > quiet_since + settings.max_delay_seconds:
            body = {}
        failures = int(body.get("failures", 0)) + 1
        blocked_until = float(body.get("blocked_until", 0.0))
        over = failures - settings.free_failures
        if over > 0:
            delay = min(settings.base_delay_seconds * 2 ** min(over - 1, 30), settings.max_delay_seconds)
            blocked_until = now + delay
        return self._stamped(
            {"scope": "pair", "failures": failures, "blocked_until": blocked_until, "last_failure": now},
            now,
            blocked_until,
        )

    def _address_failed(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        start = float(body.get("window_start", 0.0))
        failures = int(body.get("failures", 0))
        if start + self.settings.address_window_seconds <= now:
            start, failures = now, 0
        end = start + self.settings.address_window_seconds
        return self._stamped({"scope": "address", "window_start": start, "failures": failures + 1}, now, end)

    def _stamped(self, body: dict[str, Any], now: float, until: float) -> dict[str, Any]:
        """``expires_at``: after it the document holds nothing a check would use (purged)."""
        forget = max(until, now) + self.settings.max_delay_seconds
        return {**body, "created_at": format_timestamp(utcnow()), "expires_at": _iso(forget)}

    def _update(self, doc_id: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        for _ in range(_WRITE_ATTEMPTS):
            try:
                doc = self.store.get_doc(KIND, doc_id)
            except NotFound:
                try:
                    self.store.create_doc(KIND, change({}), doc_id=doc_id)
                except Conflict:
                    continue  # another process created it first: count on top of theirs
                return
            try:
                self.store.update_doc(KIND, doc_id, change(dict(doc.body)), version=doc.version)
            except (Conflict, NotFound):
                continue
            return
        raise Conflict(f"{KIND}/{doc_id}: too many concurrent sign-in failures to count", hint="try again")


def _iso(seconds: float) -> str:
    return format_timestamp(datetime.fromtimestamp(seconds, UTC))


def purge_expired(store: Store, *, now: datetime | None = None) -> int:
    """Delete throttle documents that no longer hold back anyone; returns how many."""
    horizon = format_timestamp(now or utcnow())
    removed = 0
    while True:
        page = store.list_docs(KIND, sort="expires_at", descending=False, size=500)
        stale = [doc for doc in page.items if str(doc.body.get("expires_at", "")) < horizon]
        for doc in stale:
            store.delete_doc(KIND, doc.id)
        removed += len(stale)
        if len(stale) < len(page.items) or not page.next_cursor:
            return removed


__all__ = ["KIND", "LoginThrottle", "Wait", "address_key", "purge_expired"]
