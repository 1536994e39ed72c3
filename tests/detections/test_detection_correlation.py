from __future__ import annotations

import json
import textwrap

import pytest
from sigma.correlations import SigmaCorrelationRule

from detections.correlation import CorrelationEngine, CorrelationSpec
from detections.loader import load_rule_text
from soc_core.errors import RuleError

from .helpers import event


def spec(kind: str = "event_count", **overrides: object) -> CorrelationSpec:
    values: dict[str, object] = {
        "rule_id": "corr",
        "type": kind,
        "rule_ids": ("base",),
        "timespan": 300.0,
        "group_by": ("source.ip",),
        "op": "gte",
        "count": 5,
    }
    values.update(overrides)
    return CorrelationSpec(**values)  # type: ignore[arg-type]


def at(stamp: str, **fields: object) -> dict[str, object]:
    return event(**{"@timestamp": f"2026-11-25T{stamp}Z", "source__ip": "1.2.3.4", **fields})


def test_burst_across_a_bucket_edge_is_detected() -> None:
    engine = CorrelationEngine([spec()])
    stamps = ["10:04:30", "10:04:45", "10:05:00", "10:05:15", "10:05:30"]
    hits = [hit for s in stamps for hit in engine.feed("base", at(s + ".000"))]
    assert len(hits) == 1
    assert hits[0].count == 5
    assert hits[0].first_seen == "2026-11-25T10:04:30.000Z"
    assert hits[0].last_seen == "2026-11-25T10:05:30.000Z"
    assert hits[0].group == {"source.ip": "1.2.3.4"}
    assert hits[0].tenant == "police"


def test_events_spread_wider_than_the_timespan_do_not_fire() -> None:
    engine = CorrelationEngine([spec()])
    stamps = ["10:00:00", "10:02:00", "10:04:00", "10:06:00", "10:08:00", "10:10:00"]
    assert not [hit for s in stamps for hit in engine.feed("base", at(s + ".000"))]


def test_window_bounds_are_inclusive() -> None:
    engine = CorrelationEngine([spec(count=2)])
    assert not engine.feed("base", at("10:00:00.000"))
    assert engine.feed("base", at("10:05:00.000"))


def test_every_later_event_in_the_window_fires_again() -> None:
    engine = CorrelationEngine([spec(count=2)])
    results = [engine.feed("base", at(f"10:00:0{i}.000")) for i in range(4)]
    assert [len(r) for r in results] == [0, 1, 1, 1]


def test_tenants_and_groups_never_mix() -> None:
    engine = CorrelationEngine([spec(count=2)])
    assert not engine.feed("base", at("10:00:00.000", organization__id="police"))
    assert not engine.feed("base", at("10:00:01.000", organization__id="health"))
    assert not engine.feed("base", at("10:00:02.000", source__ip="5.6.7.8"))
    assert engine.feed("base", at("10:00:03.000", organization__id="health"))


def test_events_without_group_field_or_tenant_are_skipped() -> None:
    engine = CorrelationEngine([spec(count=1)])
    assert not engine.feed("base", at("10:00:00.000", source__ip=None))
    no_tenant = at("10:00:00.000")
    del no_tenant["organization.id"]
    assert not engine.feed("base", no_tenant)
    assert engine.skipped_events == 1


def test_late_event_lands_in_its_window() -> None:
    engine = CorrelationEngine([spec(count=3)])
    assert not engine.feed("base", at("10:00:00.000"))
    assert not engine.feed("base", at("10:03:00.000"))
    hits = engine.feed("base", at("10:01:00.000"))  # arrives late, fits between the two
    assert len(hits) == 1 and hits[0].count == 3


def test_value_count_counts_distinct_values() -> None:
    engine = CorrelationEngine([spec("value_count", value_field="user.name", count=3)])
    assert not engine.feed("base", at("10:00:00.000", user__name="a"))
    assert not engine.feed("base", at("10:00:01.000", user__name="a"))
    assert not engine.feed("base", at("10:00:02.000", user__name="b"))
    hits = engine.feed("base", at("10:00:03.000", user__name="c"))
    assert len(hits) == 1 and hits[0].measure == 3


def test_temporal_needs_every_rule_in_any_order() -> None:
    engine = CorrelationEngine([spec("temporal", rule_ids=("a", "b"), count=2)])
    assert not engine.feed("a", at("10:00:00.000"))
    assert not engine.feed("a", at("10:00:01.000"))
    assert engine.feed("b", at("10:00:02.000"))
    other = CorrelationEngine([spec("temporal", rule_ids=("a", "b"), count=2)])
    assert not other.feed("b", at("10:00:00.000"))
    assert other.feed("a", at("10:00:01.000"))


