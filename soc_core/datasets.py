"""The datasets (``event.dataset``) events may carry: each gets its own Elasticsearch indices.

A dataset is part of an event index's name (``canhgac-events-<tenant>-<dataset>-<day>``), so
every new value is a new index per day, and a sensor sending arbitrary datasets can fill a
cluster's shard limit. Only the datasets below — the ones our sensors and parsers emit — plus
those a deployment adds (``store.extra_datasets``) are kept; anything else is stored under
:data:`UNKNOWN_DATASET` (see :mod:`soc_core.bounds`). Nothing here imports the sensors
(imports flow one way); a test checks this list against every parser and Windows channel.
"""

from __future__ import annotations

from collections.abc import Iterable

from soc_core.errors import InvalidInput
from soc_core.events import DATASET

UNKNOWN_DATASET = "unknown"

# Windows: ``windows.<channel>`` for every channel Sigma's Windows log sources name (what
# sensors.parsers.windows.dataset_for makes of them), and ``windows.unknown`` for the rest.
WINDOWS_DATASETS = frozenset(
    f"windows.{name}"
    for name in (
        "application",
        "applocker_exe_and_dll",
        "applocker_msi_and_script",
        "applocker_packaged_app_deployment",
        "applocker_packaged_app_execution",
        "appmodel_runtime_admin",
        "appxdeploymentserver",
        "appxpackaging",
        "bitlocker_bitlocker_management",
        "bits_client",
        "capi2",
        "certificateservicesclient_lifecycle_system",
        "codeintegrity",
        "dhcp_server",
        "diagnosis_scripted",
        "dns_client_events",
        "dns_server",
        "dns_server_analytical",
        "dns_server_audit",
        "driverframeworks_usermode",
        "ldap_client_debug",
        "lsa",
        "microsoft_servicebus_client",
        "msexchange_management",
        "ntlm",
        "openssh",
        "powershell",
        "powershell_classic",
        "printservice",
        "printservice_admin",
        "security",
        "security_mitigations_kernel_mode",
        "security_mitigations_user_mode",
        "shell_core",
        "smbclient_security",
        "sysmon",
        "system",
        "taskscheduler",
        "terminalservices_localsessionmanager",
        "unknown",
        "vhdmp",
        "windows_defender",
        "windows_firewall_with_advanced_security_firewall",
        "wmi_activity",
    )
)

KNOWN_DATASETS: frozenset[str] = frozenset(
    {
        "system.auth",  # auth, sshd, sudo, accounts parsers
        "system.syslog",
        "nginx.access",
        "nginx.error",
        "apache.access",
        "apache.error",
        "fortinet.firewall",
        "json.generic",
        "network.flow",  # network sensor
        "network.dns",
        "network.http",
        "network.tls",
        "network.arp",
        "network.packet",
        "canhgac.sensor_health",
        UNKNOWN_DATASET,
        *WINDOWS_DATASETS,
    }
)


def check_dataset(name: str) -> str:
    """``name`` if it can be a dataset (part of an index name), else :class:`InvalidInput`."""
    if not isinstance(name, str) or not DATASET.match(name):
        raise InvalidInput(
            f"bad dataset name {name!r}",
            hint="use 1-80 lowercase letters, digits, '_' or '.', starting with a letter or digit",
        )
    return name


def allowed_datasets(extra: Iterable[str] = ()) -> frozenset[str]:
    """The known datasets plus a deployment's own (``store.extra_datasets``)."""
    return KNOWN_DATASETS | frozenset(check_dataset(name) for name in extra)


__all__ = ["KNOWN_DATASETS", "UNKNOWN_DATASET", "WINDOWS_DATASETS", "allowed_datasets", "check_dataset"]
