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

Every problem in the file is reported at once, each with its location.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sensors.forwarder.forwarder import WhenFull
from sensors.parsers import PARSERS
from sensors.sources.logfile import DEFAULT_EXCLUDE
from soc_core.errors import ConfigError, ParseError
from soc_core.events import check_tenant_id


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputConfig(_Strict):
    paths: list[str] = Field(min_length=1)
    parser: str = "auth"
    id: str | None = None
    from_beginning: bool = False
    timezone: str = "UTC"
    exclude: list[str] = Field(default_factory=lambda: list(DEFAULT_EXCLUDE))
    max_line_bytes: int = Field(default=1024 * 1024, ge=1)
    fingerprint_bytes: int = Field(default=1024, ge=16)

    @field_validator("parser")
    @classmethod
    def _known_parser(cls, value: str) -> str:
        if value not in PARSERS:
            raise ValueError(f"unknown parser {value!r}; use one of {sorted(PARSERS)}")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value

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


class SensorConfig(_Strict):
    tenant: str = Field(min_length=1)
    sensor_id: str = Field(min_length=1)
    state_dir: Path
    inputs: list[InputConfig] = Field(min_length=1)
    forwarder: ForwarderConfig = Field(default_factory=ForwarderConfig)
    poll_interval: float = Field(default=0.25, gt=0)
    checkpoint_interval: float = Field(default=1.0, ge=0)

    @field_validator("tenant")
    @classmethod
    def _valid_tenant(cls, value: str) -> str:
        try:
            return check_tenant_id(value)
        except ParseError as exc:
            raise ValueError(exc.render()) from exc

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<config>") -> SensorConfig:
        """Validate; every problem becomes one line of a single :class:`ConfigError`."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = [
                f"{'.'.join(str(part) for part in error['loc']) or '(top)'}: {error['msg']}" for error in exc.errors()
            ]
            raise ConfigError("invalid sensor configuration:\n  " + "\n  ".join(problems), where=source) from exc


def load_config(path: Path) -> SensorConfig:
    """Read a sensor YAML file (safe loader only)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read sensor configuration: {exc}", where=str(path)) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"not valid YAML: {exc}", where=where) from exc
    return SensorConfig.from_dict(data, source=str(path))


__all__ = ["ForwarderConfig", "InputConfig", "SensorConfig", "load_config"]
