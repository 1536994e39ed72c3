"""Configuration: one YAML file plus ``SOC_*`` environment variables (pydantic-settings).

Precedence, highest first: environment (``SOC_STORE__BACKEND=elasticsearch``, nested keys
joined by ``__``), the YAML file (``--config`` or ``SOC_CONFIG``), defaults. Unknown keys and
bad values are errors that name the key and the file.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from soc_core.auth import Role
from soc_core.errors import ConfigError, ParseError
from soc_core.events import DATASET
from soc_core.safe_yaml import load_yaml_file


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ElasticsearchSettings(_Section):
    url: str = "http://127.0.0.1:9200"
    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    replicas: int = Field(0, ge=0, le=5)
    request_timeout: float = Field(10.0, gt=0, le=300)
    # the first part of every index and template name: several installations (or test runs)
    # can share one cluster under different prefixes
    index_prefix: str = Field("canhgac", pattern=r"^[a-z][a-z0-9_]{0,30}$")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class StoreSettings(_Section):
    backend: Literal["sqlite", "elasticsearch"] = "sqlite"
    sqlite_path: Path | None = None
    elasticsearch: ElasticsearchSettings = ElasticsearchSettings()
    # Bounds on the event indices sensors can make (soc_core.bounds): datasets beyond the known
    # list, and how far an @timestamp may lie from the ingest time before it is replaced.
    extra_datasets: list[str] = Field(default_factory=list, max_length=1000)
    max_event_age_days: int = Field(365, ge=1, le=36_500)
    max_future_skew_hours: int = Field(24, ge=0, le=24 * 366)

    @field_validator("extra_datasets")
    @classmethod
    def _dataset_names(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not DATASET.match(name)]
        if bad:
            raise ValueError(f"not dataset names: {bad}; use lowercase letters, digits, '_' or '.'")
        return value


class ApiLimits(_Section):
    """How much one request may make the server read (bytes before the body is parsed) and
    how big one ingested event may be; larger is refused (413, or per event in the result)."""

    body_bytes: int = Field(256 * 1024, ge=1024, le=1024**3)  # every route not named below
    ingest_bytes: int = Field(8 * 1024 * 1024, ge=1024, le=1024**3)  # POST /api/ingest
    rule_bytes: int = Field(1024 * 1024, ge=1024, le=1024**3)  # rule validate and create
    playbook_bytes: int = Field(256 * 1024, ge=1024, le=1024**3)  # POST /api/playbooks/validate
    intel_bytes: int = Field(32 * 1024 * 1024, ge=1024, le=1024**3)  # POST /api/intel/lists (one feed file)
    event_bytes: int = Field(256 * 1024, ge=256, le=1024**3)  # one event, as JSON
    event_fields: int = Field(1000, ge=10, le=1_000_000)  # keys in one event, nested ones too
    event_depth: int = Field(16, ge=2, le=128)  # nesting of objects and lists in one event


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    session_minutes: int = Field(480, ge=5, le=7 * 24 * 60)
    idle_minutes: int = Field(60, ge=1, le=24 * 60)
    # peers (addresses or networks) whose X-Forwarded-For names the client; nobody else's is believed
    trusted_proxies: list[str] = Field(default_factory=list)
    limits: ApiLimits = ApiLimits()

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)  # ValueError names the bad entry
        return value


class ThrottleSettings(_Section):
    """Sign-in throttling, per (account, address) and per address (IPv6 by /64)."""

    free_failures: int = Field(3, ge=1, le=10**6)  # failures per (account, address) before any delay
    base_delay_seconds: float = Field(15.0, gt=0, le=3600)  # then base·2^n …
    max_delay_seconds: float = Field(900.0, gt=0, le=86400)  # … capped here
    address_failures: int = Field(30, ge=1, le=10**6)  # failures from one address per window
    address_window_seconds: float = Field(900.0, gt=0, le=86400)


class AuthSettings(_Section):
    # people holding any of these roles must have a TOTP second factor (enrolled at sign-in)
    totp_required_roles: list[Role] = Field(default_factory=lambda: list[Role](["admin"]))
    reset_code_minutes: int = Field(15, ge=1, le=24 * 60)  # lifetime of an admin-issued reset code
    throttle: ThrottleSettings = ThrottleSettings()


class DetectionSettings(_Section):
    enabled: bool = True
    rules_dirs: list[Path] = Field(default_factory=list)
    interval_seconds: float = Field(0.5, gt=0, le=3600)
    batch_size: int = Field(5000, ge=1, le=100_000)
    # processes matching each batch (forked; 1 = in the engine's own process)
    workers: int = Field(1, ge=1, le=16)
    # a batch taking longer is logged (warning) with the rules that took the time
    slow_batch_seconds: float = Field(10.0, gt=0, le=3600)


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = False


class AuditSettings(_Section):
    # The chain's MAC key and the head anchors live outside the store, so someone who can write
    # the store can neither re-seal rewritten records nor hide deleted ones.
    key_file: Path | None = None  # default <data_dir>/secrets/audit.key, created 0600
    anchor_file: Path | None = None  # default <data_dir>/audit-anchors.jsonl
    anchor_syslog: str | None = None  # also send anchors to syslog: a socket path or host:port (UDP)
    anchor_every_records: int = Field(10, ge=1, le=100_000)
    anchor_every_minutes: float = Field(5.0, gt=0, le=24 * 60)
    # refused cross-agency attempts recorded per principal per minute (the rest are counted)
    cross_tenant_per_minute: int = Field(10, ge=1, le=1000)

    @field_validator("anchor_syslog")
    @classmethod
    def _syslog_address(cls, value: str | None) -> str | None:
        if value is None or value.startswith("/"):
            return value
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be a socket path (/dev/log) or host:port")
        return value


class WebhookSettings(_Section):
    """Outbound webhooks (playbooks.actions.notify). Nothing is posted unless its target is
    allowed here; private, loopback and link-local addresses are refused whatever this says."""

    # host names (``hooks.example.org``) or URL prefixes (``https://hooks.example.org/soc/``)
    allow: list[str] = Field(default_factory=list, max_length=1000)
    timeout_seconds: float = Field(10.0, gt=0, le=120)  # the whole request: connect, send and read
    allow_plain_http: bool = False  # http:// targets (no TLS); off: https only, certificate verified
    ca_file: Path | None = None  # a private CA for https targets; default: the system's

    @field_validator("allow")
    @classmethod
    def _targets(cls, value: list[str]) -> list[str]:
        for item in value:
            if "://" in item:
                if not item.startswith(("https://", "http://")):
                    raise ValueError(f"{item!r}: a URL prefix must start with https:// or http://")
            elif not item or any(ch in item for ch in "/@?# "):
                raise ValueError(f"{item!r}: give a host name or a URL prefix (https://host/path/)")
        return value


class SmtpSettings(_Section):
    """The mail relay e-mail notifications go through (playbooks.actions.notify)."""

    host: str | None = None  # unset: the email action is refused
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True  # required: a relay that does not offer STARTTLS is refused
    username: str | None = None
    password: SecretStr | None = None
    sender: str = "canhgac@localhost"  # the From address
    timeout_seconds: float = Field(20.0, gt=0, le=300)
    ca_file: Path | None = None  # a private CA for the relay's certificate; default: the system's


class GatewaySettings(_Section):
    """An agency gateway that blocks addresses through its SSH forced command
    (playbooks/gateway/contain_gateway.py in its authorized_keys)."""

    host: str
    port: int = Field(22, ge=1, le=65535)
    user: str = "canhgac"
    key_file: Path  # the dedicated private key, used for nothing else
    known_hosts_file: Path  # the gateway's host key; unknown keys are refused
    tenant: str  # the agency the gateway belongs to: only its runs may use it

    @field_validator("host", "user")
    @classmethod
    def _plain(cls, value: str) -> str:
        if not value or value.startswith("-") or not all(ch.isalnum() or ch in ".-_:" for ch in value):
            raise ValueError(f"{value!r}: letters, digits and . - _ : only, not starting with -")
        return value


class ContainSettings(_Section):
    """Blocking addresses with nftables (playbooks.actions.contain)."""

    # never blocked: the SOC's own addresses and anything that must stay reachable
    own_networks: list[str] = Field(default_factory=list, max_length=1000)
    allow_networks: list[str] = Field(default_factory=list, max_length=1000)
    max_prefix_v4: int = Field(24, ge=8, le=32)  # widest network one block may cover
    max_prefix_v6: int = Field(64, ge=16, le=128)
    default_seconds: int = Field(3600, ge=1, le=366 * 24 * 3600)  # a block's expiry when the step names none
    max_seconds: int = Field(7 * 24 * 3600, ge=1, le=366 * 24 * 3600)
    table: str = Field("canhgac", pattern=r"^[a-z][a-z0-9_]{0,30}$")  # nftables table (family inet)
    gateways: dict[str, GatewaySettings] = Field(default_factory=dict)

    @field_validator("own_networks", "allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)  # ValueError names the bad entry
        return value


class AssetSettings(_Section):
    """The asset inventory the enrich_assets action reads (playbooks.assets)."""

    paths: list[Path] = Field(default_factory=list, max_length=100)  # YAML or CSV files of agency hosts


class ShareSettings(_Section):
    """Where share_stix may POST a case's STIX bundle (playbooks.actions.share), through the same
    guard as webhooks: a public address only, checked after resolution, no redirects."""

    url: str | None = None  # a TAXII-like collection endpoint; unset: bundles are only kept in the run
    # the whole request; at most the webhooks' bound, since the post goes through their guard
    timeout_seconds: float = Field(20.0, gt=0, le=120)
    allow_plain_http: bool = False
    ca_file: Path | None = None
    # a file (mode 0600, first line) holding the endpoint's token, sent as `Authorization: Bearer …`;
    # unset: no Authorization header. Read at each post, so rotating it needs no restart.
    token_file: Path | None = None
    identity: str = Field("Canh Gác SOC", min_length=1, max_length=200)  # the bundle's producer name

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError(f"{value!r}: must be an https:// (or http://) URL")
        return value


class AgencyContact(_Section):
    """Whom a playbook tells about an agency's alerts: templates read it as ``agency``
    (``agency.email``, ``agency.webhook``, ``agency.language``)."""

    email: list[str] = Field(default_factory=list, max_length=20)  # the agency's security contacts
    webhook: str | None = Field(None, max_length=2048)  # e.g. its chat room's incoming hook
    language: Literal["vi", "en"] = "vi"  # of the messages sent to it


class PlaybookSettings(_Section):
    """Playbooks: the runner (``playbooks.runner``, run by ``soc up --role engine|all``) and the
    actions' settings."""

    enabled: bool = True
    dirs: list[Path] = Field(default_factory=list)  # folders of playbook YAML files
    library: bool = True  # also load the shipped playbooks/library/ (a playbook in dirs overrides one of the same name)
    max_concurrent_runs: int = Field(4, ge=1, le=64)
    approval_expiry_minutes: float = Field(240.0, gt=0, le=30 * 24 * 60)  # a gate without `expires`
    poll_seconds: float = Field(1.0, gt=0, le=3600)  # new alerts, approvals, pending runs
    retry_backoff_seconds: float = Field(2.0, ge=0, le=3600)  # first retry; doubles, at most 5 min
    webhook: WebhookSettings = WebhookSettings()
    smtp: SmtpSettings = SmtpSettings()
    contain: ContainSettings = ContainSettings()
    assets: AssetSettings = AssetSettings()
    share: ShareSettings = ShareSettings()
    agencies: dict[str, AgencyContact] = Field(default_factory=dict)  # agency id → its contacts


