"""Hunting: tenant-scoped event search."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from soc_api.deps import StoreDep, TenantScope
from soc_api.schemas import EventPage, Instant
from soc_core.query import MAX_PAGE_SIZE, event_query

router = APIRouter(prefix="/api/events", tags=["hunt"])


@router.get("", response_model=EventPage)
def search_events(
    store: StoreDep,
    scope: TenantScope,
    q: Annotated[str, Query(max_length=2000)] = "",
    start: Instant | None = None,
    end: Instant | None = None,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> EventPage:
    query = event_query(
        tenants=scope, province_wide=scope is None, query=q, start=start, end=end, size=size, cursor=cursor
    )
    page = store.search_events(query)
    return EventPage(items=page.items, next_cursor=page.next_cursor)
