"""What an event says about its own tenant, and how that claim is overruled.

The tenant of an event is decided by the credential that delivered it (a sensor key, or the
sensor's configured tenant), never by the event. Yet an event can name a tenant in several
shapes that all land on the one field ``organization.id`` once Elasticsearch expands dotted
names and flattens arrays of objects: the flat key ``"organization.id"``, a nested
``{"organization": {"id": …}}``, ``{"organization": [{"id": …}]}``, a list of values, or any mix
(``{"organization": {"id.x": …}}`` too). Left in place, a nested claim would be stored next to
the real tenant and make the event look like another agency's.

:func:`assign_tenant` removes every such shape, writes the flat ``organization.id`` and, when
the event claimed anything else, records it: tag ``tenant_mismatch`` and the claimed values in
``labels.tenant_claimed``. The API's ingest applies it with the key's tenant; both stores apply
it in their write paths with the event's flat tenant, so no path stores a second one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from soc_core.events import TENANT_FIELD, Event, add_tag

MISMATCH_TAG: Final = "tenant_mismatch"
CLAIMED_LABEL: Final = "labels.tenant_claimed"
ROOT: Final = "organization"
_PATH: Final = ("organization", "id")
MAX_CLAIMS = 10  # values kept in the label; the rest only counts as "a mismatch"
MAX_CLAIM_TEXT = 100


class _Gone:
    """Marks a value removed because it was (part of) a tenant claim."""


_GONE: Final = _Gone()


def _leaves(value: Any, found: list[Any]) -> None:
    if isinstance(value, Mapping):
        for item in value.values():
            _leaves(item, found)
    elif isinstance(value, list | tuple):
        for item in value:
            _leaves(item, found)
    elif value is not None:
        found.append(value)


def _strip(path: list[str], value: Any, found: list[Any]) -> Any:
    """``value`` (found at ``path``) without the parts that land on ``organization.id``."""
    if path[:2] == list(_PATH):
        _leaves(value, found)
        return _GONE
    if path != [ROOT]:  # below anything but "organization" nothing can reach organization.id
        return value
    if isinstance(value, Mapping):
        kept = {}
        for key, item in value.items():
            stripped = _strip([*path, *str(key).split(".")], item, found)
            if stripped is not _GONE:
                kept[key] = stripped
        return kept if kept or not value else _GONE
    if isinstance(value, list):
        items = [stripped for item in value if (stripped := _strip(path, item, found)) is not _GONE]
        return items if items or not value else _GONE
    return value


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:MAX_CLAIM_TEXT]


def assign_tenant(event: Event, tenant: str) -> tuple[Event, list[str]]:
    """``event`` with ``tenant`` as its only ``organization.id``, and the other tenants it claimed.

    The event given is returned as it is (same object) when it names no tenant but ``tenant``
    in the flat field only: the common case costs one look at each key.
    """
    if event.get(TENANT_FIELD) == tenant and not any(key.startswith(ROOT) and key != TENANT_FIELD for key in event):
        return event, []
    found: list[Any] = []
    settled: Event = {}
    for key, value in event.items():
        stripped = _strip(key.split("."), value, found) if key.startswith(ROOT) else value
        if stripped is not _GONE:
            settled[key] = stripped
    settled[TENANT_FIELD] = tenant
    claimed: list[str] = []
    for value in found:
        text = _text(value)
        if value != tenant and text not in claimed:
            claimed.append(text)
    if claimed:
        add_tag(settled, MISMATCH_TAG)
        settled[CLAIMED_LABEL] = claimed[:MAX_CLAIMS]
    return settled, claimed


def as_stored(event: Event) -> Event:
    """The event as a store writes it: its flat ``organization.id`` (the one the sensor or the
    API set) is its only tenant. The same object when nothing changes; an event without a flat
    tenant string is left for validation to refuse."""
    tenant = event.get(TENANT_FIELD)
    return assign_tenant(event, tenant)[0] if isinstance(tenant, str) else event


__all__ = ["CLAIMED_LABEL", "MISMATCH_TAG", "as_stored", "assign_tenant"]
