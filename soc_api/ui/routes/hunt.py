"""Hunting: a query string and a time range over the caller's events; values pivot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from soc_api.deps import StoreDep, TenantScope
from soc_api.ui.render import render
from soc_core.errors import InvalidInput
from soc_core.events import utcnow
from soc_core.query import event_query

router = APIRouter(prefix="/ui/hunt", include_in_schema=False)

RANGES = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
PAGE_SIZE = 50
COLUMNS = ("event.dataset", "host.name", "source.ip", "user.name", "event.outcome", "message")


def _instant(text: str, what: str) -> datetime | None:
    """``2026-11-20T10:00`` (UTC unless an offset is given) or empty."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidInput(f"{what}: not a date and time", hint="write it like 2026-11-20T10:00") from exc


@router.get("", response_class=HTMLResponse)
def hunt(
    request: Request,
    store: StoreDep,
    scope: TenantScope,
    q: Annotated[str, Query(max_length=2000)] = "",
    range: Annotated[str, Query(max_length=8)] = "24h",
    start: Annotated[str, Query(max_length=40)] = "",
    end: Annotated[str, Query(max_length=40)] = "",
    cursor: Annotated[str, Query(max_length=2000)] = "",
) -> HTMLResponse:
    params = {"q": q, "range": range if range in RANGES or range == "custom" else "24h", "start": start, "end": end}
    error = ""
    events: list[dict[str, object]] = []
    next_cursor = None
    try:
        if params["range"] == "custom":
            begin, until = _instant(start, "start"), _instant(end, "end")
        else:
            begin, until = utcnow() - RANGES[params["range"]], None
        query = event_query(
            tenants=scope,
            province_wide=scope is None,
            query=q,
            start=begin,
            end=until,
            size=PAGE_SIZE,
            cursor=cursor or None,
        )
        page = store.search_events(query)
        events, next_cursor = page.items, page.next_cursor
    except InvalidInput as exc:
        error = exc.render()
    return render(
        request,
        "hunt.html",
        status_code=400 if error else 200,
        params=params,
        ranges=(*RANGES, "custom"),
        events=events,
        next_cursor=next_cursor,
        error=error,
        columns=COLUMNS,
        show_tenant=scope is None or len(scope) > 1,
    )


__all__ = ["router"]