def test_temporal_ordered_needs_the_order() -> None:
    ordered = spec("temporal_ordered", rule_ids=("a", "b"), count=2)
    engine = CorrelationEngine([ordered])
    assert not engine.feed("b", at("10:00:00.000"))
    assert not engine.feed("a", at("10:00:01.000"))
    assert engine.feed("b", at("10:00:02.000"))
    late = CorrelationEngine([ordered])
    assert not late.feed("a", at("10:00:00.000"))
    assert not late.feed("b", at("10:06:00.000"))  # outside the 5 minutes


def test_lt_condition_uses_the_trailing_window() -> None:
    engine = CorrelationEngine([spec(op="lt", count=2)])
    assert engine.feed("base", at("10:00:00.000"))
    assert not engine.feed("base", at("10:00:01.000"))


def test_aliases_map_group_fields_per_rule() -> None:
    aliased = spec(
        "temporal",
        rule_ids=("a", "b"),
        count=2,
        group_by=("ip",),
        aliases={"ip": {"a": "source.ip", "b": "destination.ip"}},
    )
    engine = CorrelationEngine([aliased])
    assert not engine.feed("a", at("10:00:00.000", source__ip="9.9.9.9"))
    hits = engine.feed("b", at("10:00:01.000", source__ip=None, destination__ip="9.9.9.9"))
    assert len(hits) == 1 and hits[0].group == {"ip": "9.9.9.9"}


def test_snapshot_is_json_and_restores_mid_burst() -> None:
    engine = CorrelationEngine([spec()])
    for s in ["10:04:30", "10:04:45", "10:05:00"]:
        engine.feed("base", at(s + ".000"))
    saved = json.loads(json.dumps(engine.snapshot()))
    restarted = CorrelationEngine([spec()])
    restarted.restore(saved)
    assert not restarted.feed("base", at("10:05:15.000"))
    assert restarted.feed("base", at("10:05:30.000"))


def test_snapshot_drops_expired_keys() -> None:
    engine = CorrelationEngine([spec()])
    engine.feed("base", at("10:00:00.000", source__ip="1.1.1.1"))
    engine.feed("base", at("11:00:00.000", source__ip="2.2.2.2"))
    assert len(engine.snapshot()["keys"]) == 1


def test_state_is_bounded_and_evictions_counted() -> None:
    engine = CorrelationEngine([spec(count=100)], max_keys=3, max_items=4)
    for i in range(5):
        engine.feed("base", at("10:00:00.000", source__ip=f"10.0.0.{i}"))
    assert len(engine.keys) == 3 and engine.evicted_keys == 2
    for i in range(6):
        engine.feed("base", at(f"10:00:0{i}.000", source__ip="10.0.0.9"))
    assert engine.evicted_items == 2


def test_restore_rejects_unknown_version() -> None:
    with pytest.raises(Exception, match="version"):
        CorrelationEngine([spec()]).restore({"version": 99})


def _correlation(text: str) -> tuple[SigmaCorrelationRule, str]:
    ruleset = load_rule_text(textwrap.dedent(text), path="c.yml")
    assert not ruleset.errors, ruleset.errors
    loaded = next(r for r in ruleset if r.is_correlation)
    assert isinstance(loaded.rule, SigmaCorrelationRule)
    return loaded.rule, loaded.where


BASE = """
title: base
id: 0c6e1d5a-0000-4000-8000-000000000001
name: base_rule
logsource: {product: linux, service: sshd}
detection: {sel: {event.outcome: failure}, condition: sel}
---
"""


def test_spec_from_sigma_rule() -> None:
    rule, where = _correlation(
        BASE
        + """
title: spray
id: 0c6e1d5a-0000-4000-8000-000000000002
correlation:
  type: value_count
  rules: [base_rule]
  group-by: [source.ip]
  timespan: 10m
  condition: {field: user.name, gte: 5}
"""
    )
    made = CorrelationSpec.from_rule(rule, where=where)
    assert made.type == "value_count"
    assert made.rule_ids == ("0c6e1d5a-0000-4000-8000-000000000001",)
    assert made.timespan == 600 and made.count == 5 and made.value_field == "user.name"


def test_unsupported_correlation_type_is_a_rule_error() -> None:
    rule, where = _correlation(
        BASE
        + """
title: sum
id: 0c6e1d5a-0000-4000-8000-000000000003
correlation:
  type: value_sum
  rules: [base_rule]
  group-by: [source.ip]
  timespan: 10m
  condition: {field: source.bytes, gte: 5}
"""
    )
    with pytest.raises(RuleError, match="value_sum"):
        CorrelationSpec.from_rule(rule, where=where)
