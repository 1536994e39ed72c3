"""Enrol a sensor that writes straight to Elasticsearch: an API key that can only add events.

A sensor's credential decides its tenant (DESIGN.md §3). The key made here carries one role
whose only index privileges are ``create_doc``, ``create_index``, ``auto_configure`` and
``view_index_metadata`` on ``<prefix>-events-<tenant>-*``: the sensor can create its own
tenant's daily indices and add (never overwrite, read or delete) documents in them. A write
into another tenant's index, a read of any index and every cluster action are refused by
Elasticsearch with a 403. Tenant ids never contain ``-``, so ``police-*`` cannot match
``police_hq``'s indices.

The key's metadata names the sensor and tenant, so an administrator can list and revoke the
keys of one sensor (``GET /_security/api_key?name=canhgac-sensor-police-web01``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch

from soc_core.errors import AuthError, ConfigError, ParseError, SocError, StoreUnavailable
from soc_core.events import check_tenant_id
from soc_core.store.elasticsearch import PREFIX

SENSOR_INDEX_PRIVILEGES = ("create_doc", "create_index", "auto_configure", "view_index_metadata")
ROLE_NAME = "canhgac_sensor"


def sensor_role_descriptor(tenant: str, prefix: str = PREFIX) -> dict[str, Any]:
    """The one role of a sensor key: add events to its tenant's indices, nothing else."""
    return {
        "cluster": [],
        "indices": [
            {
                "names": [f"{prefix}-events-{tenant}-*"],
                "privileges": list(SENSOR_INDEX_PRIVILEGES),
                "allow_restricted_indices": False,
            }
        ],
        "applications": [],
        "run_as": [],
        "metadata": {"canhgac_tenant": tenant},
    }


def key_name(tenant: str, sensor_id: str) -> str:
    return f"{PREFIX}-sensor-{tenant}-{sensor_id}"


@dataclass(frozen=True)
class EnrolledKey:
    """What Elasticsearch returned; ``encoded`` is the secret (``base64(id:key)``), shown once."""

    id: str
    name: str
    encoded: str
    tenant: str
    sensor_id: str
    expiration: int | None = None  # epoch milliseconds

    def __repr__(self) -> str:  # the secret must not reach logs through a repr
        return f"EnrolledKey(id={self.id!r}, name={self.name!r}, tenant={self.tenant!r}, sensor_id={self.sensor_id!r})"


def enroll_sensor(
    client: Elasticsearch,
    *,
    tenant: str,
    sensor_id: str,
    expiration: str | None = None,
    url: str = "",
) -> EnrolledKey:
    """Create the sensor's API key with ``client`` (an administrator's credentials)."""
    try:
        check_tenant_id(tenant)
    except ParseError as exc:
        raise ConfigError(exc.message, where="--tenant") from exc
    if not sensor_id or len(sensor_id) > 100:
        raise ConfigError("a sensor id of 1 to 100 characters is required", where="--sensor-id")
    name = key_name(tenant, sensor_id)
    kwargs: dict[str, Any] = {}
    if expiration:
        kwargs["expiration"] = expiration
    try:
        response = client.security.create_api_key(
            name=name,
            role_descriptors={ROLE_NAME: sensor_role_descriptor(tenant)},
            metadata={"canhgac": {"kind": "sensor", "tenant": tenant, "sensor_id": sensor_id}},
            **kwargs,
        )
    except ApiError as exc:
        raise _refused(exc, url) from exc
    except TransportError as exc:
        raise StoreUnavailable(f"Elasticsearch unreachable while creating an API key: {exc}", where=url) from exc
    return EnrolledKey(
        id=str(response["id"]),
        name=str(response["name"]),
        encoded=str(response["encoded"]),
        tenant=tenant,
        sensor_id=sensor_id,
        expiration=response.get("expiration"),
    )


def _refused(exc: ApiError, url: str) -> SocError:
    status = exc.meta.status
    if status in (401, 403):
        return AuthError(
            f"Elasticsearch refused to create the API key ({status}): {exc.message}",
            where=url,
            hint="use an administrator's credentials: they need the manage_api_key or manage_own_api_key "
            "cluster privilege and, to hand them on, the sensor's index privileges",
        )
    text = str(exc.info)
    if "pattern_capture" in text:
        # The security index's settings use an analyzer from the analysis-common module.
        return SocError(
            "this Elasticsearch cannot store API keys: its security index needs the analysis-common "
            "module, which this distribution lacks",
            where=url,
            hint="enrol against a full Elasticsearch distribution (the integ-test-zip dev node has no such module)",
        )
    return SocError(f"Elasticsearch refused to create the API key ({status}): {text:.300}", where=url)


def write_secret(path: Path, secret: str) -> None:
    """Write ``secret`` to a new file only its owner can read (0600); never overwrite one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigError("refusing to overwrite an existing key file", where=str(path)) from exc
    except OSError as exc:
        raise ConfigError(f"cannot write the key file: {exc.strerror}", where=str(path)) from exc
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(secret + "\n")
    path.chmod(0o600)  # in case the umask took bits away it should not have added


def sensor_config_snippet(key: EnrolledKey, *, url: str, key_file: Path | None) -> str:
    """The part of the sensor YAML that sends events straight to Elasticsearch with the key."""
    lines = [
        f"tenant: {key.tenant}",
        f"sensor_id: {key.sensor_id}",
        "elasticsearch:",
        f"  url: {url}",
        f"  api_key_file: {key_file if key_file is not None else '/etc/canhgac/sensor-es.key  # put the key here'}",
    ]
    return "\n".join(lines) + "\n"


__all__ = [
    "SENSOR_INDEX_PRIVILEGES",
    "EnrolledKey",
    "enroll_sensor",
    "key_name",
    "sensor_config_snippet",
    "sensor_role_descriptor",
    "write_secret",
]
