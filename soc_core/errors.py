"""One error root for the whole product.

::

    SocError
    ├── ConfigError          bad configuration file, key or value (names the key / file:line)
    ├── InvalidInput         a caller's request that cannot be served as asked (bad cursor, field, query)
    │   └── QueryError       a hunting query that does not parse (soc_core.query; names the position)
    ├── StoreError           a store failed to do what was asked
    │   ├── StoreUnavailable the store cannot be reached (names the URL); retry later
    │   ├── NotFound         no such object (or not visible to the caller's tenants)
    │   │   └── NotVisible   it exists, in an agency the caller cannot see (answered as NotFound)
    │   └── Conflict         optimistic-concurrency check failed, or the id already exists
    ├── ParseError           input that could not be understood (names the source and position)
    ├── RuleError            a detection rule that cannot be loaded or compiled (file:line)
    │   └── UnsupportedConstruct  a Sigma construct a rule target does not run (detections.targets.walk)
    ├── AuthError            authentication or authorisation failed
    │   └── Throttled        too many failed sign-ins; wait (soc_api.services.accounts)
    ├── DevNodeError         the development Elasticsearch node could not be fetched or started
    ├── WorkflowError        a triage change the alert workflow forbids (workflow.alerts)
    ├── PlaybookError        a playbook that cannot be loaded (file:line), run or decided as asked
    │   ├── ActionError      a playbook step's action failed (playbooks.actions.base)
    │   │   └── OutboundRefused  a webhook target refused before connecting (playbooks.actions.outbound)
    │   ├── TemplateProblem  a template that does not compile or reaches for internals (playbooks.templating)
    │   └── ApprovalRefused  a person who may not decide a gate (playbooks.service)
    │       └── NothingToDecide  the step is not waiting for a decision (any more)
    ├── JobFailed        a scheduled job that failed part-way, with what it did (scheduling.registry)
    ├── WorkerError          a detection worker process failed or stopped answering (detections.workers)
    └── SensorError          a sensor could not do what was asked (sensors.errors)
        ├── SpoolError       the on-disk spool cannot persist a record
        │   └── SpoolFull    the spool reached its size limit under ``when_full: block``
        ├── DecodeError      a malformed frame, counted and skipped (sensors.packets.decode)
        ├── FramingError     a TCP syslog stream that cannot be framed (sensors.sources.syslog)
        └── CaptureError     a network capture that cannot start or read (sensors.sources.network)

Each error answers the API with the status in ``soc_api.errors.ANSWERS``.
Library exceptions are translated once, at the boundary: ``raise StoreUnavailable(...) from exc``.
"""

from __future__ import annotations


class SocError(Exception):
    """Root of every error Canh Gác raises on purpose."""

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" — {self.hint}"
        return text


class ConfigError(SocError):
    """A configuration file, key or value is wrong."""


class InvalidInput(SocError):
    """The caller asked for something malformed (a page cursor, a field name, a query)."""


class StoreError(SocError):
    """A store operation failed."""


class StoreUnavailable(StoreError):
    """The store cannot be reached; callers keep their data and retry later."""


class NotFound(StoreError):
    """No such object, or it belongs to a tenant the caller cannot see."""


class NotVisible(NotFound):
    """The object exists but belongs to another agency: callers get the same answer as for a
    missing object, and the API records the attempt as a security event."""

    def __init__(self, message: str, *, target: str, owner: str | None) -> None:
        super().__init__(message)
        self.target = target
        self.owner = owner


class Conflict(StoreError):
    """The object changed since it was read, or an object with that id exists already."""


class ParseError(SocError):
    """Input that could not be understood."""


class RuleError(SocError):
    """A detection rule that cannot be loaded or compiled."""


class AuthError(SocError):
    """Authentication or authorisation failed."""


class PlaybookError(SocError):
    """A playbook that cannot be loaded (names file:line), or a run, step or approval that
    cannot be handled as asked."""


class DevNodeError(SocError):
    """The development Elasticsearch node could not be fetched or started."""


__all__ = [
    "AuthError",
    "ConfigError",
    "Conflict",
    "DevNodeError",
    "InvalidInput",
    "NotFound",
    "NotVisible",
    "ParseError",
    "PlaybookError",
    "RuleError",
    "SocError",
    "StoreError",
    "StoreUnavailable",
]
