"""Errors raised by the sensors, under the product's one error root.

::

    SocError
    └── SensorError        a sensor could not do what was asked
        └── SpoolError     the on-disk spool cannot persist a record (disk full, I/O error)
            └── SpoolFull  the spool reached its size limit under ``when_full: block``
"""

from __future__ import annotations

from soc_core.errors import SocError


class SensorError(SocError):
    """A sensor component failed."""


class SpoolError(SensorError):
    """The spool could not persist a record; nothing about that record was acknowledged."""


class SpoolFull(SpoolError):
    """The spool is at its size limit; the caller pauses its source and retries later."""


__all__ = ["SensorError", "SpoolError", "SpoolFull"]
