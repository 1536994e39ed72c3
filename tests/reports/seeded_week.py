"""A seeded ISO week 2026-W48 (Asia/Ho_Chi_Minh, UTC+7) with known counts, written through the
product's own write paths: the engine's alert documents (``detections.alerts.new_alert``), the
triage core (``apply_change``), the case service, sensor heartbeats and ``add_events``.

Week W48 runs 2026-11-22T17:00Z (Monday 00:00 local) to 2026-11-29T17:00Z. Every expected
number of ``tests/reports/test_s13m_weekly.py`` follows from the tables below.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from detections.alerts import Detection, RuleMeta, new_alert
from soc_api.services import sensors as sensor_service
from soc_api.services.accounts import add_tenant
from soc_core.auth import Membership
from soc_core.events import format_timestamp, make_event
from soc_core.store import Store
from workflow import cases as case_service
from workflow.alerts import apply_change
from workflow.principals import Actor, Principal

NOW = datetime(2026, 12, 1, tzinfo=UTC)  # the report is made after the week
ADMIN = Actor(Principal(id="lead", name="lead", kind="user", memberships=(Membership("*", "admin"),)))

RULES = {
    "ssh-bf": RuleMeta("ssh-bf", "SSH Brute Force", "1", "critical", ("attack.credential_access", "attack.t1110.001")),
    "web-sqli": RuleMeta("web-sqli", "SQL Injection", "1", "high", ("attack.initial-access", "attack.t1190")),
    "port-scan": RuleMeta("port-scan", "Port Scan", "1", "medium", ("attack.discovery", "attack.t1046")),
    "dns-odd": RuleMeta("dns-odd", "Odd DNS", "1", "informational", ()),
    "ransom": RuleMeta("health-only-rule", "Ransomware Note", "1", "critical", ("attack.impact", "attack.t1486")),
}


@dataclass(frozen=True)
class SeedAlert:
    name: str
    tenant: str
    rule: str
    level: str
    created: str
    entities: dict[str, list[str]]
    ack_after: int | None = None  # seconds after creation
    close_after: int | None = None
    close_as: str = "resolved"


ALERTS = [
    # police, W48 (local day in the comment)
    SeedAlert("P1", "police", "ssh-bf", "critical", "2026-11-22T17:00:00.000Z",  # Mon 00:00, first instant
              {"source.ip": ["203.0.113.5"], "host.name": ["web-01"]}, 600, 10_800),
    SeedAlert("P2", "police", "ssh-bf", "critical", "2026-11-24T03:00:00.000Z",  # Tue: both SLAs missed
              {"source.ip": ["203.0.113.5"], "host.name": ["web-01"]}, 1_200, 18_000),
    SeedAlert("P3", "police", "web-sqli", "high", "2026-11-25T05:00:00.000Z",  # Wed: a false positive
              {"source.ip": ["198.51.100.7"], "destination.ip": ["10.0.0.80"]}, 1_800, 7_200, "false_positive"),
    SeedAlert("P4", "police", "web-sqli", "high", "2026-11-29T16:59:59.999Z",  # Sun 23:59:59.999, last instant
              {"source.ip": ["198.51.100.7"], "destination.ip": ["10.0.0.80"]}),
    SeedAlert("P5", "police", "port-scan", "medium", "2026-11-26T02:00:00.000Z",  # Thu: never answered
              {"source.ip": ["10.0.0.99"], "host.name": ["db-01"]}),
    SeedAlert("P6", "police", "port-scan", "low", "2026-11-27T10:00:00.000Z",  # Fri: closed after the week
              {"source.ip": ["10.0.0.99"], "host.name": ["db-01"]}, 3_600, 259_200, "false_positive"),
    # police, W47
    SeedAlert("P7", "police", "dns-odd", "informational", "2026-11-22T16:59:59.999Z", {"host.name": ["dns-01"]}),
    SeedAlert("P8", "police", "web-sqli", "high", "2026-11-18T03:00:00.000Z",  # closed in W48
              {"source.ip": ["198.51.100.8"]}, 7_200, 432_000),
    # health, W48: values only health has
    SeedAlert("H1", "health", "ransom", "critical", "2026-11-25T00:00:00.000Z",
              {"source.ip": ["192.0.2.66"], "host.name": ["his-db"]}, 300, 3_600),
    SeedAlert("H2", "health", "web-sqli", "high", "2026-11-29T10:00:00.000Z", {"source.ip": ["192.0.2.77"]}),
]  # fmt: skip

CASES = [
    # id, tenant, created, closed, classification
    ("C1", "police", "2026-11-20T01:00:00.000Z", "2026-11-24T01:00:00.000Z", "false_positive"),
    ("C2", "police", "2026-11-24T04:00:00.000Z", None, None),
    ("C3", "police", "2026-11-25T06:00:00.000Z", "2026-11-26T06:00:00.000Z", "true_positive"),
    ("C4", "police", "2026-11-10T00:00:00.000Z", None, None),
    ("HC1", "health", "2026-11-26T00:00:00.000Z", None, None),
]

RUNS = [
    # tenant, playbook, status, created
    ("police", "ssh-bruteforce", "succeeded", "2026-11-24T03:05:00.000Z"),
    ("police", "ssh-bruteforce", "succeeded", "2026-11-22T17:05:00.000Z"),
    ("police", "web-attack", "failed", "2026-11-25T05:05:00.000Z"),
    ("police", "web-attack", "succeeded", "2026-11-18T03:05:00.000Z"),  # W47
    ("health", "ioc-hit", "succeeded", "2026-11-25T00:05:00.000Z"),
]
CONTAINMENTS = [
    ("police", "203.0.113.5", "2026-11-24T03:10:00.000Z"),
    ("health", "192.0.2.66", "2026-11-25T00:10:00.000Z"),
]

SENSORS = {
    # name: tenant, kind, created
    "net-1": ("police", "network", "2026-11-27T17:00:00.000Z"),  # Sat 00:00: 48 h of the week
    "log-1": ("police", "log", "2026-11-28T17:00:00.000Z"),  # Sun 00:00: 24 h of the week
    "hlog-1": ("health", "log", "2026-11-01T00:00:00.000Z"),  # never sends a heartbeat
}


def at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def later(stamp: str, seconds: int) -> str:
    return format_timestamp(at(stamp) + timedelta(seconds=seconds))


class Clock:
    """The services' clock, set by the seeding."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now

    @contextmanager
    def at(self, moment: datetime) -> Iterator[None]:
        self.now = moment
        yield