class JobTrigger(_Section):
    """When a scheduled job runs: a crontab line (``30 2 * * *``, in ``scheduler.timezone``) or
    every so many minutes; ``enabled: false`` leaves the job out."""

    enabled: bool = True
    cron: str | None = Field(None, max_length=200)
    every_minutes: float | None = Field(None, gt=0, le=366 * 24 * 60)

    @model_validator(mode="after")
    def _one_trigger(self) -> JobTrigger:
        if self.cron is not None and self.every_minutes is not None:
            # a job's default schedule gives way to the one the configuration names
            if "cron" not in self.model_fields_set:
                self.cron = None
            elif "every_minutes" not in self.model_fields_set:
                self.every_minutes = None
            else:
                raise ValueError("give cron (a crontab line) or every_minutes, not both")
        if self.enabled and self.cron is None and self.every_minutes is None:
            raise ValueError("give cron (a crontab line) or every_minutes")
        if self.cron is not None:
            from apscheduler.triggers.cron import CronTrigger  # noqa: PLC0415 - only to check the line

            try:
                CronTrigger.from_crontab(self.cron)
            except ValueError as exc:
                raise ValueError(f"cron {self.cron!r}: {exc} (five fields: minute hour day month weekday)") from exc
        return self


class DailyJob(JobTrigger):
    cron: str | None = Field("30 2 * * *", max_length=200)


