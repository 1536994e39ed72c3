"""pySigma processing pipelines that map Sigma field names to the ECS names our sensors write.

One pipeline per schema, each guarded by log-source conditions so it only touches rules of its
kind; :func:`canhgac_pipeline` chains them all. Rules already written with our ECS names
(``user.name``, ``source.ip`` …) pass through unchanged: the mappings only name Sigma/SigmaHQ
field names, and the Windows ``winlog.event_data.`` prefix skips dotted names.

Pipelines carry per-run state and mutate the rules they process, so every function here builds
a new pipeline on each call, and callers process a fresh copy of the rule
(:meth:`detections.loader.LoadedRule.fresh`).

=====================  ==========================================  ===========================
schema                 applies to rules with log source            maps, for example
=====================  ==========================================  ===========================
``linux_auth``         product ``linux`` (sshd, sudo, su, auth,    ``User`` → ``user.name``,
                       syslog, process_creation …)                 ``CommandLine`` →
                                                                   ``process.command_line``
``web_access``         category ``webserver`` / ``proxy``,         ``cs-uri-query`` →
                       services ``apache`` / ``nginx``             ``url.original``, ``sc-status``
                                                                   → ``http.response.status_code``
``windows``            product ``windows`` (ES backend's           ``Image`` → ``process.executable``
                       ``ecs_windows``; ``.caseless`` dropped)     others → ``winlog.event_data.*``
``network``            category ``dns`` / ``firewall`` /           ``query`` → ``dns.question.name``,
                       ``network_connection`` (non-Windows)        ``dst_port`` → ``destination.port``
=====================  ==========================================  ===========================
"""

from __future__ import annotations

from collections.abc import Callable

from sigma.pipelines.elasticsearch.windows import ecs_windows
from sigma.processing.conditions import LogsourceCondition
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import FieldFunctionTransformation, FieldMappingTransformation

from soc_core.errors import ConfigError

LINUX_FIELDS: dict[str | None, str | list[str]] = {
    # sshd / sudo / su / generic auth
    "User": "user.name",
    "user": "user.name",
    "username": "user.name",
    "pam_user": "user.name",
    "TargetUser": "user.effective.name",
    "target_user": "user.effective.name",
    "SourceIp": "source.ip",
    "src_ip": "source.ip",
    "pam_rhost": "source.ip",
    "rhost": "source.ip",
    "SourcePort": "source.port",
    "src_port": "source.port",
    "Hostname": "host.name",
    "hostname": "host.name",
    "Computer": "host.name",
    "Message": "message",
    "msg": "message",
    "method": "system.auth.ssh.method",
    # process_creation (auditd execve / EDR) — same ECS targets as Windows
    "Image": "process.executable",
    "CommandLine": "process.command_line",
    "ParentImage": "process.parent.executable",
    "ParentCommandLine": "process.parent.command_line",
    "CurrentDirectory": "process.working_directory",
    "ProcessId": "process.pid",
    "ParentProcessId": "process.parent.pid",
    "LogonId": "process.user.id",
    "TargetFilename": "file.path",
    "DestinationIp": "destination.ip",
    "DestinationPort": "destination.port",
    "DestinationHostname": "destination.domain",
    "Initiated": "network.direction",
}

WEB_FIELDS: dict[str | None, str | list[str]] = {
    # SigmaHQ rules put path and query into cs-uri-query and match substrings of it, so it
    # maps to the whole request target.
    "cs-uri-query": "url.original",
    "cs-uri-stem": "url.path",
    "cs-uri": "url.original",
    "c-uri": "url.original",
    "c-uri-query": "url.query",
    "c-uri-stem": "url.path",
    "c-uri-extension": "url.extension",
    "c-useragent": "user_agent.original",
    "cs-user-agent": "user_agent.original",
    "sc-status": "http.response.status_code",
    "cs-method": "http.request.method",
    "c-ip": "source.ip",
    "s-ip": "destination.ip",
    "dst_ip": "destination.ip",
    "cs-host": "url.domain",
    "r-dns": "url.domain",
    "cs-referrer": "http.request.referrer",
    "cs-referer": "http.request.referrer",
    "cs-username": "user.name",
    "cs-bytes": "http.request.bytes",
    "sc-bytes": "http.response.bytes",
    "cs-version": "http.version",
    "cs-cookie": "http.request.cookie",
}

