"""Sensors: register (issues the key), heartbeat, list with status; bulk ingest for sensors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from soc_api.deps import CurrentPrincipal, SettingsDep, StoreDep, TenantScope
from soc_api.errors import ApiProblem
from soc_api.routes.alerts import actor_of
from soc_api.schemas import (
    Heartbeat,
    IngestItem,
    IngestRequest,
    IngestResult,
    SensorCreate,
    SensorCreated,
    SensorPage,
    SensorPublic,
)
from soc_api.services import sensors
from soc_core.bounds import EventBounds
from soc_core.datasets import allowed_datasets
from soc_core.errors import NotVisible
from soc_core.events import shape_problem
from soc_core.store import Doc
from workflow.principals import Principal

router = APIRouter(prefix="/api", tags=["sensors"])


def to_public(doc: Doc) -> SensorPublic:
    body = doc.body
    return SensorPublic(
        id=doc.id,
        tenant=body["tenant"],
        name=body["name"],
        kind=body["kind"],
        status=sensors.sensor_status(body),
        last_seen=body.get("last_seen"),
        restarts=int(body.get("restarts", 0)),
        health=body.get("health") or {},
        datasets=body.get("datasets"),
    )


def _sensor_identity(principal: Principal) -> tuple[str, str]:
    if principal.kind != "apikey" or not principal.sensor_id or len(principal.memberships) != 1:
        raise ApiProblem(403, "Forbidden", "only a sensor's API key may do this")
    return principal.sensor_id, principal.memberships[0].tenant


@router.post("/sensors", response_model=SensorCreated, status_code=201)
def register(
    body: SensorCreate,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    scope: TenantScope,
    principal: CurrentPrincipal,
) -> SensorCreated:
    if scope is not None and body.tenant not in scope:
        raise NotVisible("no such tenant", target=f"tenants/{body.tenant}", owner=body.tenant)
    doc, key = sensors.register_sensor(
        store,
        name=body.name,
        tenant=body.tenant,
        kind=body.kind,
        actor=actor_of(request, principal),
        datasets=body.datasets,
        allowed=allowed_datasets(settings.store.extra_datasets),
    )
    return SensorCreated(**to_public(doc).model_dump(), api_key=key)


@router.get("/sensors", response_model=SensorPage)
def list_sensors(
    store: StoreDep,
    scope: TenantScope,
    size: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> SensorPage:
    page = store.list_docs("sensors", tenants=scope, sort="created_at", size=size, cursor=cursor)
    return SensorPage(items=[to_public(d) for d in page.items], next_cursor=page.next_cursor)


@router.get("/sensors/datasets", response_model=list[str])
def list_datasets(settings: SettingsDep) -> list[str]:
    """The datasets events keep (known, or in store.extra_datasets): what ``datasets`` of a
    sensor may name. Any other is stored as ``unknown``."""
    return sorted(allowed_datasets(settings.store.extra_datasets))


@router.get("/sensors/{sensor_id}", response_model=SensorPublic)
def get_sensor(sensor_id: str, store: StoreDep, scope: TenantScope) -> SensorPublic:
    doc = store.get_doc("sensors", sensor_id)
    if scope is not None and doc.body.get("tenant") not in scope:
        raise NotVisible("no such sensor", target=f"sensors/{sensor_id}", owner=doc.body.get("tenant"))
    return to_public(doc)


@router.post("/sensors/heartbeat", response_model=SensorPublic)
def heartbeat(body: Heartbeat, store: StoreDep, principal: CurrentPrincipal) -> SensorPublic:
    """A sensor reports its counters (events in/out, spooled, dropped, kernel drops…) and
    why delivery fails, if it does."""
    sensor_id, tenant = _sensor_identity(principal)
    doc = sensors.heartbeat(
        store,
        sensor_id=sensor_id,
        tenant=tenant,
        counters=body.counters,
        run_id=body.run_id,
        problem=body.problem,
        interval_seconds=body.interval_seconds,
    )
    return to_public(doc)


@router.post("/ingest", response_model=IngestResult)
def ingest(
    body: IngestRequest, request: Request, store: StoreDep, settings: SettingsDep, principal: CurrentPrincipal
) -> IngestResult:
    """Bulk events from a sensor that cannot reach the store itself; the tenant comes from its key.

    An event over the size, field or depth limits (``api.limits.event_*``) is refused on its own,
    named by its index in ``events``; the rest of the batch is stored. A dataset the sensor may
    not send is stored as ``unknown``, a timestamp out of bounds as the ingest time (the values
    kept in ``labels.original_*``); an item with status ``retry`` was not stored now (its index
    is refused: shard limit, closed) and should be sent again."""
    sensor_id, tenant = _sensor_identity(principal)
    limits = settings.api.limits
    oversized: list[IngestItem] = []
    events = []
    for index, event in enumerate(body.events):
        problem = shape_problem(
            event, max_bytes=limits.event_bytes, max_fields=limits.event_fields, max_depth=limits.event_depth
        )
        if problem is None:
            events.append(event)
        else:
            given_id = event.get("event.id")
            given = given_id if isinstance(given_id, str) else ""
            oversized.append(IngestItem(index=index, id=given, status="rejected", reason=problem))
    result = sensors.ingest(
        store,
        events=events,
        tenant=tenant,
        sensor_id=sensor_id,
        actor=actor_of(request, principal),
        bounds=EventBounds.from_settings(settings.store),
    )
    rejected = [IngestItem(id=i.id, status=i.status, reason=i.reason) for i in result.items if not i.stored]
    return IngestResult(created=result.created, duplicates=result.duplicates, rejected=oversized + rejected)
