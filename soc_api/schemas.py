"""Request and response schemas. Requests forbid unknown fields (mass assignment → 422)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from reports.model import WeeklyReport
from soc_core.alert_status import CLOSED_STATUSES, AlertStatus, Classification, SettableStatus
from soc_core.events import TENANT_ID


def _in_utc(moment: datetime) -> datetime:
    """An instant as UTC (naive means UTC). Years 1 and 9999 with an offset fall outside what
    a datetime can hold once moved to UTC: a 422 here, not an overflow deep in a store."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("the time is out of range once moved to UTC (years 0001-9999)") from exc


Instant = Annotated[datetime, AfterValidator(_in_utc)]
"""A date and time given by a client: ISO 8601, naive means UTC, always returned in UTC."""


# Stated in the schema as the API enforces them, so clients (and the fuzzer) see the rule.
TENANT_PATTERN = TENANT_ID.pattern
SCOPE_PATTERN = rf"^(\*|{TENANT_ID.pattern[1:-1]})$"  # an agency, or * for province-wide


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(Strict):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(max_length=1024)
    totp: str | None = Field(None, pattern=r"^[0-9]{6}$", description="TOTP code, for users who enrolled one")


class TokenPublic(BaseModel):
    status: Literal["ok"] = "ok"
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_at: str
    must_change_password: bool = Field(
        False, description="a first or admin-set password: only POST /api/auth/password works until it is changed"
    )


class TotpEnrolmentPublic(BaseModel):
    """The password was right, but the person's role needs a TOTP second factor and none is
    enrolled: add ``secret`` to an authenticator app, then POST a code to /api/auth/totp."""

    status: Literal["totp_enrolment_required"] = "totp_enrolment_required"
    username: str
    enrolment_token: str
    secret: str
    otpauth_uri: str
    expires_at: str


class TotpEnrolRequest(Strict):
    username: str = Field(min_length=1, max_length=100)
    enrolment_token: str = Field(min_length=1, max_length=200)
    code: str = Field(pattern=r"^[0-9]{6}$")


class PasswordChange(Strict):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class PasswordReset(Strict):
    username: str = Field(min_length=1, max_length=100)
    code: str = Field(min_length=1, max_length=64, description="the one-time code an admin was given")
    new_password: str = Field(max_length=1024)


class ResetIssued(BaseModel):
    username: str
    code: str = Field(description="one-time reset code, shown once; give it to the person by a trusted channel")
    expires_at: str


class UserPublic(BaseModel):
    username: str
    display_name: str
    disabled: bool
    memberships: list[MembershipPublic]
    totp_enrolled: bool
    must_change_password: bool
    created_at: str | None = None


class UserList(BaseModel):
    items: list[UserPublic]


class MembershipPublic(BaseModel):
    tenant: str
    role: str


class MePublic(BaseModel):
    id: str
    name: str
    kind: str
    memberships: list[MembershipPublic]
    must_change_password: bool = False
    timezone: str | None = Field(None, description="your time zone for the UI's times; none: the deployment's")


class MeSettings(Strict):
    timezone: str = Field(min_length=1, max_length=60, description="an IANA time zone, e.g. Asia/Ho_Chi_Minh or UTC")


KeyRole = Literal["analyst", "rule_admin", "manager", "admin", "sensor"]


class ApiKeyCreate(Strict):
    name: str = Field(min_length=1, max_length=100)
    tenant: str = Field(
        min_length=1, max_length=40, pattern=SCOPE_PATTERN, description="The agency the key acts for; * = province-wide"
    )
    role: KeyRole = "analyst"
    owner: str = Field(min_length=1, max_length=100, description="The person the key answers to")
    expires_days: int | None = Field(
        None, ge=1, le=365, description="Days until it expires; default 90 (integration) or 365 (sensor)"
    )
    sensor_id: str | None = Field(None, min_length=1, max_length=64, description="For a sensor key: its sensor")


class ApiKeyPublic(BaseModel):
    """A key as listed: never the key itself nor its digest."""

    id: str
    name: str
    tenant: str
    role: str
    owner: str | None = None
    sensor_id: str | None = None
    status: Literal["active", "revoked", "expired", "owner_disabled", "no_owner"]
    created_at: str
    created_by: str | None = None
    expires_at: str
    revoked_at: str | None = None
    revoked_by: str | None = None
    last_used_at: str | None = None
    last_used_ip: str | None = None


