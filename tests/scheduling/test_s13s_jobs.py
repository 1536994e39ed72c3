"""Item 3 of the scheduler brief: the jobs, on SQLite and on the real Elasticsearch node —
retention per dataset policy, sensor and log-source silence (one alert per episode), scheduled
hunts (alert ids deterministic per hunt and event), and the analysts' digest e-mailed to a real
local SMTP relay (aiosmtpd) in each recipient's language."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from detections.alerts import alert_doc_id, detection_from_event
from scheduling import runs
from scheduling.jobs import digest, hunts, retention, silence
from scheduling.registry import RunContext
from soc_api.services.jobs import job_registry
from soc_core.config import Settings
from soc_core.events import format_timestamp, make_event
from soc_core.query import event_query
from soc_core.store import Doc, Store
from tests.scheduling.support import relay

NOW = datetime.now(UTC)


@pytest.fixture(autouse=True)
def _now_at_the_test() -> None:
    """Times are relative to the test's start, not to the module's import: the jobs read the
    clock, and the full suite imports this module half an hour before it runs these tests (a
    sensor seen "10 minutes ago" at import was silent by then, and hunt events fell outside the
    hunt's window — the CI failures of 2026-12-06)."""
    global NOW  # noqa: PLW0603 - the module's helpers read it
    NOW = datetime.now(UTC)


def context(job_id: str) -> RunContext:
    return RunContext(job_id, "test-run", NOW, "manual", "test")


def event(tenant: str, dataset: str, age: timedelta, index: int, **fields: Any) -> dict[str, Any]:
    return make_event(
        tenant=tenant,
        dataset=dataset,
        sensor_id="s1",
        source=f"{dataset}.log",
        position=index,
        raw=f"{tenant}{dataset}{index}".encode(),
        timestamp=NOW - age,
        fields={"message": f"line {index}", **fields},
    )


def store_events(store: Store, events: list[dict[str, Any]]) -> None:
    result = store.add_events(events)
    assert result.created == len(events), result.items
    store.refresh()


def stored(store: Store) -> dict[str, int]:
    """Events left, per dataset."""
    query = event_query(tenants=None, province_wide=True)
    return {bucket.key: bucket.count for bucket in store.count_events(query, by="event.dataset")}


def alerts(store: Store, rule_id: str) -> list[Doc]:
    page = store.list_docs("alerts", size=1000)
    return [doc for doc in page.items if doc.body.get("rule.id") == rule_id]


# --- retention ---------------------------------------------------------------------------------


def test_s13s_retention_keeps_each_dataset_for_its_own_days(store: Store, tmp_path: Path) -> None:
    store_events(
        store,
        [
            event("police", "system.auth", timedelta(days=40), 1),  # past the default 30 days
            event("police", "system.auth", timedelta(days=10), 2),
            event("health", "network.flow", timedelta(days=10), 3),  # past its own 7 days
            event("health", "network.flow", timedelta(days=2), 4),
            event("health", "web.access", timedelta(days=20), 5),  # past its own 14 days
            event("health", "web.access", timedelta(days=45), 6),
        ],
    )
    settings = Settings(data_dir=tmp_path, retention={"days": 30, "datasets": {"network.flow": 7, "web.access": 14}})
    outcome = retention.run(store, settings, context("retention"))
    store.refresh()
    assert stored(store) == {"system.auth": 1, "network.flow": 1}
    # SQLite counts rows, Elasticsearch whole daily indices (one event per day here)
    assert outcome["events_removed"] == {"default": 1, "network.flow": 1, "web.access": 2}, outcome
    assert outcome["unit"] == ("indices" if store.name == "elasticsearch" else "events")


# --- silence -----------------------------------------------------------------------------------


def add_sensor(store: Store, sensor_id: str, *, kind: str, last_seen: datetime | None) -> None:
    store.create_doc(
        "sensors",
        {
            "tenant": "police",
            "name": f"sensor {sensor_id}",
            "kind": kind,
            "created_at": format_timestamp(NOW - timedelta(days=3)),
            "last_seen": format_timestamp(last_seen) if last_seen else None,
            "health": {},
        },
        doc_id=sensor_id,
    )


def beat(store: Store, sensor_id: str, at: datetime) -> None:
    doc = store.get_doc("sensors", sensor_id)
    store.update_doc("sensors", sensor_id, {**doc.body, "last_seen": format_timestamp(at)}, version=doc.version)


def test_s13s_a_silent_sensor_raises_one_alert_per_episode(store: Store, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, scheduler={"silence": {"sensor_minutes": 30, "sensor_kinds": {"network": 5}}}
    )
    add_sensor(store, "quiet", kind="logs", last_seen=NOW - timedelta(hours=2))
    add_sensor(store, "fresh", kind="logs", last_seen=NOW - timedelta(minutes=10))  # within 30 min
    add_sensor(store, "tap", kind="network", last_seen=NOW - timedelta(minutes=10))  # network: 5 min
    add_sensor(store, "new", kind="logs", last_seen=None)  # never seen: nothing was expected
    first = silence.run(store, settings, context("sensor-silence"))
    again = silence.run(store, settings, context("sensor-silence"))
    assert first["sensor_alerts"] == 2 and again["sensor_alerts"] == 0, (first, again)
    raised = alerts(store, silence.SENSOR_RULE)
    assert sorted(doc.body["group"]["observer.id"] for doc in raised) == ["quiet", "tap"]
    assert all(doc.body["tenant"] == "police" and doc.body["status"] == "new" for doc in raised)
    # it comes back (no new alert), then goes quiet again: a new episode, a new alert
    beat(store, "quiet", NOW)
    assert silence.run(store, settings, context("sensor-silence"))["sensor_alerts"] == 0
    beat(store, "quiet", NOW - timedelta(hours=1))
    assert silence.run(store, settings, context("sensor-silence"))["sensor_alerts"] == 1
    quiet = [doc for doc in alerts(store, silence.SENSOR_RULE) if doc.body["group"]["observer.id"] == "quiet"]
    assert len(quiet) == 2 and len({doc.body["first_seen"] for doc in quiet}) == 2


def test_s13s_an_agencys_silent_log_source_raises_one_alert(store: Store, tmp_path: Path) -> None:
    for tenant in ("police", "health"):
        store.create_doc("tenants", {"name": tenant, "created_at": format_timestamp(NOW)}, doc_id=tenant)
    store_events(
        store,
        [
            event("police", "system.auth", timedelta(hours=3), 1),  # police's auth logs stopped 3 h ago
            event("health", "system.auth", timedelta(minutes=5), 2),  # health's still flow
            event("police", "web.access", timedelta(hours=3), 3),  # not watched
        ],
    )
    settings = Settings(data_dir=tmp_path, scheduler={"silence": {"datasets": {"system.auth": 60}}})
    first = silence.run(store, settings, context("sensor-silence"))
    again = silence.run(store, settings, context("sensor-silence"))
    assert (first["log_sources_checked"], first["log_source_alerts"], again["log_source_alerts"]) == (2, 1, 0)
    (alert,) = alerts(store, silence.DATASET_RULE)
    assert alert.body["tenant"] == "police" and alert.body["group"] == {"event.dataset": "system.auth"}
    assert alert.body["first_seen"] == format_timestamp(NOW - timedelta(hours=3))


# --- hunts -------------------------------------------------------------------------------------


def test_s13s_a_scheduled_hunt_raises_one_alert_per_matching_event(store: Store, tmp_path: Path) -> None:
    matching = [
        event("police", "system.auth", timedelta(minutes=3 + index), 10 + index, **{"user.name": "root"})
        for index in range(3)
    ]
    store_events(
        store,
        [
            *matching,
            event("police", "system.auth", timedelta(minutes=2), 20, **{"user.name": "alice"}),
            event("health", "system.auth", timedelta(minutes=2), 21, **{"user.name": "root"}),  # another agency
            event("police", "system.auth", timedelta(hours=5), 22, **{"user.name": "root"}),  # before the window
        ],
    )
    settings = Settings(
        data_dir=tmp_path,
        scheduler={"hunts": [{"name": "root_use", "tenant": "police", "query": "user.name:root", "level": "high"}]},
    )
    job = hunts.job_id("root_use")
    assert job in job_registry(settings)
    first = hunts.run(store, settings, context(job))
    second = hunts.run(store, settings, context(job))  # reads the overlap again: nothing twice
    assert (first["matched"], first["alerts_raised"], second["alerts_raised"]) == (3, 3, 0), (first, second)
    rule = hunts.rule_of(settings.scheduler.hunts[0])
    expected = sorted(alert_doc_id(detection_from_event(rule, item)) for item in matching)
    raised = alerts(store, "hunt-root_use")
    assert sorted(doc.id for doc in raised) == expected
    assert {(doc.body["tenant"], doc.body["rule.level"], doc.body["rule.name"]) for doc in raised} == {
        ("police", "high", "Hunt: root_use")
    }


# --- digest ------------------------------------------------------------------------------------


def seed_day(store: Store) -> None:
    store.create_doc("tenants", {"name": "Công an tỉnh", "created_at": format_timestamp(NOW)}, doc_id="police")
    store.create_doc("tenants", {"name": "Sở Y tế", "created_at": format_timestamp(NOW)}, doc_id="health")
    for index, (tenant, level, age) in enumerate(
        [
            ("police", "high", timedelta(hours=1)),
            ("police", "high", timedelta(hours=5)),
            ("police", "low", timedelta(hours=20)),
            ("police", "critical", timedelta(days=2)),  # not today's
            ("health", "medium", timedelta(hours=2)),
        ]
    ):
        stamp = format_timestamp(NOW - age)
        store.create_doc(
            "alerts",
            {"tenant": tenant, "rule.level": level, "status": "new", "created_at": stamp, "updated_at": stamp},
            doc_id=f"a{index}",
        )
    for index, (tenant, status) in enumerate([("police", "open"), ("police", "in_progress"), ("police", "closed")]):
        store.create_doc(
            "cases", {"tenant": tenant, "status": status, "created_at": format_timestamp(NOW)}, doc_id=f"c{index}"
        )


def body_of(message: Any) -> str:
    return str(message.get_content())


def test_s13s_the_digest_reaches_each_recipient_in_their_language(store: Store, tmp_path: Path) -> None:
    seed_day(store)
    with relay() as (inbox, port):
        settings = Settings(
            data_dir=tmp_path,
            playbooks={"smtp": {"host": "127.0.0.1", "port": port, "starttls": False, "sender": "soc@tinh.gov.vn"}},
            scheduler={
                "digest": {
                    "recipients": [
                        {"address": "truc.ca@tinh.gov.vn", "tenants": ["police"], "language": "vi"},
                        {"address": "lead@tinh.gov.vn", "language": "en"},
                    ]
                }
            },
        )
        done = runs.execute(store, settings, job_registry(settings).get("digest"), scheduled_for=NOW, kind="manual")
        assert done is not None and done["status"] == "succeeded", done
        assert done["output"]["sent"] == ["truc.ca@tinh.gov.vn", "lead@tinh.gov.vn"]
        by_address = {str(message["To"]): message for message in inbox.messages}
    assert set(by_address) == {"truc.ca@tinh.gov.vn", "lead@tinh.gov.vn"}
    vi, en = by_address["truc.ca@tinh.gov.vn"], by_address["lead@tinh.gov.vn"]
    assert vi["Content-Language"] == "vi" and "3 cảnh báo mới" in str(vi["Subject"])
    text = body_of(vi)
    for line in ("Công an tỉnh (police)", "Cảnh báo mới: 3", "Cao: 2", "Thấp: 1", "Vụ việc đang mở: 2"):
        assert line in text, f"{line!r} not in the Vietnamese digest:\n{text}"
    assert "Sở Y tế" not in text and "Nghiêm trọng" not in text  # not followed; not today's
    assert en["Content-Language"] == "en" and "4 new alerts" in str(en["Subject"])
    text = body_of(en)
    for line in ("Sở Y tế (health)", "Medium: 1", "Open cases: 0", "Công an tỉnh (police)", "High: 2"):
        assert line in text, f"{line!r} not in the English digest:\n{text}"


def test_s13s_a_digest_the_relay_cannot_take_is_a_failed_run_naming_it(store: Store, tmp_path: Path) -> None:
    with relay() as (_, port):
        closed = port  # nothing listens there once the relay is stopped
    settings = Settings(
        data_dir=tmp_path,
        playbooks={"smtp": {"host": "127.0.0.1", "port": closed, "starttls": False, "timeout_seconds": 5}},
        scheduler={"digest": {"recipients": [{"address": "lead@tinh.gov.vn"}]}},
    )
    done = runs.execute(store, settings, job_registry(settings).get("digest"), scheduled_for=NOW, kind="manual")
    assert done is not None and done["status"] == "failed"
    assert "lead@tinh.gov.vn" in done["error"] and f"smtp://127.0.0.1:{closed}" in done["error"]
    assert done["output"] == {"sent": [], "agencies": 0, "alerts": 0}


def test_s13s_digest_texts_have_the_same_keys_in_both_languages() -> None:
    assert digest.TEXTS["vi"].keys() == digest.TEXTS["en"].keys()
