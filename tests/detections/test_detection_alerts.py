from __future__ import annotations

from datetime import timedelta

from detections.alerts import (
    MAX_EVENT_IDS,
    Detection,
    RuleMeta,
    alert_doc_id,
    detection_from_event,
    group_detections,
    new_alert,
)

from .helpers import event

RULE = RuleMeta("r1", "SSH Failed Login", "v1", "low", ("attack.t1110",))
NOW = "2026-11-25T12:00:00.000Z"


def hit(stamp: str, **fields: object) -> Detection:
    return detection_from_event(
        RULE,
        event(**{"@timestamp": f"2026-11-25T{stamp}.000Z", "source__ip": "1.2.3.4", **fields}),
    )


def test_new_alert_has_every_field() -> None:
    detection = hit("10:00:00", user__name="root", host__name="web01")
    alert = new_alert(detection, now=NOW)
    assert alert["rule.id"] == "r1" and alert["rule.name"] == "SSH Failed Login"
    assert alert["rule.version"] == "v1" and alert["rule.level"] == "low"
    assert alert["rule.tags"] == ["attack.t1110"]
    assert alert["tenant"] == "police" and alert["status"] == "new"
    assert alert["entities"] == {
        "source.ip": ["1.2.3.4"],
        "user.name": ["root"],
        "host.name": ["web01"],
    }
    assert alert["count"] == 1 and alert["event_ids"] == detection.event_ids
    assert alert["first_seen"] == alert["last_seen"] == "2026-11-25T10:00:00.000Z"
    assert alert["created_at"] == alert["updated_at"] == NOW
    assert alert["id"] == alert_doc_id(detection)
    assert '"tenant": "police"' in alert["group_key"]


def test_repeats_within_the_window_update_one_alert() -> None:
    detections = [hit(f"10:0{i}:00") for i in range(5)]
    alerts = group_detections(detections, {}, window=timedelta(minutes=30), now=NOW)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["count"] == 5 and len(alert["event_ids"]) == 5
    assert alert["first_seen"] == "2026-11-25T10:00:00.000Z"
    assert alert["last_seen"] == "2026-11-25T10:04:00.000Z"


def test_repeat_after_the_window_starts_a_new_alert() -> None:
    detections = [hit("10:00:00"), hit("12:00:00")]
    alerts = group_detections(detections, {}, window=timedelta(minutes=30), now=NOW)
    assert len(alerts) == 2 and alerts[0]["id"] != alerts[1]["id"]


def test_tenants_and_groups_get_separate_alerts() -> None:
    detections = [hit("10:00:00"), hit("10:00:01", organization__id="health"), hit("10:00:02", source__ip="9.9.9.9")]
    alerts = group_detections(detections, {}, now=NOW)
    assert len(alerts) == 3
    assert {a["tenant"] for a in alerts} == {"police", "health"}


def test_merges_into_a_stored_open_alert_but_not_a_closed_one() -> None:
    first = new_alert(hit("10:00:00"), now=NOW)
    later = hit("10:10:00")
    merged = group_detections([later], {first["dedup_key"]: first}, now=NOW)
    assert len(merged) == 1 and merged[0]["id"] == first["id"] and merged[0]["count"] == 2
    closed = dict(first, status="resolved")
    fresh = group_detections([later], {first["dedup_key"]: closed}, now=NOW)
    assert fresh[0]["id"] != first["id"] and fresh[0]["count"] == 1


def test_analyst_fields_survive_a_merge() -> None:
    first = dict(new_alert(hit("10:00:00"), now=NOW), status="acknowledged", assignee="lan")
    merged = group_detections([hit("10:01:00")], {first["dedup_key"]: first}, now=NOW)[0]
    assert merged["assignee"] == "lan" and merged["status"] == "acknowledged"


def test_same_events_are_not_counted_twice() -> None:
    detection = hit("10:00:00")
    first = new_alert(detection, now=NOW)
    again = group_detections([detection], {first["dedup_key"]: first}, now=NOW)[0]
    assert again["count"] == 1


def test_event_ids_are_capped_but_count_is_not() -> None:
    detections = [hit(f"10:{i // 60:02d}:{i % 60:02d}") for i in range(150)]
    alert = group_detections(detections, {}, now=NOW)[0]
    assert len(alert["event_ids"]) == MAX_EVENT_IDS and alert["count"] == 150


def test_inputs_are_not_modified() -> None:
    first = new_alert(hit("10:00:00"), now=NOW)
    snapshot = dict(first)
    group_detections([hit("10:01:00")], {first["dedup_key"]: first}, now=NOW)
    assert first == snapshot
