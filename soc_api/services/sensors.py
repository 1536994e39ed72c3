"""Sensors: registration (which issues the sensor's API key), heartbeats and health, ingest.

A sensor's tenant is fixed by its key. Events it sends through the API are stored under that
tenant whatever they say, in whatever shape (:mod:`soc_core.tenant_claims`); a mismatch is
tagged on the event, counted and written to the audit trail (scenarios T4, H10).
Their datasets and timestamps are brought within the bounds (:mod:`soc_core.bounds`), with the
sensor's own list of datasets, given when it is registered (scenario H11).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from soc_api.services import accounts, apikeys
from soc_core.bounds import EventBounds
from soc_core.datasets import KNOWN_DATASETS
from soc_core.errors import Conflict, InvalidInput, NotFound, NotVisible
from soc_core.events import event_id, format_timestamp, parse_timestamp, utcnow
from soc_core.store import BulkResult, Doc, Store
from soc_core.tenant_claims import assign_tenant
from workflow import audit
from workflow.principals import Actor

OFFLINE_AFTER = timedelta(minutes=3)
LOSS_THRESHOLD = 0.10
UPTIME_KIND = "sensor_uptime"
DEFAULT_HEARTBEAT_SECONDS = 60.0  # sensors.config.HealthConfig.interval's default
HOUR_SECONDS = 3600


def register_sensor(
    store: Store,
    *,
    name: str,
    tenant: str,
    kind: str,
    actor: Actor,
    datasets: Sequence[str] | None = None,
    allowed: frozenset[str] = KNOWN_DATASETS,
) -> tuple[Doc, str]:
    """Create the sensor and its key (returned once). ``datasets`` (each one of ``allowed``)
    are the only ones its events keep; ``None`` means all of ``allowed``, as they are then."""
    if datasets is not None:
        strange = sorted(set(datasets) - allowed)
        if strange:
            raise InvalidInput(  # the API shows only the message: it says what to do too
                f"datasets: {strange} are not known datasets; name those the sensors emit "
                "(soc_core/datasets.py), or add yours to the configuration's store.extra_datasets"
            )
        datasets = sorted(set(datasets))
    if not accounts.tenant_exists(store, tenant):
        raise NotFound(f"no tenant {tenant!r}")
    # the person registering it owns its key (through an integration key: that key's owner)
    owner = apikeys.check_owner(store, owner=actor.principal.owner or actor.principal.id, tenant=tenant, role="sensor")
    sensor_id = uuid.uuid4().hex[:16]
    now = format_timestamp(utcnow())
    doc = store.create_doc(
        "sensors",
        {
            "tenant": tenant,
            "name": name,
            "kind": kind,
            "datasets": datasets,
            "created_at": now,
            "last_seen": None,
            "health": {},
        },
        doc_id=sensor_id,
    )
    _, key = apikeys.create_api_key(
        store,
        name=f"sensor {name}",
        tenant=tenant,
        role="sensor",
        owner=owner,
        sensor_id=sensor_id,
        caller=apikeys.Caller(actor.principal.id, actor.request_id, actor.source_ip),
    )
    audit.record(
        store,
        actor=actor.principal.id,
        action="sensor.register",
        tenant=tenant,
        target=f"sensors/{sensor_id}",
        after={"name": name, "kind": kind, "datasets": datasets},
        request_id=actor.request_id,
        source_ip=actor.source_ip,
    )
    return doc, key


def sensor_status(body: Mapping[str, Any], *, now_iso: str | None = None) -> str:
    """online, degraded (capture loss or delivery trouble), offline (no heartbeat), or never_seen."""
    if not body.get("last_seen"):
        return "never_seen"
    now = parse_timestamp(now_iso) if now_iso else utcnow()
    if now - parse_timestamp(body["last_seen"]) > OFFLINE_AFTER:
        return "offline"
    return "degraded" if body.get("health", {}).get("degraded") else "online"


def heartbeat(
    store: Store,
    *,
    sensor_id: str,
    tenant: str,
    counters: Mapping[str, int],
    run_id: str,
    problem: str | None = None,
    interval_seconds: float | None = None,
) -> Doc:
    """Record the sensor's counters; loss above the threshold, store failures or a delivery
    ``problem`` the sensor reports mark it degraded, and ``health.reasons`` say which.

    Each heartbeat is also counted in the sensor's hour (:func:`record_beat`), for uptime
    reports; ``interval_seconds`` is how often the sensor sends them."""
    for _ in range(10):
        doc = store.get_doc("sensors", sensor_id)
        if doc.body.get("tenant") != tenant:
            raise NotVisible("no such sensor", target=f"sensors/{sensor_id}", owner=doc.body.get("tenant"))
        received = int(counters.get("kernel_received", 0)) + int(counters.get("kernel_dropped", 0))
        dropped = int(counters.get("kernel_dropped", 0)) + int(counters.get("dropped", 0))
        loss = dropped / received if received else 0.0
        reasons = []
        if loss > LOSS_THRESHOLD:
            reasons.append(f"capture loss {loss:.1%}")
        if int(counters.get("store_failures", 0)) > 0:
            reasons.append(f"{int(counters['store_failures'])} failed store requests this run")
        if problem:
            reasons.append(problem)
        health = {
            "counters": {k: int(v) for k, v in counters.items()},
            "run_id": run_id,
            "loss_ratio": round(loss, 4),
            "degraded": bool(reasons),
            "reasons": reasons,
            "problem": problem,
        }
        previous_run = doc.body.get("health", {}).get("run_id")
        body = {**doc.body, "last_seen": format_timestamp(utcnow()), "health": health}
        if previous_run and previous_run != run_id:
            body["restarts"] = int(doc.body.get("restarts", 0)) + 1
        try:
            updated = store.update_doc("sensors", sensor_id, body, version=doc.version)
        except Conflict:
            continue
        before = doc.body.get("health") or {}
        same_run = before.get("run_id") == run_id
        record_beat(
            store,
            sensor_id=sensor_id,
            tenant=tenant,
            at=parse_timestamp(body["last_seen"]),
            interval_seconds=interval_seconds or DEFAULT_HEARTBEAT_SECONDS,
            received=_growth(counters, before.get("counters") or {}, "kernel_received_total", same_run),
            dropped=_growth(counters, before.get("counters") or {}, "kernel_dropped_total", same_run),
        )
        return updated
    raise Conflict("sensor record kept changing", where=f"sensors/{sensor_id}", hint="send the heartbeat again")


def _growth(now: Mapping[str, int], before: Mapping[str, Any], name: str, same_run: bool) -> int:
    """How much a run total grew since the previous heartbeat (a new run starts from 0)."""
    current = int(now.get(name, 0))
    return max(0, current - int(before.get(name, 0))) if same_run else current


def record_beat(
    store: Store,
    *,
    sensor_id: str,
    tenant: str,
    at: datetime,
    interval_seconds: float,
    received: int = 0,
    dropped: int = 0,
) -> Doc:
    """Count one heartbeat in its sensor's hour: ``sensor_uptime/<sensor>-<UTC hour>`` holds the
    beats, the seconds they vouch for (one interval each; at most an hour, or one interval if longer), the capture
    counters' growth and the last beat (epoch ms). Reports sum these with the store's
    aggregations; one small document per sensor and hour, whatever the heartbeat rate."""
    hour = at.replace(minute=0, second=0, microsecond=0)
    doc_id = f"{sensor_id}-{hour:%Y%m%d%H}"
    for _ in range(10):
        try:
            doc: Doc | None = store.get_doc(UPTIME_KIND, doc_id)
        except NotFound:
            doc = None
        old = doc.body if doc is not None else {}
        body = {
            "tenant": tenant,
            "sensor_id": sensor_id,
            "hour": format_timestamp(hour),
            "beats": int(old.get("beats", 0)) + 1,
            # a burst of beats (a restart loop) vouches for no more than the hour, or one interval
            "covered_seconds": min(
                max(HOUR_SECONDS, round(interval_seconds)), int(old.get("covered_seconds", 0)) + round(interval_seconds)
            ),
            "received": int(old.get("received", 0)) + received,
            "dropped": int(old.get("dropped", 0)) + dropped,
            "last_ms": max(int(old.get("last_ms", 0)), round(at.timestamp() * 1000)),
            "created_at": old.get("created_at") or format_timestamp(at),
        }
        try:
            if doc is None:
                return store.create_doc(UPTIME_KIND, body, doc_id=doc_id)
            return store.update_doc(UPTIME_KIND, doc_id, body, version=doc.version)
        except Conflict:
            continue  # another heartbeat of the sensor (a restart) at the same time: count again
    raise Conflict(
        "sensor uptime record kept changing", where=f"{UPTIME_KIND}/{doc_id}", hint="send the heartbeat again"
    )


def ingest(
    store: Store,
    *,
    events: Sequence[Mapping[str, Any]],
    tenant: str,
    sensor_id: str,
    actor: Actor,
    bounds: EventBounds | None = None,
) -> BulkResult:
    """Store events sent by a sensor under the sensor's tenant, within ``bounds`` narrowed to
    the sensor's datasets."""
    prepared = []
    mismatched = 0
    for original in events:
        event, claimed = assign_tenant(dict(original), tenant)
        if claimed:
            mismatched += 1
        event["observer.id"] = sensor_id
        if not event.get("event.id"):
            # the same content sent again gets the same id, so a retried request stores nothing twice
            raw = json.dumps(original, sort_keys=True, default=str).encode()
            event["event.id"] = event_id(sensor_id, "api", 0, raw)
        event.setdefault("event.kind", "event")
        prepared.append(event)
    if mismatched:
        audit.record(
            store,
            actor=actor.principal.id,
            action="ingest.tenant_mismatch",
            outcome="failure",
            tenant=tenant,
            target=f"sensors/{sensor_id}",
            details={"events": mismatched},
            request_id=actor.request_id,
            source_ip=actor.source_ip,
        )
    if bounds is not None:
        prepared = _sensor_bounds(store, sensor_id, bounds).apply_all(prepared)
    return store.add_events(prepared)


def _sensor_bounds(store: Store, sensor_id: str, bounds: EventBounds) -> EventBounds:
    try:
        datasets = store.get_doc("sensors", sensor_id).body.get("datasets")
    except NotFound:  # a key made for a sensor whose record is gone: the deployment's list
        return bounds
    return bounds.for_sensor(datasets)


__all__ = ["UPTIME_KIND", "heartbeat", "ingest", "record_beat", "register_sensor", "sensor_status"]