class ApiKeyCreated(ApiKeyPublic):
    api_key: str = Field(description="Shown once, now; only its digest is stored.")


class ApiKeyPage(BaseModel):
    items: list[ApiKeyPublic]
    next_cursor: str | None = None


class Comment(BaseModel):
    at: str
    author: str
    text: str


class AlertPublic(BaseModel):
    id: str
    version: str
    tenant: str
    status: str
    assignee: str | None = None
    acknowledged_at: str | None = None
    resolved_at: str | None = None
    case_id: str | None = None
    rule_id: str | None = None
    rule_name: str | None = None
    level: str | None = None
    attack: list[str] = Field(default_factory=list, description="ATT&CK tags of the rule")
    tags: list[str] = Field(default_factory=list, description="analysts' tags")
    count: int = 1
    first_seen: str | None = None
    last_seen: str | None = None
    entities: dict[str, Any] = Field(default_factory=dict)
    event_ids: list[str] = Field(default_factory=list)
    created_at: str | None = None
    classification: str | None = None
    resolution_note: str | None = None
    distinct: dict[str, int] = Field(
        default_factory=dict, description="correlations: distinct values seen per field (ports, users, URLs)"
    )
    trigger: dict[str, Any] = Field(
        default_factory=dict, description="correlations: the event that made it fire (account, time, source)"
    )


class AlertDetail(AlertPublic):
    events: list[dict[str, Any]] = Field(default_factory=list)
    comments: list[Comment] = Field(default_factory=list)


class AlertPage(BaseModel):
    items: list[AlertPublic]
    next_cursor: str | None = None


class EventPage(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None = None


class Health(BaseModel):
    status: str
    store: str
    version: str


class _ClosingReason(Strict):
    """Closing an alert (a closed status, or a classification alone) needs a classification
    and a note: the weekly report's false-positive rate and the next analyst read them."""

    status: AlertStatus | None = None
    classification: Classification | None = Field(
        None,
        description="why it is closed: true_positive closes as resolved, the others as the status of the same name",
    )
    note: str | None = Field(None, min_length=1, max_length=2000, description="the reason, required when closing")

    @model_validator(mode="after")
    def _reason_when_closing(self) -> Self:
        closing = self.classification is not None or self.status in CLOSED_STATUSES
        if closing and self.classification is None:
            raise ValueError(
                "closing an alert needs a classification (true_positive, false_positive, benign, duplicate)"
            )
        if closing and not (self.note or "").strip():
            raise ValueError("closing an alert needs a note saying why")
        return self


class AlertUpdate(_ClosingReason):
    version: str = Field(min_length=1, max_length=100, description="The version you read; a stale one is a 409.")
    assignee: str | None = Field(None, min_length=1, max_length=100)
    unassign: bool = False
    add_tags: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list, max_length=20)
    remove_tags: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list, max_length=20)


class CommentCreate(Strict):
    text: str = Field(min_length=1, max_length=10_000)


class BulkAlertUpdate(_ClosingReason):
    ids: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(min_length=1, max_length=200)
    status: SettableStatus | None = None  # narrower: "new" is only ever set by the engine
    assignee: str | None = Field(None, min_length=1, max_length=100)
    add_tags: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list, max_length=20)


class BulkItemResult(BaseModel):
    id: str
    status: Literal["updated", "not_found", "conflict", "refused"]
    detail: str = ""


class BulkResult(BaseModel):
    items: list[BulkItemResult]


Severity = Literal["low", "medium", "high", "critical"]


class CaseCreate(Strict):
    title: str = Field(min_length=1, max_length=300)
    description: str = Field("", max_length=20_000)
    severity: Severity = "medium"
    alert_ids: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(min_length=1, max_length=500)


class CaseUpdate(Strict):
    version: str = Field(min_length=1, max_length=100)
    status: Literal["open", "in_progress", "closed"] | None = None
    assignee: str | None = Field(None, min_length=1, max_length=100)
    classification: Literal["true_positive", "false_positive", "benign", "duplicate", "inconclusive"] | None = None
    add_task: str | None = Field(None, min_length=1, max_length=500)
    complete_task: str | None = Field(None, min_length=1, max_length=40)
    comment: str | None = Field(None, min_length=1, max_length=10_000)


class Observable(BaseModel):
    type: str
    value: str


