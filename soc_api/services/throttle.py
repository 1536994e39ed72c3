"""Login throttling: too many failures for a username or from an address → wait.

The answer is the same whether or not the user exists, so throttling reveals nothing about
accounts. State is in memory (one ``soc up`` process serves the API).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable


class LoginThrottle:
    def __init__(
        self,
        *,
        max_failures: int = 5,
        window_seconds: float = 900.0,
        per_address: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.per_address = per_address
        self.window = window_seconds
        self.clock = clock
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: str) -> int:
        entries = self._failures[key]
        horizon = self.clock() - self.window
        while entries and entries[0] < horizon:
            entries.popleft()
        return len(entries)

    def blocked(self, username: str, address: str | None) -> bool:
        with self._lock:
            if self._recent(f"user:{username.lower()}") >= self.max_failures:
                return True
            return address is not None and self._recent(f"addr:{address}") >= self.per_address

    def failed(self, username: str, address: str | None) -> None:
        now = self.clock()
        with self._lock:
            self._failures[f"user:{username.lower()}"].append(now)
            if address is not None:
                self._failures[f"addr:{address}"].append(now)
            if len(self._failures) > 100_000:  # bound memory under a spraying attack
                for key in [k for k in self._failures if not self._recent(k)]:
                    del self._failures[key]

    def succeeded(self, username: str, address: str | None) -> None:
        del address
        with self._lock:
            self._failures.pop(f"user:{username.lower()}", None)


__all__ = ["LoginThrottle"]
