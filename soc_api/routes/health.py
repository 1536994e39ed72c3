"""Liveness and store reachability (no data, no auth)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from soc_api.deps import StoreDep
from soc_core import __version__
from soc_core.errors import StoreUnavailable

router = APIRouter(prefix="/api", tags=["health"])


@router.get("/health")
def health(store: StoreDep) -> JSONResponse:
    try:
        store.ping()
    except StoreUnavailable:
        return JSONResponse({"status": "degraded", "store": "unreachable", "version": __version__}, status_code=503)
    return JSONResponse({"status": "ok", "store": store.name, "version": __version__})