class Task(BaseModel):
    id: str
    title: str
    done: bool


class TimelineEntry(BaseModel):
    at: str
    actor: str
    kind: str
    text: str


class CasePublic(BaseModel):
    id: str
    version: str
    tenant: str
    title: str
    description: str = ""
    severity: str
    status: str
    assignee: str | None = None
    classification: str | None = None
    alert_ids: list[str] = Field(default_factory=list)
    observables: list[Observable] = Field(default_factory=list)
    tasks: list[Task] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    created_at: str
    updated_at: str
    closed_at: str | None = None


class CasePage(BaseModel):
    items: list[CasePublic]
    next_cursor: str | None = None


class AuditRecord(BaseModel):
    seq: int
    at: str
    actor: str
    action: str
    tenant: str | None = None
    target: str | None = None
    outcome: str
    before: Any = None
    after: Any = None
    request_id: str | None = None
    client_request_id: str | None = None
    source_ip: str | None = None
    details: dict[str, Any] = {}


class AuditPage(BaseModel):
    items: list[AuditRecord]
    next_cursor: str | None = None


class AuditProblem(BaseModel):
    seq: int
    reason: str


class AuditAnchorCheck(BaseModel):
    status: Literal["ok", "none", "truncated", "rewritten", "forged"]
    checked: int
    latest: dict[str, Any] | None = None


class AuditVerification(BaseModel):
    """``ok``: every record's seal and link hold and the trail reaches every anchor;
    ``tampered``: ``first_bad_seq`` and ``problems`` say where; ``unverifiable``: ``reason``."""

    ok: bool
    status: Literal["ok", "tampered", "unverifiable"]
    records: int
    head_seq: int
    legacy_records: int
    first_bad_seq: int | None = None
    first_bad_reason: str | None = None
    problems: list[AuditProblem]
    anchor: AuditAnchorCheck
    reason: str | None = None


class SensorCreate(Strict):
    name: str = Field(min_length=1, max_length=100)
    tenant: str = Field(min_length=2, max_length=40, pattern=TENANT_PATTERN)
    kind: Literal["logs", "syslog", "evtx", "network", "other"] = "logs"
    datasets: list[Annotated[str, Field(max_length=80)]] | None = Field(
        None,
        max_length=200,
        description="Datasets this sensor may send (each known, or in store.extra_datasets); "
        "default: all of them. Others are stored as `unknown`, the value kept in labels.original_dataset.",
    )


class SensorPublic(BaseModel):
    id: str
    tenant: str
    name: str
    kind: str
    status: str
    last_seen: str | None = None
    restarts: int = 0
    health: dict[str, Any] = Field(default_factory=dict)
    datasets: list[str] | None = Field(None, description="Its allowed datasets; null means every allowed one.")


class SensorCreated(SensorPublic):
    api_key: str = Field(description="Shown once; the sensor authenticates with it.")


class SensorPage(BaseModel):
    items: list[SensorPublic]
    next_cursor: str | None = None


class Heartbeat(Strict):
    run_id: str = Field(min_length=1, max_length=64)
    counters: dict[Annotated[str, Field(max_length=64)], Annotated[int, Field(ge=0)]] = Field(max_length=100)
    problem: str | None = Field(
        None, max_length=1000, description="Why delivery is failing now, if it is; marks the sensor degraded."
    )
    interval_seconds: float | None = Field(
        None,
        gt=0,
        le=86400,
        description="How often the sensor sends heartbeats (default 60): uptime reports expect one per interval.",
    )


class IngestRequest(Strict):
    events: list[dict[str, Any]] = Field(min_length=1, max_length=5000)


class IngestItem(BaseModel):
    id: str
    index: int | None = None  # position in the request's ``events``, for events refused by shape
    status: str
    reason: str | None = None


class IngestResult(BaseModel):
    created: int
    duplicates: int
    rejected: list[IngestItem]


class RuleException(BaseModel):
    id: str
    conditions: dict[str, list[str]]
    reason: str
    author: str
    created_at: str
    tenant: str | None = None
    expires_at: str | None = None


class RulePublic(BaseModel):
    id: str
    title: str
    level: str | None = None
    attack: list[str] = Field(default_factory=list)
    kind: Literal["detection", "correlation"]
    source: Literal["shipped", "custom"]
    enabled: bool
    scope: list[str] | None = None
    version: str
    state_version: str | None = Field(None, description="Version of the rule's state; send it back to change it")
    exceptions: int = 0