class FrequentJob(JobTrigger):
    every_minutes: float | None = Field(60.0, gt=0, le=366 * 24 * 60)


class RetentionSettings(_Section):
    """How long events are kept (the retention job): whole daily indices on Elasticsearch, rows
    on SQLite, older than the dataset's days."""

    days: int = Field(90, ge=1, le=36_500)  # every dataset not named below
    datasets: dict[str, int] = Field(default_factory=dict, max_length=1000)  # dataset → days
    job_runs_days: int = Field(90, ge=1, le=36_500)  # the scheduler's own run records

    @field_validator("datasets")
    @classmethod
    def _dataset_days(cls, value: dict[str, int]) -> dict[str, int]:
        bad = [name for name in value if not DATASET.match(name)]
        if bad:
            raise ValueError(f"not dataset names: {bad}; use lowercase letters, digits, '_' or '.'")
        short = [name for name, days in value.items() if not 1 <= days <= 36_500]
        if short:
            raise ValueError(f"days must be 1..36500 for {short}")
        return value


class SilenceSettings(JobTrigger):
    """The sensor-silence job: an alert when a sensor's heartbeat, or an agency's events of a
    dataset, stop for longer than expected."""

    every_minutes: float | None = Field(5.0, gt=0, le=366 * 24 * 60)
    sensor_minutes: float = Field(30.0, gt=0, le=30 * 24 * 60)  # any sensor kind not named below
    sensor_kinds: dict[str, float] = Field(default_factory=dict, max_length=100)  # kind → minutes
    # dataset → minutes; only these datasets are watched, per agency that sent any in lookback_days
    datasets: dict[str, float] = Field(default_factory=dict, max_length=1000)
    lookback_days: int = Field(7, ge=1, le=365)
    level: Literal["low", "medium", "high", "critical"] = "medium"


