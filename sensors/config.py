"""Log sensor configuration: YAML → pydantic models → :class:`SensorConfig`, one path.

::

    tenant: police                 # from the sensor's credentials; never read from events
    sensor_id: web01-logs
    state_dir: /var/lib/canhgac/sensor   # checkpoints, spool, dead letters
    inputs:
      - paths: ["/var/log/auth.log*"]
        parser: auth               # auth | sshd | sudo | accounts | syslog
        from_beginning: false
        timezone: Asia/Ho_Chi_Minh # of timestamps without a zone
    forwarder:
      when_full: block             # or drop_newest
      spool_max_bytes: 268435456

A syslog receiver (``soc sensor syslog --config``) has listeners instead of inputs::

    tenant: police
    sensor_id: fw01-syslog
    state_dir: /var/lib/canhgac/syslog
    udp: ["0.0.0.0:514"]
    tcp: ["0.0.0.0:514"]
    parser: firewall               # any registered parser; syslog by default
    max_message_bytes: 8192        # 480..65536; longer messages are truncated and flagged
    max_connections: 1000
    idle_timeout: 60

Either kind may write straight to Elasticsearch with its own credential (``soc sensor enroll``
makes an API key that can only add events for its tenant) instead of the product's store, and
may report its health to the SOC API::

    elasticsearch:
      url: https://es.example.gov.vn:9200
      api_key_file: /etc/canhgac/sensor-es.key   # 0600; or username + password_file
      extra_datasets: []           # datasets beyond the known list get their own indices
      max_event_age_days: 365      # an @timestamp outside [now - age, now + skew] becomes now
      max_future_skew_hours: 24
    health:
      api_url: https://soc.example.gov.vn
      api_key_file: /etc/canhgac/sensor-api.key  # the key `POST /api/sensors` returned
      interval: 60

Every problem in the file is reported at once, each with its location.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any, Self, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sensors.forwarder.forwarder import WhenFull
from sensors.parsers import PARSERS
from sensors.sources.logfile import DEFAULT_EXCLUDE
from sensors.sources.syslog import DEFAULT_MAX_MESSAGE_BYTES, LIMIT_MAX_MESSAGE_BYTES, Listener
from soc_core.bounds import EventBounds
from soc_core.config import read_config_file, validate_config
from soc_core.datasets import allowed_datasets, check_dataset
from soc_core.errors import ConfigError, InvalidInput, ParseError
from soc_core.events import check_tenant_id


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _known_parser(value: str) -> str:
    if value not in PARSERS:
        raise ValueError(f"unknown parser {value!r}; use one of {sorted(PARSERS)}")
    return value


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {value!r}") from exc
    return value


class InputConfig(_Strict):
    paths: list[str] = Field(min_length=1)
    parser: str = "auth"
    id: str | None = None
    from_beginning: bool = False
    timezone: str = "UTC"
    exclude: list[str] = Field(default_factory=lambda: list(DEFAULT_EXCLUDE))
    max_line_bytes: int = Field(default=1024 * 1024, ge=1)
    fingerprint_bytes: int = Field(default=1024, ge=16)

    _parser = field_validator("parser")(_known_parser)
    _zone = field_validator("timezone")(_known_zone)

    @property
    def key(self) -> str:
        """Names this input's checkpoint file: ``id``, or a hash of its paths."""
        if self.id:
            return self.id
        return hashlib.sha256("\n".join(sorted(self.paths)).encode()).hexdigest()[:16]


class ForwarderConfig(_Strict):
    batch_max_events: int = Field(default=500, ge=1)
    batch_max_bytes: int = Field(default=4 * 1024 * 1024, ge=1)
    batch_max_age: float = Field(default=1.0, ge=0)
    spool_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    spool_segment_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    when_full: WhenFull = "block"
    fsync: bool = False
    shutdown_timeout: float = Field(default=10.0, ge=0)
    backoff_initial: float = Field(default=0.2, gt=0)
    backoff_max: float = Field(default=30.0, gt=0)


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {value!r}")
    return value.rstrip("/")