class RuleHistoryEntry(BaseModel):
    at: str
    author: str
    action: str
    reason: str
    tenant: str | None = Field(None, description="The agency the change was made for; none: province-wide")
    version: str | None = None


class RuleDetail(RulePublic):
    yaml: str
    where: str
    history: list[RuleHistoryEntry] = Field(default_factory=list)
    active_exceptions: list[RuleException] = Field(default_factory=list)


class RulePage(BaseModel):
    items: list[RulePublic]


class RuleSubmit(Strict):
    yaml: str = Field(min_length=10, max_length=100_000)
    reason: str = Field(min_length=3, max_length=2000)
    scope: list[Annotated[str, Field(min_length=2, max_length=40)]] | None = Field(None, max_length=200)
    version: str | None = Field(None, max_length=100, description="Required to change an existing custom rule")


class RuleValidate(Strict):
    yaml: str = Field(min_length=1, max_length=100_000)


class RuleValidation(BaseModel):
    valid: bool
    errors: list[str]


class RuleStateChange(Strict):
    enabled: bool
    reason: str = Field(min_length=3, max_length=2000)
    version: str | None = Field(None, max_length=100)


class ExceptionCreate(Strict):
    conditions: dict[
        Annotated[str, Field(min_length=1, max_length=200)],
        list[Annotated[str, Field(min_length=1, max_length=500)]],
    ] = Field(min_length=1, max_length=20)
    reason: str = Field(min_length=3, max_length=2000)
    tenant: str | None = Field(None, min_length=2, max_length=40, pattern=TENANT_PATTERN)
    expires_at: Instant | None = None


class ExceptionRevoke(Strict):
    reason: str = Field(min_length=3, max_length=2000)


class SampleRun(BaseModel):
    rule_id: str
    checked: int
    passed: bool
    failures: list[str]


class BacktestRequest(Strict):
    start: Instant | None = None
    end: Instant | None = None
    yaml: str | None = Field(None, max_length=100_000, description="A changed version to compare with the current one")


class BacktestPublic(BaseModel):
    rule_id: str
    version: str
    total: int
    truncated: bool
    per_day: dict[str, int]
    candidate_version: str | None = None
    candidate_total: int | None = None
    candidate_per_day: dict[str, int] | None = None
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)


class IntelProblem(BaseModel):
    where: str
    reason: str


class IntelImportPublic(BaseModel):
    tenant: str
    list_name: str = Field(alias="list")
    loaded: int
    updated: int
    removed: int
    duplicates: int
    skipped: int
    total: int
    problems: list[IntelProblem] = Field(description="The skipped lines/objects, the first 500")


class IntelListPublic(BaseModel):
    tenant: str
    name: str
    format: str
    source: str
    count: int
    counts: dict[str, int]
    created_at: str
    updated_at: str
    last_import: dict[str, Any]


class IntelListPage(BaseModel):
    items: list[IntelListPublic]


class JobRunPublic(BaseModel):
    id: str
    job: str
    scheduled_for: str
    kind: Literal["schedule", "manual"]
    actor: str
    status: Literal["running", "succeeded", "failed", "missed"]
    started_at: str
    ended_at: str | None = None
    duration_seconds: float | None = None
    error: str | None = None
    output: dict[str, Any] = Field(default_factory=dict, description="The job's outcome summary")
    host: str
    pid: int


class JobPublic(BaseModel):
    id: str
    description: str
    schedule: str
    next_run_time: str | None = None
    last_run: JobRunPublic | None = None


class JobPage(BaseModel):
    items: list[JobPublic]


class JobRunPage(BaseModel):
    items: list[JobRunPublic]
    next_cursor: str | None = None


class WeeklyReportRequest(Strict):
    week: str = Field(pattern=r"^\d{4}-W\d{2}$", description="ISO week, e.g. 2026-W48")
    tenant: str = Field("*", min_length=1, max_length=40, description="An agency's tenant id, or * for the province")


class ReportSummary(BaseModel):
    id: str
    kind: str
    tenant: str
    week: str
    name: str
    generated_at: str
    generated_by: str
    job: str | None = None


class ReportPublic(ReportSummary):
    report: WeeklyReport


class ReportPage(BaseModel):
    items: list[ReportSummary]
    next_cursor: str | None = None