class HuntSettings(_Section):
    """A saved hunt query run on a schedule: each new matching event raises an alert."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    tenant: str = Field(min_length=2, max_length=40)  # one agency, or * for every agency
    query: str = Field(min_length=1, max_length=4000)  # the hunt language (DESIGN §4)
    every_minutes: float = Field(15.0, gt=0, le=30 * 24 * 60)
    level: Literal["informational", "low", "medium", "high", "critical"] = "medium"
    title: str | None = Field(None, max_length=200)  # the alerts' rule name; default "Hunt: <name>"


# one plain address (user@host): no display name, list, comment or line break, so a recipient
# written in the configuration can be neither several people nor an injected header
MAILBOX = r"^[^\s@<>,;:\"()\[\]\\]+@[^\s@<>,;:\"()\[\]\\]+$"


class DigestRecipient(_Section):
    address: str = Field(min_length=3, max_length=254, pattern=MAILBOX)
    tenants: list[str] = Field(default_factory=lambda: ["*"], min_length=1, max_length=1000)  # * = every agency
    language: Literal["vi", "en"] = "vi"


class DigestSettings(JobTrigger):
    """The analysts' daily digest: per agency, the last day's new alerts by level and the open
    cases, e-mailed through ``playbooks.smtp``."""

    cron: str | None = Field("0 7 * * *", max_length=200)
    recipients: list[DigestRecipient] = Field(default_factory=list, max_length=1000)


class WeeklyReportRecipient(_Section):
    address: str = Field(min_length=3, max_length=254, pattern=MAILBOX)
    tenant: str = Field("*", pattern=r"^(\*|[a-z][a-z0-9_]{1,39})$")  # an agency's report, or * the province's
    language: Literal["vi", "en"] = "vi"
    format: Literal["pdf", "html"] = "pdf"  # the attachment


class WeeklyReportList(JobTrigger):
    """Recipients of the weekly report on a schedule of their own (job ``weekly-report-<name>``)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")
    cron: str | None = Field("0 7 * * 1", max_length=200)
    recipients: list[WeeklyReportRecipient] = Field(min_length=1, max_length=1000)