def _alert(store: Store, seed: SeedAlert) -> str:
    rule = RULES[seed.rule]
    detection = Detection(
        rule=RuleMeta(rule.id, rule.name, rule.version, seed.level, rule.tags),
        tenant=seed.tenant,
        group={"seed": seed.name},
        event_ids=[f"e-{seed.name}"],
        count=1,
        first_seen=seed.created,
        last_seen=seed.created,
        entities=seed.entities,
    )
    body = new_alert(detection, now=seed.created)
    doc = store.create_doc("alerts", body, doc_id=body["id"])
    current: dict[str, Any] = doc.body
    if seed.ack_after is not None:
        current = apply_change(current, actor="lead", status="acknowledged", now=later(seed.created, seed.ack_after))
        doc = store.update_doc("alerts", doc.id, current, version=doc.version)
    if seed.close_after is not None:
        current = apply_change(current, actor="lead", status=seed.close_as, now=later(seed.created, seed.close_after))
        doc = store.update_doc("alerts", doc.id, current, version=doc.version)
    return doc.id


def _events(store: Store, sensor_ids: dict[str, str]) -> None:
    events = []

    def event(tenant: str, observer: str, stamp: str, number: int, *, through_api: str | None = None) -> None:
        made = make_event(
            tenant=tenant,
            dataset="system.auth",
            sensor_id=observer,
            source="/var/log/auth.log",
            position=number,
            raw=f"{observer} {number}".encode(),
            timestamp=at(stamp),
            fields={"message": f"line {number}"},
        )
        if through_api is not None:
            made["observer.id"] = through_api  # as /api/ingest stores it
        events.append(made)

    for n in range(4):  # log-1 (writes to the store itself: observer.name): Thu
        event("police", sensor_ids["log-1"], f"2026-11-26T0{n}:00:00.000Z", n)
    for n in range(3):  # … and in the week's last day
        event("police", sensor_ids["log-1"], f"2026-11-29T1{n}:00:00.000Z", 10 + n)
    for n in range(2):  # … and the week before
        event("police", sensor_ids["log-1"], f"2026-11-20T0{n}:00:00.000Z", 20 + n)
    for n in range(5):  # net-1, through the API (observer.id; its own name differs): Wed
        event("police", "netsensor-conf", f"2026-11-25T0{n}:00:00.000Z", 30 + n, through_api=sensor_ids["net-1"])
    for n in range(3):  # hlog-1
        event("health", sensor_ids["hlog-1"], f"2026-11-25T0{n}:30:00.000Z", 40 + n)
    result = store.add_events(events)
    assert result.created == len(events), result.items


