"""Routing: which compiled rules an event is tested against.

An event is only tested against rules whose Sigma ``logsource`` it can satisfy. Each event maps
to one or more (product, category, service) triples; a rule matches a triple when each of its
own non-empty logsource fields equals the triple's. A rule with an empty logsource sees every
event.

==============================================  ==============================================
event                                           logsources (product, category, service)
==============================================  ==============================================
every event                                     (canhgac, —, <event.dataset>)
``system.auth``                                 (linux, —, auth) + (linux, —, <process.name>)
                                                for sshd, sudo, su, cron, login, passwd …
``system.syslog``                               (linux, —, syslog) + (linux, —, <process.name>)
``auditd.*``                                    (linux, —, auditd)
``nginx.access`` / ``apache.access``            (—, webserver, nginx|apache)
``nginx.error`` / ``apache.error``              (—, —, nginx|apache)
``windows.<channel>``                           (windows, <category>, <service>); service from
                                                ``winlog.channel`` (Security → security,
                                                Microsoft-Windows-Sysmon/Operational → sysmon,
                                                … as pySigma's Windows table), else the
                                                dataset suffix; category from the event code:
                                                Sysmon 1 process_creation, 3
                                                network_connection, 7 image_load, 10
                                                process_access, 11 file_event, 12–14
                                                registry_*, 22 dns_query, …; Security 4688
                                                process_creation; PowerShell 4104 ps_script,
                                                4103 ps_module; classic 400/600/800 ps_classic_*
``network.dns``                                 (—, dns, —)
``network.flow``                                (—, firewall, —)
``network.http``                                (—, proxy, —) + (—, webserver, —): the web
                                                rules see captured HTTP like an access log
==============================================  ==============================================

Our own rules may use ``product: canhgac`` with ``service: <event.dataset>`` for data no Sigma
log source names (``network.arp``, ``network.tls``).

A rule scoped to some agencies (a custom rule's tenant scope, :class:`~detections.lifecycle.RulePolicy`)
is routed only to those agencies' events: with any scoped rule loaded, the route cache is keyed
by the event's tenant too. A correlation counts only its scope's events, and a base rule that
raises no alerts of its own runs only for the agencies of the correlations that use it.

Within its log sources an event only meets rules whose *gate* holds: the fields every match
needs are present, and the rule's tests on ``event.code``, ``winlog.channel`` and
``event.dataset`` pass (:func:`~detections.matcher.compile_gate`). Both depend only on the set
of fields present and those values, so the :class:`Router` caches one :class:`Route` per such
kind of event, with an Aho-Corasick prefilter over its own rules' literals.

:data:`ROUTING_FIELDS` are the event fields the routing reads besides the set of fields present;
backtests fetch just those to route a stored hit as the streaming engine would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from sigma.pipelines.common import windows_logsource_mapping

from soc_core.events import TENANT_FIELD

from .matcher import Matcher
from .prefilter import Literals, Prefilter

LogSource = tuple[str | None, str | None, str | None]

LINUX_SERVICES = frozenset(
    {"sshd", "sudo", "su", "cron", "crond", "login", "passwd", "useradd", "groupadd", "usermod",
     "vsftpd", "clamav", "guacamole", "systemd", "auditd"}
)  # fmt: skip
WEB_DATASETS = {"nginx.access": "nginx", "apache.access": "apache"}
WEB_ERROR_DATASETS = {"nginx.error": "nginx", "apache.error": "apache"}
NETWORK_CATEGORIES = {"network.dns": "dns", "network.flow": "firewall", "network.http": "proxy"}

_CHANNEL_TO_SERVICE: dict[str, str] = {}
for _service, _channels in windows_logsource_mapping.items():
    for _channel in [_channels] if isinstance(_channels, str) else _channels:
        _CHANNEL_TO_SERVICE[_channel.lower()] = _service

SYSMON_CATEGORIES: dict[str, tuple[str, ...]] = {
    "1": ("process_creation",),
    "2": ("file_change",),
    "3": ("network_connection",),
    "5": ("process_termination",),
    "6": ("driver_load",),
    "7": ("image_load",),
    "8": ("create_remote_thread",),
    "9": ("raw_access_thread",),
    "10": ("process_access",),
    "11": ("file_event",),
    "12": ("registry_add", "registry_delete", "registry_event"),
    "13": ("registry_set", "registry_event"),
    "14": ("registry_rename", "registry_event"),
    "15": ("create_stream_hash",),
    "17": ("pipe_created",),
    "18": ("pipe_created",),
    "19": ("wmi_event",),
    "20": ("wmi_event",),
    "21": ("wmi_event",),
    "22": ("dns_query",),
    "23": ("file_delete",),
    "24": ("clipboard_capture",),
    "25": ("process_tampering",),
    "26": ("file_delete",),
    "27": ("file_block_executable",),
    "28": ("file_block_shredding",),
    "29": ("file_executable_detected",),
    "255": ("sysmon_error",),
}
WINDOWS_CATEGORIES: dict[str, dict[str, tuple[str, ...]]] = {
    "sysmon": SYSMON_CATEGORIES,
    "security": {"4688": ("process_creation",)},
    "powershell": {"4104": ("ps_script",), "4103": ("ps_module",)},
    "powershell-classic": {
        "400": ("ps_classic_start",),
        "600": ("ps_classic_provider_start",),
        "800": ("ps_classic_script",),
    },
}


def event_logsources(event: Mapping[str, Any]) -> list[LogSource]:
    """The Sigma log sources an event can satisfy (see the routing table above)."""
    dataset = str(event.get("event.dataset") or "")
    module = dataset.split(".", 1)[0]
    process = str(event.get("process.name") or "").lower()
    sources: list[LogSource] = [("canhgac", None, dataset)]
    if dataset in ("system.auth", "system.syslog"):
        sources.append(("linux", None, "auth" if dataset == "system.auth" else "syslog"))
        if process in LINUX_SERVICES:
            sources.append(("linux", None, process))
    elif module == "auditd":
        sources.append(("linux", None, "auditd"))
    elif dataset in WEB_DATASETS:
        sources.append((None, "webserver", WEB_DATASETS[dataset]))
    elif dataset in WEB_ERROR_DATASETS:
        sources.append((None, None, WEB_ERROR_DATASETS[dataset]))
    elif dataset in NETWORK_CATEGORIES:
        sources.append((None, NETWORK_CATEGORIES[dataset], None))
        if dataset == "network.http":  # a request seen on the wire is what an access log records
            sources.append((None, "webserver", None))
    elif module == "windows":
        channel = str(event.get("winlog.channel") or "")
        service = _CHANNEL_TO_SERVICE.get(channel.lower()) or dataset.split(".", 1)[-1]
        code = str(event.get("event.code") or event.get("winlog.event_id") or "")
        categories = WINDOWS_CATEGORIES.get(service, {}).get(code, ())
        sources.append(("windows", None, service))
        sources.extend(("windows", category, service) for category in categories)
    return sources


# Fields whose values the routing gates test (see :func:`detections.matcher.compile_gate`).
ROUTING_VALUE_FIELDS = frozenset({"event.dataset", "winlog.channel", "event.code"})
# Every field whose value routing reads: the log-source fields (:func:`event_logsources`) and the
# gates' value fields. The route cache is keyed by their values and the set of fields present.
ROUTING_FIELDS = ("event.dataset", "process.name", "winlog.channel", "event.code", "winlog.event_id")


def _route_key(event: Mapping[str, Any]) -> tuple[Any, ...]:
    """What decides an event's route (without its tenant): the routing fields' values and types,
    and the set of fields present."""
    values = tuple([event.get(name) for name in ROUTING_FIELDS])
    if None in event.values():
        present = frozenset([name for name, value in event.items() if value is not None])
    else:
        present = frozenset(event)
    # the types too: True == 1 == 1.0 hash alike but do not match alike
    return values, tuple(map(type, values)), present


class RoutedRule(Protocol):
    """What the router reads of a compiled rule (:class:`detections.evaluation.CompiledRule`)."""

    @property
    def logsource(self) -> LogSource: ...
    @property
    def literals(self) -> Literals: ...
    @property
    def gate(self) -> Matcher | None: ...
    @property
    def needs(self) -> frozenset[str]: ...  # fields every event the rule matches has
    @property
    def scope(self) -> frozenset[str] | None: ...  # the only tenants it sees (None: all)


Rule = TypeVar("Rule", bound=RoutedRule)


@dataclass(frozen=True)
class Route(Generic[Rule]):
    """The rules one kind of event is tested against, split for the prefilter."""

    rules: tuple[Rule, ...]
    always: tuple[Rule, ...]  # rules with no required literals: run on every such event
    gated: tuple[Rule, ...]  # rules the prefilter may skip
    prefilter: Prefilter  # over the literals of ``gated`` only, so it finds few irrelevant ones


class Router(Generic[Rule]):
    """Rules by log source and routing gate, cached per kind of event.

    Two events get the same :class:`Route` when they agree on the log-source fields, the
    routing value fields and the set of fields present; the route keeps the rules of a matching
    log source whose gate holds, which is exact because a gate only looks at those.
    """

    def __init__(self, rules: Iterable[Rule], *, cache_size: int = 4096) -> None:
        self.rules = list(rules)
        # routes differ per tenant only when some rule is scoped; else one route serves them all
        self.scoped = any(rule.scope is not None for rule in self.rules)
        self.position = {id(rule): n for n, rule in enumerate(self.rules)}
        self.index: dict[LogSource, list[Rule]] = {}
        for rule in self.rules:
            self.index.setdefault(rule.logsource, []).append(rule)
        self.cache: dict[tuple[Any, ...], Route[Rule]] = {}
        self.cache_size = cache_size
        # routes that differ only in optional fields mostly keep the same rules: share the
        # log-source lists and the prefilter automata between them
        self._by_source: dict[tuple[Any, ...], tuple[Rule, ...]] = {}
        self._prefilters: dict[tuple[int, ...], Prefilter] = {}

    def route(self, event: Mapping[str, Any]) -> Route[Rule]:
        key = _route_key(event)
        if self.scoped:
            key = (*key, event.get(TENANT_FIELD))
        found = self.cache.get(key)
        if found is None:
            found = self._build(event, key[2])
            if len(self.cache) >= self.cache_size:
                self.cache.clear()
            self.cache[key] = found
        return found

    def candidates(self, event: Mapping[str, Any]) -> tuple[Rule, ...]:
        return self.route(event).rules

    def _build(self, event: Mapping[str, Any], present: frozenset[str]) -> Route[Rule]:
        tenant = event.get(TENANT_FIELD)
        rules = tuple(
            rule
            for rule in self._sourced(event)
            if (rule.scope is None or tenant in rule.scope)
            and rule.needs <= present
            and (rule.gate is None or _gate_holds(rule, event))
        )
        gated = tuple(rule for rule in rules if rule.literals is not None)
        positions = tuple(self.position[id(rule)] for rule in gated)
        prefilter = self._prefilters.get(positions)
        if prefilter is None:
            if len(self._prefilters) >= self.cache_size:
                self._prefilters.clear()
            prefilter = self._prefilters[positions] = Prefilter(rule.literals for rule in gated)
        return Route(
            rules=rules,
            always=tuple(rule for rule in rules if rule.literals is None),
            gated=gated,
            prefilter=prefilter,
        )

    def _sourced(self, event: Mapping[str, Any]) -> tuple[Rule, ...]:
        """The rules of every log source the event satisfies, in rule-set order."""
        sources = tuple(event_logsources(event))
        found = self._by_source.get(sources)
        if found is not None:
            return found
        seen: dict[int, Rule] = {}
        for product, category, service in sources:
            for p in (None, product) if product else (None,):
                for c in (None, category) if category else (None,):
                    for s in (None, service) if service else (None,):
                        for rule in self.index.get((p, c, s), ()):
                            seen.setdefault(self.position[id(rule)], rule)
        found = tuple(rule for _, rule in sorted(seen.items()))
        if len(self._by_source) >= self.cache_size:
            self._by_source.clear()
        self._by_source[sources] = found
        return found


def _gate_holds(rule: RoutedRule, event: Mapping[str, Any]) -> bool:
    assert rule.gate is not None
    try:
        return bool(rule.gate(event))
    except (TypeError, ValueError, AttributeError):
        return True  # let the matcher itself run, fail and be counted


__all__ = [
    "LINUX_SERVICES",
    "NETWORK_CATEGORIES",
    "ROUTING_FIELDS",
    "ROUTING_VALUE_FIELDS",
    "SYSMON_CATEGORIES",
    "WEB_DATASETS",
    "WEB_ERROR_DATASETS",
    "WINDOWS_CATEGORIES",
    "LogSource",
    "Route",
    "RoutedRule",
    "Router",
    "event_logsources",
]