class WeeklyReportSettings(JobTrigger):
    """The managers' weekly report (``scheduling.jobs.weekly_report``): the previous ISO week of
    each tenant a recipient follows, stored and e-mailed through ``playbooks.smtp``. ``lists``
    give other recipients their own schedule (each list is a job of its own)."""

    cron: str | None = Field("0 7 * * 1", max_length=200)  # Monday 07:00 in scheduler.timezone
    recipients: list[WeeklyReportRecipient] = Field(default_factory=list, max_length=1000)
    lists: list[WeeklyReportList] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _unique_lists(self) -> WeeklyReportSettings:
        names = [entry.name for entry in self.lists]
        if len(set(names)) != len(names):
            raise ValueError(f"two recipient lists share a name: {sorted(names)}")
        return self


class SchedulerSettings(_Section):
    """The scheduler (``scheduling``): which processes run it and when each job runs."""

    # run it in `soc up` (--role all) and --role engine; --role scheduler runs it whatever this says
    enabled: bool = True
    timezone: str = "Asia/Ho_Chi_Minh"  # of cron lines
    # a run missed by more than this (the process was down) is recorded as missed, not run
    misfire_grace_minutes: float = Field(360.0, gt=0, le=30 * 24 * 60)
    retention: DailyJob = DailyJob()  # 02:30 every day
    silence: SilenceSettings = SilenceSettings()  # every 5 minutes
    hunts: list[HuntSettings] = Field(default_factory=list, max_length=500)
    digest: DigestSettings = DigestSettings()  # 07:00 every day
    weekly_report: WeeklyReportSettings = WeeklyReportSettings()  # Monday 07:00
    throttle_purge: FrequentJob = FrequentJob()  # every hour

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # noqa: PLC0415

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (an IANA name: Asia/Ho_Chi_Minh)") from exc
        return value

    @field_validator("hunts")
    @classmethod
    def _unique_hunts(cls, value: list[HuntSettings]) -> list[HuntSettings]:
        names = [hunt.name for hunt in value]
        doubled = sorted({name for name in names if names.count(name) > 1})
        if doubled:
            raise ValueError(f"hunt names must be unique: {doubled}")
        return value


class LevelSla(_Section):
    """How soon an alert of one level must be acknowledged and resolved (reports count breaches)."""

    ack_minutes: float = Field(gt=0, le=365 * 24 * 60)
    resolve_minutes: float = Field(gt=0, le=365 * 24 * 60)


class SlaSettings(_Section):
    critical: LevelSla = LevelSla(ack_minutes=15, resolve_minutes=4 * 60)
    high: LevelSla = LevelSla(ack_minutes=60, resolve_minutes=24 * 60)
    medium: LevelSla = LevelSla(ack_minutes=4 * 60, resolve_minutes=3 * 24 * 60)
    low: LevelSla = LevelSla(ack_minutes=24 * 60, resolve_minutes=7 * 24 * 60)
    informational: LevelSla = LevelSla(ack_minutes=3 * 24 * 60, resolve_minutes=14 * 24 * 60)