NETWORK_FIELDS: dict[str | None, str | list[str]] = {
    # dns
    "query": "dns.question.name",
    "QueryName": "dns.question.name",
    "query_name": "dns.question.name",
    "parent_domain": "dns.question.registered_domain",
    "record_type": "dns.question.type",
    "answer": "dns.answers.data",
    "response": "dns.response_code",
    # firewall / flows
    "src_ip": "source.ip",
    "dst_ip": "destination.ip",
    "src_port": "source.port",
    "dst_port": "destination.port",
    "SourceIp": "source.ip",
    "DestinationIp": "destination.ip",
    "SourcePort": "source.port",
    "DestinationPort": "destination.port",
    "protocol": "network.transport",
    "action": "event.action",
    "username": "user.name",
}

_CASELESS = ".caseless"


def _strip_caseless(field: str | None) -> str:
    """The ES backend maps some Windows fields to ``.caseless`` sub-fields; events have none."""
    assert field is not None  # apply_keyword is off, so keywords never reach here
    return field[: -len(_CASELESS)] if field.endswith(_CASELESS) else field


def linux_auth_pipeline() -> ProcessingPipeline:
    return ProcessingPipeline(
        name="Canh Gác Linux (auth, sshd, sudo, su, syslog, process)",
        priority=20,
        items=[
            ProcessingItem(
                identifier="canhgac_linux_fields",
                transformation=FieldMappingTransformation(dict(LINUX_FIELDS)),
                rule_conditions=[LogsourceCondition(product="linux")],
            )
        ],
    )


def web_access_pipeline() -> ProcessingPipeline:
    conditions = [
        LogsourceCondition(category="webserver"),
        LogsourceCondition(category="proxy"),
        LogsourceCondition(service="apache"),
        LogsourceCondition(service="nginx"),
    ]
    return ProcessingPipeline(
        name="Canh Gác web access logs (nginx, apache, proxy)",
        priority=20,
        items=[
            ProcessingItem(
                identifier="canhgac_web_fields",
                transformation=FieldMappingTransformation(dict(WEB_FIELDS)),
                rule_conditions=list(conditions),
                rule_condition_linking=any,
            )
        ],
    )


def windows_pipeline() -> ProcessingPipeline:
    strip = ProcessingPipeline(
        name="Canh Gác Windows: drop ES-only .caseless sub-fields",
        priority=21,
        items=[
            ProcessingItem(
                identifier="canhgac_windows_caseless",
                transformation=FieldFunctionTransformation({}, _strip_caseless),
                rule_conditions=[LogsourceCondition(product="windows")],
            )
        ],
    )
    return ecs_windows() + strip


def network_pipeline() -> ProcessingPipeline:
    conditions = [
        LogsourceCondition(category="dns"),
        LogsourceCondition(category="firewall"),
        LogsourceCondition(product="network"),
    ]
    return ProcessingPipeline(
        name="Canh Gác network sensor (dns, flow, firewall)",
        priority=20,
        items=[
            ProcessingItem(
                identifier="canhgac_network_fields",
                transformation=FieldMappingTransformation(dict(NETWORK_FIELDS)),
                rule_conditions=list(conditions),
                rule_condition_linking=any,
            )
        ],
    )


PIPELINES: dict[str, Callable[[], ProcessingPipeline]] = {
    "linux_auth": linux_auth_pipeline,
    "web_access": web_access_pipeline,
    "windows": windows_pipeline,
    "network": network_pipeline,
}


def build_pipeline(name: str) -> ProcessingPipeline:
    """A new pipeline for one schema by its registry name."""
    try:
        factory = PIPELINES[name]
    except KeyError:
        raise ConfigError(f"unknown processing pipeline {name!r}", hint=f"use one of {sorted(PIPELINES)}") from None
    return factory()


def canhgac_pipeline() -> ProcessingPipeline:
    """Every schema's pipeline chained; each only touches rules of its own log sources."""
    pipeline = ProcessingPipeline()
    for name in PIPELINES:
        pipeline = pipeline + build_pipeline(name)
    return pipeline


__all__ = [
    "LINUX_FIELDS",
    "NETWORK_FIELDS",
    "PIPELINES",
    "WEB_FIELDS",
    "build_pipeline",
    "canhgac_pipeline",
    "linux_auth_pipeline",
    "network_pipeline",
    "web_access_pipeline",
    "windows_pipeline",
]
