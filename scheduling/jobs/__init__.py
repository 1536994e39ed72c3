"""The jobs this package ships, registered from the configuration (``scheduler.*``)."""

from __future__ import annotations

from scheduling.jobs import digest, hunts, retention, silence
from scheduling.registry import JobRegistry
from soc_core.config import Settings


def builtin_jobs(settings: Settings, registry: JobRegistry | None = None) -> JobRegistry:
    """Retention, sensor silence, the digest and one job per configured hunt."""
    registry = registry or JobRegistry()
    config = settings.scheduler
    registry.add("retention", config.retention, retention.run, "delete events past each dataset's retention")
    registry.add("sensor-silence", config.silence, silence.run, "alert on sensors and log sources gone quiet")
    registry.add("digest", config.digest, digest.run, "e-mail the analysts' daily digest")
    for hunt in config.hunts:
        registry.add(hunts.job_id(hunt.name), hunts.trigger(hunt), hunts.run, f"hunt {hunt.name}: {hunt.query}")
    return registry


__all__ = ["builtin_jobs"]