class ReportSettings(_Section):
    """The weekly report (:mod:`reports.metrics`)."""

    timezone: str = "Asia/Ho_Chi_Minh"  # ISO weeks and days are counted in this zone
    province_name: str = Field("Toàn tỉnh", min_length=1, max_length=200)  # the province-wide report's name
    sla: SlaSettings = SlaSettings()
    # a sensor is silent at the week's end with no heartbeat for this long …
    silent_after_minutes: float = Field(15.0, gt=0, le=30 * 24 * 60)
    # … or no event stored from it for this long (log sources may be quiet for hours)
    quiet_after_hours: float = Field(24.0, gt=0, le=366 * 24)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Asia/Ho_Chi_Minh") from exc
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SOC_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    data_dir: Path = Path("var")
    store: StoreSettings = StoreSettings()
    api: ApiSettings = ApiSettings()
    auth: AuthSettings = AuthSettings()
    detection: DetectionSettings = DetectionSettings()
    log: LogSettings = LogSettings()
    audit: AuditSettings = AuditSettings()
    playbooks: PlaybookSettings = PlaybookSettings()
    retention: RetentionSettings = RetentionSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    reports: ReportSettings = ReportSettings()

    @property
    def sqlite_path(self) -> Path:
        return self.store.sqlite_path or self.data_dir / "canhgac.db"

    @property
    def audit_key_file(self) -> Path:
        return self.audit.key_file or self.data_dir / "secrets" / "audit.key"

    @property
    def audit_anchor_file(self) -> Path:
        return self.audit.anchor_file or self.data_dir / "audit-anchors.jsonl"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init values carry the YAML file; the environment overrides it.
        return env_settings, init_settings


ModelT = TypeVar("ModelT", bound=BaseModel)


def read_config_file(path: Path, *, what: str = "configuration file") -> Any:
    """The data of a YAML configuration file (through :mod:`soc_core.safe_yaml`); a file that
    cannot be read or parsed is a :class:`ConfigError` naming it (file:line for bad YAML)."""
    try:
        return load_yaml_file(path)
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror or exc}", where=str(path)) from exc
    except ParseError as exc:
        raise ConfigError(exc.message, where=exc.where, hint=exc.hint) from exc


def validation_problems(exc: ValidationError) -> list[str]:
    """Every problem pydantic found (not only the first), as ``key.path: message``."""
    return [
        f"{'.'.join(str(part) for part in error['loc']) or '(top level)'}: "
        + ("unknown key" if error["type"] == "extra_forbidden" else error["msg"])
        for error in exc.errors()
    ]


def validate_config(model: type[ModelT], data: Any, *, where: str, what: str, hint: str | None = None) -> ModelT:
    """``data`` as ``model``; its problems, all of them, become one :class:`ConfigError` at ``where``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid {what}: " + "; ".join(validation_problems(exc)), where=where, hint=hint) from exc


def _read_yaml(path: Path) -> dict[str, Any]:
    data = read_config_file(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("the configuration must be a mapping of keys to values", where=str(path))
    return data


def load_settings(path: Path | None = None) -> Settings:
    """Load the configuration; raises :class:`ConfigError` naming the file and key."""
    if path is None and os.environ.get("SOC_CONFIG"):
        path = Path(os.environ["SOC_CONFIG"])
    data = _read_yaml(path) if path else {}
    try:
        return Settings(**data)
    except ValidationError as exc:  # not validate_config: Settings(...) also reads the environment
        where = str(path) if path else "environment (SOC_* variables)"
        problems = "; ".join(validation_problems(exc))
        raise ConfigError(problems, where=where, hint="see `soc config show` for every key") from exc


__all__ = [
    "AgencyContact",
    "ApiLimits",
    "ApiSettings",
    "AuditSettings",
    "AuthSettings",
    "ContainSettings",
    "DailyJob",
    "DetectionSettings",
    "DigestRecipient",
    "DigestSettings",
    "ElasticsearchSettings",
    "FrequentJob",
    "GatewaySettings",
    "HuntSettings",
    "JobTrigger",
    "LevelSla",
    "PlaybookSettings",
    "ReportSettings",
    "RetentionSettings",
    "SchedulerSettings",
    "Settings",
    "SilenceSettings",
    "SlaSettings",
    "SmtpSettings",
    "StoreSettings",
    "ThrottleSettings",
    "WebhookSettings",
    "WeeklyReportRecipient",
    "WeeklyReportSettings",
    "load_settings",
    "read_config_file",
    "validate_config",
    "validation_problems",
]