class ElasticsearchOutput(_Strict):
    """Where a sensor writes straight to Elasticsearch, and the credential it writes with."""

    url: str
    api_key_file: Path | None = None
    username: str | None = None
    password_file: Path | None = None
    request_timeout: float = Field(default=10.0, gt=0)
    # the bounds on the indices its events make (soc_core.bounds), as the server's store.* keys
    extra_datasets: list[str] = Field(default_factory=list, max_length=1000)
    max_event_age_days: int = Field(default=365, ge=1, le=36_500)
    max_future_skew_hours: int = Field(default=24, ge=0, le=24 * 366)

    _url = field_validator("url")(_http_url)

    @field_validator("extra_datasets")
    @classmethod
    def _dataset_names(cls, value: list[str]) -> list[str]:
        for name in value:
            try:
                check_dataset(name)
            except InvalidInput as exc:
                raise ValueError(exc.message) from exc
        return value

    @property
    def bounds(self) -> EventBounds:
        return EventBounds(
            allowed_datasets(self.extra_datasets),
            timedelta(days=self.max_event_age_days),
            timedelta(hours=self.max_future_skew_hours),
        )

    @model_validator(mode="after")
    def _one_credential(self) -> ElasticsearchOutput:
        with_key = self.api_key_file is not None
        with_user = self.username is not None or self.password_file is not None
        if with_key == with_user:
            raise ValueError("give either api_key_file, or username and password_file")
        if with_user and (self.username is None or self.password_file is None):
            raise ValueError("username and password_file go together")
        return self


class HealthConfig(_Strict):
    """Heartbeats to the SOC API: ``POST {api_url}/api/sensors/heartbeat`` every ``interval`` s."""

    api_url: str
    api_key_file: Path
    interval: float = Field(default=60.0, gt=0)
    timeout: float = Field(default=5.0, gt=0)

    _url = field_validator("api_url")(_http_url)


class _SensorBase(_Strict):
    """What every sensor has: its tenant (from its credentials), id, state and forwarder."""

    tenant: str = Field(min_length=1)
    sensor_id: str = Field(min_length=1)
    state_dir: Path
    forwarder: ForwarderConfig = Field(default_factory=ForwarderConfig)

    @field_validator("tenant")
    @classmethod
    def _valid_tenant(cls, value: str) -> str:
        try:
            return check_tenant_id(value)
        except ParseError as exc:
            raise ValueError(exc.render()) from exc

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<config>") -> Self:
        """Validate; every problem becomes one line of a single :class:`ConfigError`."""
        return validate_config(cls, data, where=source, what="sensor configuration")


class SensorConfig(_SensorBase):
    inputs: list[InputConfig] = Field(min_length=1)
    elasticsearch: ElasticsearchOutput | None = None
    health: HealthConfig | None = None
    poll_interval: float = Field(default=0.25, gt=0)
    checkpoint_interval: float = Field(default=1.0, ge=0)


class ImportConfig(_SensorBase):
    """A one-shot import (EVTX files, stdin): no inputs to follow, only where events go."""

    timezone: str = "UTC"
    max_line_bytes: int = Field(default=1024 * 1024, ge=1)

    _zone = field_validator("timezone")(_known_zone)


class SyslogSensorConfig(_SensorBase):
    """A syslog receiver: ``udp``/``tcp`` are lists of ``host:port`` to listen on."""

    udp: list[str] = Field(default_factory=list)
    tcp: list[str] = Field(default_factory=list)
    parser: str = "syslog"
    timezone: str = "UTC"
    max_message_bytes: int = Field(default=DEFAULT_MAX_MESSAGE_BYTES, ge=480, le=LIMIT_MAX_MESSAGE_BYTES)
    max_connections: int = Field(default=1000, ge=1, le=100_000)
    idle_timeout: float = Field(default=60.0, gt=0)
    queue_size: int = Field(default=20_000, ge=1)
    udp_receive_buffer: int | None = Field(default=None, ge=4096)
    keep_original: bool = True  # the network cannot be re-read: keep the raw message
    elasticsearch: ElasticsearchOutput | None = None
    health: HealthConfig | None = None

    _parser = field_validator("parser")(_known_parser)
    _zone = field_validator("timezone")(_known_zone)

    @model_validator(mode="after")
    def _listens_somewhere(self) -> SyslogSensorConfig:
        if not self.udp and not self.tcp:
            raise ValueError("listen on at least one udp or tcp address")
        for protocol, addresses in (("udp", self.udp), ("tcp", self.tcp)):
            for address in addresses:
                try:
                    Listener.parse(protocol, address)  # type: ignore[arg-type]
                except ConfigError as exc:
                    raise ValueError(exc.message) from exc
        return self

    def listeners(self) -> list[Listener]:
        return [Listener.parse("udp", a) for a in self.udp] + [Listener.parse("tcp", a) for a in self.tcp]


ConfigT = TypeVar("ConfigT", bound=_SensorBase)


def load_config(path: Path, model: type[ConfigT] = SensorConfig) -> ConfigT:  # type: ignore[assignment]
    """Read a sensor YAML file (safe loader only) as ``model``."""
    data = read_config_file(Path(path), what="sensor configuration")
    return model.from_dict(data, source=str(path))


__all__ = [
    "ElasticsearchOutput",
    "ForwarderConfig",
    "HealthConfig",
    "ImportConfig",
    "InputConfig",
    "SensorConfig",
    "SyslogSensorConfig",
    "load_config",
]
