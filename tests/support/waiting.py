"""The one way tests wait: on progress, not on a fixed deadline.

A loaded machine (load 6 on 2 cores) makes everything slow but still moving; a bug makes it stop.
So ``wait_for`` keeps waiting while the observed value keeps changing and fails only after
``stall`` seconds in which it did not change, saying what it waited for and what it last saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_UNSEEN = object()


def wait_for(
    observe: Callable[[], T],
    what: str,
    *,
    until: Callable[[T], object] = bool,
    stall: float = 60.0,
    poll: float = 0.05,
    ignore: tuple[type[Exception], ...] = (),
) -> T:
    """Call ``observe`` until ``until(value)`` holds and return that value.

    Any change in the observed value counts as progress and restarts the ``stall`` clock, so a
    count that keeps growing is waited on for as long as it grows. Exceptions of the ``ignore``
    types (e.g. a connection refused while a server starts) count as "not yet".
    """
    last: object = _UNSEEN
    since = time.monotonic()
    while True:
        try:
            value = observe()
        except ignore as error:
            seen: object = f"{type(error).__name__}: {error}"
        else:
            if until(value):
                return value
            seen = value
        if seen != last:
            last, since = seen, time.monotonic()
        elif time.monotonic() - since > stall:
            raise AssertionError(f"waited for {what}: no progress for {stall:g} s; last seen: {last!r}")
        time.sleep(poll)
