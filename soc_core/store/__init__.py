"""Stores: one interface (:class:`Store`), two implementations, chosen by configuration."""

from __future__ import annotations

from soc_core.config import Settings
from soc_core.errors import ConfigError
from soc_core.store.base import Bucket, BulkResult, Doc, EventQuery, ItemResult, Page, Store
from soc_core.store.elasticsearch import ElasticsearchStore
from soc_core.store.sqlite import SqliteStore

STORES: dict[str, type[Store]] = {
    SqliteStore.name: SqliteStore,
    ElasticsearchStore.name: ElasticsearchStore,
}


def open_store(settings: Settings) -> Store:
    """The store the configuration names, not yet set up (call ``setup()``)."""
    backend = settings.store.backend
    if backend not in STORES:
        raise ConfigError(
            f"unknown store backend {backend!r}", where="store.backend", hint=f"use one of {sorted(STORES)}"
        )
    return STORES[backend].from_settings(settings)


__all__ = [
    "STORES",
    "Bucket",
    "BulkResult",
    "Doc",
    "ElasticsearchStore",
    "EventQuery",
    "ItemResult",
    "Page",
    "SqliteStore",
    "Store",
    "open_store",
]