def _sensors(store: Store, clock: Clock) -> dict[str, str]:
    ids = {}
    for name, (tenant, kind, created) in SENSORS.items():
        body = {"tenant": tenant, "name": name, "kind": kind, "datasets": None, "created_at": created}
        ids[name] = store.create_doc("sensors", {**body, "last_seen": None, "health": {}}, doc_id=f"s-{name}").id
    # net-1: a heartbeat every 2 hours for 36 hours from Sat 00:10 local, then silence; capture
    # counters grow by 1000 packets and 10 drops each time (loss 1 %)
    for beat in range(18):
        with clock.at(at("2026-11-27T17:10:00.000Z") + timedelta(hours=2 * beat)):
            counters = {"kernel_received_total": 1000 * (beat + 1), "kernel_dropped_total": 10 * (beat + 1)}
            sensor_service.heartbeat(
                store, sensor_id=ids["net-1"], tenant="police", counters=counters, run_id="run-1", interval_seconds=7200
            )
    # log-1: every 2 hours of Sunday, the last one 10 minutes before the week's end
    for beat in range(12):
        with clock.at(at("2026-11-28T18:50:00.000Z") + timedelta(hours=2 * beat)):
            sensor_service.heartbeat(
                store, sensor_id=ids["log-1"], tenant="police", counters={}, run_id="run-1", interval_seconds=7200
            )
    return ids


def seed_week(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Write the whole seeded week into ``store``."""
    clock = Clock()
    monkeypatch.setattr(case_service, "utcnow", clock)
    monkeypatch.setattr(sensor_service, "utcnow", clock)
    add_tenant(store, tenant_id="police", name="Công an tỉnh")
    add_tenant(store, tenant_id="health", name="Sở Y tế")
    for seed in ALERTS:
        _alert(store, seed)
    for case_id, tenant, created, closed, classification in CASES:
        doc = store.create_doc(
            "cases",
            {"tenant": tenant, "title": case_id, "status": "open", "classification": None, "alert_ids": [],
             "timeline": [], "created_at": created, "updated_at": created},
            doc_id=case_id,
        )  # fmt: skip
        if closed is not None:
            with clock.at(at(closed)):
                case_service.update_case(
                    store,
                    case_id=case_id,
                    version=doc.version,
                    scope=None,
                    actor=ADMIN,
                    status="closed",
                    classification=classification,
                )
    for number, (tenant, playbook, status, created) in enumerate(RUNS):
        store.create_doc(
            "playbook_runs",
            {"tenant": tenant, "playbook": playbook, "status": status, "created_at": created, "steps": []},
            doc_id=f"run-{number}",
        )
    for number, (tenant, address, created) in enumerate(CONTAINMENTS):
        store.create_doc(
            "containment",
            {"tenant": tenant, "address": address, "target": "local", "status": "active", "created_at": created},
            doc_id=f"block-{number}",
        )
    _events(store, _sensors(store, clock))
    store.refresh()


__all__ = ["NOW", "seed_week"]
