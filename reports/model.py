"""The weekly report as data: what the metrics produce and every renderer (HTML, PDF, JSON,
the dashboard, the e-mail) consumes.

One ISO week in the province's time zone (``reports.timezone``, Asia/Ho_Chi_Minh by default):
Monday 00:00 to the next Monday 00:00. Every number is counted by the store (SQL on SQLite,
aggregations on Elasticsearch) through the tenant-scoped builders, for the report's tenants
only. Durations are seconds; rates are fractions in [0, 1]; ``None`` means "no data" (no alert
was acknowledged, no sensor reported), never zero.

The prose of the executive summary is not stored here: each renderer writes it in the reader's
language from these numbers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
LEVELS = ("informational", "low", "medium", "high", "critical")
Level = Literal["informational", "low", "medium", "high", "critical"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Change(_Model):
    """A headline number, the same number for the week before, and the change."""

    value: float | None
    previous: float | None
    # (value - previous) / previous; None when either is None or previous is 0
    change: float | None


class Headline(_Model):
    alerts: Change
    critical_alerts: Change  # level critical + high
    cases_opened: Change
    cases_closed: Change
    open_cases: Change  # open at the end of the week
    mtta_seconds: Change
    mttr_seconds: Change
    sla_breaches: Change
    false_positive_rate: Change
    sensor_uptime: Change  # fraction of expected heartbeats received, over every sensor
    playbook_runs: Change
    containments: Change


class DayCount(_Model):
    date: str  # YYYY-MM-DD, local to the report's time zone
    by_level: dict[Level, int]
    total: int


class Alerts(_Model):
    total: int
    by_level: dict[Level, int]
    by_day: list[DayCount]  # exactly 7 entries, Monday first, days without alerts included
    by_status: dict[str, int]  # at the end of the week: new, acknowledged, ..., false_positive


class RuleCount(_Model):
    rule_id: str
    title: str
    level: Level
    count: int


class Technique(_Model):
    id: str  # T1110, T1110.001, or a tactic's name such as credential-access
    count: int


class Attack(_Model):
    tactics: list[Technique]  # from the rules' attack.<tactic> tags, most alerts first
    techniques: list[Technique]  # attack.tNNNN[.NNN] tags, upper-cased, most alerts first


class ValueCount(_Model):
    value: str
    count: int


class Cases(_Model):
    opened: int  # created in the week
    closed: int  # closed in the week (whenever created)
    open_at_end: int  # created before the end, not closed before the end
    by_classification: dict[str, int]  # of the cases closed in the week


class LevelResponse(_Model):
    level: Level
    alerts: int  # alerts of this level raised in the week
    acknowledged: int
    resolved: int  # reached a closed status
    mtta_seconds: float | None  # mean of acknowledged_at - created_at
    mttr_seconds: float | None  # mean of resolved_at - created_at
    ack_sla_seconds: int
    resolve_sla_seconds: int
    ack_breaches: int  # acknowledged late, or still unacknowledged past the SLA at week's end
    resolve_breaches: int


class Response(_Model):
    mtta_seconds: float | None
    mttr_seconds: float | None
    sla_breaches: int  # ack + resolve breaches over every level
    by_level: list[LevelResponse]  # one per level, in LEVELS order


class RuleFalsePositives(_Model):
    rule_id: str
    title: str
    closed: int  # alerts of the rule closed in the week
    false_positives: int  # of which closed as false_positive
    rate: float  # false_positives / closed


class SensorHealth(_Model):
    sensor_id: str
    name: str
    tenant: str
    kind: str  # log, network, ...
    uptime: float | None  # fraction of the week's expected heartbeats received
    capture_loss: float | None  # network sensors: dropped / received, over the week
    events: int  # events stored from the sensor in the week
    last_seen: str | None  # ISO timestamp of the last heartbeat
    silent: bool  # no heartbeat or no event for longer than its expected interval at week's end


class Playbooks(_Model):
    runs: int
    by_status: dict[str, int]
    by_playbook: list[ValueCount]
    containments: int  # contain steps that succeeded live (not dry-run)


class Agency(_Model):
    """One row of the province's table comparing agencies."""

    tenant: str
    name: str
    alerts: int
    critical_alerts: int
    open_cases: int
    mtta_seconds: float | None
    mttr_seconds: float | None
    sla_breaches: int
    silent_sensors: int


class Scope(_Model):
    tenant: str  # an agency's tenant, or "*" for the province
    tenants: list[str]  # the agencies counted
    name: str  # display name (the agency's, or the province's)


class WeeklyReport(_Model):
    schema_version: int = SCHEMA_VERSION
    kind: Literal["weekly"] = "weekly"
    week: str = Field(pattern=r"^\d{4}-W\d{2}$")  # ISO week, e.g. 2026-W48
    start: str  # ISO timestamp with offset, Monday 00:00 local
    end: str  # the next Monday 00:00 local (exclusive)
    timezone: str
    generated_at: str
    scope: Scope
    headline: Headline
    alerts: Alerts
    top_rules: list[RuleCount]  # at most 10
    attack: Attack
    top_sources: list[ValueCount]  # source.ip of alerts, at most 10
    top_targets: list[ValueCount]  # host.name (else destination.ip) of alerts, at most 10
    cases: Cases
    response: Response
    false_positives: list[RuleFalsePositives]  # rules with a closed alert, highest rate first, at most 10
    sensors: list[SensorHealth]
    playbooks: Playbooks
    agencies: list[Agency]  # the province's report only; empty for an agency


__all__ = [
    "LEVELS",
    "SCHEMA_VERSION",
    "Agency",
    "Alerts",
    "Attack",
    "Cases",
    "Change",
    "DayCount",
    "Headline",
    "Level",
    "LevelResponse",
    "Playbooks",
    "Response",
    "RuleCount",
    "RuleFalsePositives",
    "Scope",
    "SensorHealth",
    "Technique",
    "ValueCount",
    "WeeklyReport",
]
