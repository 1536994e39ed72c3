"""Batching state with no I/O: feed items in, take batches out by count, bytes or age.

The caller owns the clock (``now`` is passed in) and the sending, so the rules are tested
without sleeping or sockets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from soc_core.errors import ConfigError

T = TypeVar("T")


@dataclass
class Batch(Generic[T]):
    items: list[T] = field(default_factory=list)
    size: int = 0
    started: float = 0.0

    def __len__(self) -> int:
        return len(self.items)


class Batcher(Generic[T]):
    """Collect items until ``max_items`` or ``max_bytes`` is reached or ``max_age`` passed.

    An item that would push a non-empty batch over ``max_bytes`` starts the next batch; an item
    bigger than ``max_bytes`` on its own travels alone.
    """

    def __init__(self, *, max_items: int = 500, max_bytes: int = 4 * 1024 * 1024, max_age: float = 1.0):
        if max_items < 1 or max_bytes < 1 or max_age < 0:
            raise ConfigError("batch limits must be positive (max_items, max_bytes, max_age)")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._current: Batch[T] = Batch()

    def __len__(self) -> int:
        return len(self._current)

    @property
    def room(self) -> int:
        """How many more items fit before the count limit."""
        return self.max_items - len(self._current)

    def add(self, item: T, size: int, now: float) -> list[Batch[T]]:
        """Add one item; return the batches that became full (zero, one or two)."""
        ready: list[Batch[T]] = []
        current = self._current
        if current.items and current.size + size > self.max_bytes:
            ready.append(self._take())
            current = self._current
        if not current.items:
            current.started = now
        current.items.append(item)
        current.size += size
        if len(current) >= self.max_items or current.size >= self.max_bytes:
            ready.append(self._take())
        return ready

    def due(self, now: float) -> bool:
        """The waiting batch is older than ``max_age``."""
        return bool(self._current.items) and now - self._current.started >= self.max_age

    def flush(self) -> Batch[T] | None:
        """Take whatever is waiting, ready or not."""
        return self._take() if self._current.items else None

    def _take(self) -> Batch[T]:
        batch, self._current = self._current, Batch()
        return batch


__all__ = ["Batch", "Batcher"]
