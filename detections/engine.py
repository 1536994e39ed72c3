"""The streaming detection engine: new events in, alerts out, one pass over every enabled rule.

:class:`Evaluator` is the pure core (compiled rules, routing, correlation windows; events in,
:class:`~detections.alerts.Detection` out). :class:`DetectionEngine` is the thin shell around
it that reads events from a :class:`~soc_core.store.base.Store`, writes alerts and persists the
checkpoint together with the correlation state, so a restart neither misses nor re-evaluates
events.

Routing
-------
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
``network.http``                                (—, proxy, —)
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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.pipelines.common import windows_logsource_mapping
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaRule

from soc_core.errors import ConfigError, Conflict, NotFound, RuleError
from soc_core.events import TENANT_FIELD, format_timestamp, utcnow
from soc_core.store.base import Doc, DocWrite, ReadPlan, Store

from .alerts import (
    DEFAULT_WINDOW,
    OPEN_STATUSES,
    Detection,
    RuleMeta,
    detection_from_event,
    entities_of,
    group_detections,
)
from .correlation import CorrelationEngine, CorrelationHit, CorrelationSpec
from .intel import IntelDetector
from .lifecycle import RulePolicy
from .loader import LoadedRule, RuleSet, translate_sigma_error
from .matcher import Matcher, compile_gate, compile_rule, needed_fields
from .pipelines import canhgac_pipeline
from .prefilter import Literals, Prefilter, rule_literals
from .watchdog import report_slow_batch, time_rules

if TYPE_CHECKING:
    from .workers import WorkerPool

log = logging.getLogger(__name__)

LogSource = tuple[str | None, str | None, str | None]

CHECKPOINT_KIND = "checkpoints"
CHECKPOINT_ID = "detection-engine"
OPEN_CACHE_SIZE = 10_000

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
    elif module == "windows":
        channel = str(event.get("winlog.channel") or "")
        service = _CHANNEL_TO_SERVICE.get(channel.lower()) or dataset.split(".", 1)[-1]
        code = str(event.get("event.code") or event.get("winlog.event_id") or "")
        categories = WINDOWS_CATEGORIES.get(service, {}).get(code, ())
        sources.append(("windows", None, service))
        sources.extend(("windows", category, service) for category in categories)
    return sources


# Fields whose values the routing gates test (see :func:`detections.matcher.compile_gate`); the
# route cache is keyed by their values, the log-source fields and the set of fields present.
ROUTING_VALUE_FIELDS = frozenset({"event.dataset", "winlog.channel", "event.code"})
_ROUTE_KEY_FIELDS = ("event.dataset", "process.name", "winlog.channel", "event.code", "winlog.event_id")


def _route_key(event: Mapping[str, Any]) -> tuple[Any, ...]:
    values = tuple([event.get(name) for name in _ROUTE_KEY_FIELDS])
    if None in event.values():
        present = frozenset([name for name, value in event.items() if value is not None])
    else:
        present = frozenset(event)
    # the types too: True == 1 == 1.0 hash alike but do not match alike
    return values, tuple(map(type, values)), present


@dataclass
class CompiledRule:
    loaded: LoadedRule
    meta: RuleMeta
    matcher: Matcher
    logsource: LogSource
    alerts: bool
    literals: Literals = None
    gate: Matcher | None = None
    needs: frozenset[str] = frozenset()  # fields every event the rule matches has
    scope: frozenset[str] | None = None  # the only tenants whose events it is evaluated on (None: all)


@dataclass
class CompiledRuleSet:
    rules: list[CompiledRule] = field(default_factory=list)
    correlations: list[CorrelationSpec] = field(default_factory=list)
    correlation_meta: dict[str, RuleMeta] = field(default_factory=dict)
    errors: list[RuleError] = field(default_factory=list)


def process_rule(
    loaded: LoadedRule, pipeline_factory: Callable[[], ProcessingPipeline] = canhgac_pipeline
) -> SigmaRule:
    """A private copy of a detection rule run through the pipeline for its schema."""
    rule = loaded.fresh()
    assert isinstance(rule, SigmaRule)
    try:
        pipeline_factory().apply(rule)
    except SigmaError as exc:
        raise translate_sigma_error(exc, loaded.where) from exc
    return rule


def compile_detection_rule(
    loaded: LoadedRule, pipeline_factory: Callable[[], ProcessingPipeline] = canhgac_pipeline
) -> CompiledRule:
    rule = process_rule(loaded, pipeline_factory)
    matcher = compile_rule(rule, where=loaded.where)
    original = loaded.rule
    assert isinstance(original, SigmaRule)
    source = original.logsource
    return CompiledRule(
        loaded=loaded,
        meta=RuleMeta.from_loaded(loaded),
        matcher=matcher,
        logsource=(source.product, source.category, source.service),
        alerts=loaded.generates_alerts,
        literals=rule_literals(rule),
        gate=compile_gate(rule, value_fields=ROUTING_VALUE_FIELDS, where=loaded.where),
        needs=needed_fields(rule),
    )


def compile_ruleset(
    ruleset: RuleSet,
    *,
    pipeline_factory: Callable[[], ProcessingPipeline] = canhgac_pipeline,
    only_enabled: bool = True,
    scopes: Mapping[str, Sequence[str] | None] | None = None,
) -> CompiledRuleSet:
    """Compile every (enabled) rule; errors are collected, never raised.

    ``scopes`` (rule id → tenants, from :class:`~detections.lifecycle.RulePolicy`) limits the
    events each rule and correlation is evaluated on.
    """
    scope_of = _scope_reader(scopes or {})
    compiled = CompiledRuleSet()
    wanted = [r for r in ruleset if r.enabled or not only_enabled]
    needed: set[str] = {r.id for r in wanted if not r.is_correlation}
    specs: list[tuple[LoadedRule, CorrelationSpec]] = []
    for loaded in wanted:
        if not loaded.is_correlation:
            continue
        rule = loaded.rule
        assert isinstance(rule, SigmaCorrelationRule)
        try:
            spec = CorrelationSpec.from_rule(rule, where=loaded.where)
        except RuleError as exc:
            compiled.errors.append(exc)
            continue
        spec = replace(spec, scope=scope_of(loaded.id))
        specs.append((loaded, spec))
        needed.update(spec.rule_ids)
    ok: set[str] = set()
    for rule_id in needed:
        loaded = ruleset.rules[rule_id]
        try:
            detection = compile_detection_rule(loaded, pipeline_factory)
        except RuleError as exc:
            compiled.errors.append(exc)
            continue
        detection.scope = scope_of(rule_id)
        if not detection.alerts:  # only its correlations' agencies need it
            users = [spec.scope for _, spec in specs if rule_id in spec.rule_ids]
            if users and all(user is not None for user in users):
                agencies = frozenset[str]().union(*[user for user in users if user is not None])
                detection.scope = agencies if detection.scope is None else detection.scope & agencies
        compiled.rules.append(detection)
        ok.add(rule_id)
    for loaded, spec in specs:
        missing = [rid for rid in spec.rule_ids if rid not in ok]
        if missing:
            compiled.errors.append(
                RuleError(
                    f"correlation disabled: referenced rules did not compile: {missing}",
                    where=loaded.where,
                )
            )
            continue
        compiled.correlations.append(spec)
        compiled.correlation_meta[spec.rule_id] = RuleMeta.from_loaded(loaded)
    compiled.rules.sort(key=lambda c: c.loaded.id)
    return compiled


def _scope_reader(scopes: Mapping[str, Sequence[str] | None]) -> Callable[[str], frozenset[str] | None]:
    def scope_of(rule_id: str) -> frozenset[str] | None:
        scope = scopes.get(rule_id)
        return frozenset(scope) if scope is not None else None

    return scope_of


@dataclass(frozen=True)
class Route:
    """The rules one kind of event is tested against, split for the prefilter."""

    rules: tuple[CompiledRule, ...]
    always: tuple[CompiledRule, ...]  # rules with no required literals: run on every such event
    gated: tuple[CompiledRule, ...]  # rules the prefilter may skip
    prefilter: Prefilter  # over the literals of ``gated`` only, so it finds few irrelevant ones


class Router:
    """Rules by log source and routing gate, cached per kind of event.

    Two events get the same :class:`Route` when they agree on the log-source fields, the
    routing value fields and the set of fields present; the route keeps the rules of a matching
    log source whose gate holds, which is exact because a gate only looks at those.
    """

    def __init__(self, rules: Iterable[CompiledRule], *, cache_size: int = 4096) -> None:
        self.rules = list(rules)
        # routes differ per tenant only when some rule is scoped; else one route serves them all
        self.scoped = any(rule.scope is not None for rule in self.rules)
        self.position = {id(rule): n for n, rule in enumerate(self.rules)}
        self.index: dict[LogSource, list[CompiledRule]] = {}
        for rule in self.rules:
            self.index.setdefault(rule.logsource, []).append(rule)
        self.cache: dict[tuple[Any, ...], Route] = {}
        self.cache_size = cache_size
        # routes that differ only in optional fields mostly keep the same rules: share the
        # log-source lists and the prefilter automata between them
        self._by_source: dict[tuple[Any, ...], tuple[CompiledRule, ...]] = {}
        self._prefilters: dict[tuple[int, ...], Prefilter] = {}

    def route(self, event: Mapping[str, Any]) -> Route:
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

    def candidates(self, event: Mapping[str, Any]) -> tuple[CompiledRule, ...]:
        return self.route(event).rules

    def _build(self, event: Mapping[str, Any], present: frozenset[str]) -> Route:
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

    def _sourced(self, event: Mapping[str, Any]) -> tuple[CompiledRule, ...]:
        """The rules of every log source the event satisfies, in rule-set order."""
        sources = tuple(event_logsources(event))
        found = self._by_source.get(sources)
        if found is not None:
            return found
        seen: dict[int, CompiledRule] = {}
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


def _tenant_and_id(event: Mapping[str, Any]) -> tuple[str, str]:
    """An event's key within a batch: ``event.id`` is unique per tenant, not across tenants."""
    return str(event.get(TENANT_FIELD, "")), str(event.get("event.id", ""))


def _gate_holds(rule: CompiledRule, event: Mapping[str, Any]) -> bool:
    assert rule.gate is not None
    try:
        return bool(rule.gate(event))
    except (TypeError, ValueError, AttributeError):
        return True  # let the matcher itself run, fail and be counted


@dataclass
class EvaluatorStats:
    events: int = 0
    matches: int = 0
    correlation_hits: int = 0
    skipped_events: int = 0
    rule_failures: dict[str, int] = field(default_factory=dict)


class Evaluator:
    """Pure core: compiled rules + routing + correlation windows; events in, detections out."""

    def __init__(
        self,
        compiled: CompiledRuleSet,
        *,
        max_keys: int = 100_000,
        max_items: int = 1_000,
        use_prefilter: bool = True,
    ) -> None:
        self.compiled = compiled
        self.router = Router(compiled.rules)
        self.correlation = CorrelationEngine(compiled.correlations, max_keys=max_keys, max_items=max_items)
        self.stats = EvaluatorStats()
        self.use_prefilter = use_prefilter

    def candidates(self, event: Mapping[str, Any]) -> Iterable[CompiledRule]:
        """Rules routed to the event, minus those whose required literals it lacks."""
        route = self.router.route(event)
        if not self.use_prefilter:
            return route.rules
        if not route.gated:
            return route.always
        found = route.prefilter.which(event)
        if not found:
            return route.always
        gated = route.gated
        return [*route.always, *(gated[position] for position in sorted(found))]

    def matching_rules(self, event: Mapping[str, Any]) -> list[CompiledRule]:
        matched = []
        for rule in self.candidates(event):
            try:
                if rule.matcher(event):
                    matched.append(rule)
            except (TypeError, ValueError, AttributeError) as exc:
                failures = self.stats.rule_failures
                failures[rule.meta.id] = failures.get(rule.meta.id, 0) + 1
                log.warning("rule %s failed on event %s: %s", rule.meta.id, event.get("event.id"), exc)
        return matched

    def evaluate(self, events: Iterable[Mapping[str, Any]]) -> list[Detection]:
        return self.emit((event, self.stream_match(event)) for event in events)

    def stream_match(self, event: Mapping[str, Any]) -> list[CompiledRule]:
        """The rules an event of the stream matches (none for an event without a tenant), counted."""
        self.stats.events += 1
        tenant = event.get(TENANT_FIELD)
        if not isinstance(tenant, str) or not tenant:
            self.stats.skipped_events += 1
            return []
        return self.matching_rules(event)

    def emit(self, matches: Iterable[tuple[Mapping[str, Any], Sequence[CompiledRule]]]) -> list[Detection]:
        """Detections and correlation hits for (event, matched rules) pairs in stream order.

        The stateful half of :meth:`evaluate`: :mod:`detections.workers` matches in several
        processes and feeds the results here, in stream order, so correlations see what a
        single process would.
        """
        detections: list[Detection] = []
        by_id: dict[tuple[str, str], Mapping[str, Any]] = {}  # ids are unique per tenant only
        for event, matched in matches:
            if not matched:
                continue
            self.stats.matches += len(matched)
            by_id[_tenant_and_id(event)] = event
            for rule in matched:
                if rule.alerts:
                    detections.append(detection_from_event(rule.meta, event))
                for hit in self.correlation.feed(rule.meta.id, event):
                    self.stats.correlation_hits += 1
                    detections.append(self._from_hit(hit, event, by_id))
        return detections

    def _from_hit(
        self, hit: CorrelationHit, trigger: Mapping[str, Any], by_id: Mapping[tuple[str, str], Mapping[str, Any]]
    ) -> Detection:
        window_events = [by_id[(hit.tenant, eid)] for eid in hit.event_ids if (hit.tenant, eid) in by_id] or [trigger]
        entities = entities_of(window_events)
        for name, value in hit.group.items():
            values = entities.setdefault(name, [])
            if str(value) not in values:
                values.insert(0, str(value))
        return Detection(
            rule=self.compiled.correlation_meta[hit.rule_id],
            tenant=hit.tenant,
            group=dict(hit.group),
            event_ids=list(hit.event_ids),
            count=hit.count,
            first_seen=hit.first_seen,
            last_seen=hit.last_seen,
            entities=entities,
        )


@dataclass
class RunResult:
    events: int = 0
    detections: int = 0
    alerts_created: int = 0
    alerts_updated: int = 0
    redone_in_process: int = 0  # batches the worker processes failed and this process evaluated


class DetectionEngine:
    """Reads new events from a store, evaluates them, writes alerts and the checkpoint.

    Delivery: the checkpoint and correlation state are saved in one document after the alerts
    of a batch are written. A crash in between re-evaluates that batch on restart; alert ids
    are deterministic and merged event ids de-duplicated, so the replay updates the same alerts.

    Each batch is planned (:meth:`~soc_core.store.base.Store.plan_new_events`), then read.
    With ``workers`` > 1 that many forked processes (:class:`~detections.workers.WorkerPool`,
    started at the first batch) read and match the plan's blocks themselves, and this process
    emits the matches in stream order, so alerts and correlations are those of ``workers=1``.
    The batches are pipelined: while the workers match batch k this process plans batch k+1,
    and sends it to them before emitting batch k and writing its alerts; that planned batch is
    the next one :meth:`run_batch` evaluates (planned again if the checkpoint did not reach it).
    A batch the workers fail is read and evaluated again in this process (counted in
    :attr:`RunResult.redone_in_process`) — never lost nor doubled, since nothing of it was
    emitted. :meth:`close` stops the workers.
    """

    def __init__(
        self,
        rules: RuleSet,
        store: Store,
        *,
        suppression: timedelta = DEFAULT_WINDOW,
        max_keys: int = 100_000,
        max_items: int = 1_000,
        clock: Callable[[], Any] = utcnow,
        pipeline_factory: Callable[[], ProcessingPipeline] = canhgac_pipeline,
        policy: RulePolicy | None = None,
        workers: int = 1,
        slow_batch_seconds: float | None = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        if workers < 1:
            raise ConfigError(f"detection workers: need at least 1, not {workers}")
        self.store = store
        self.policy = policy or RulePolicy()
        self.suppression = suppression
        self.clock = clock
        self.compiled = compile_ruleset(rules, pipeline_factory=pipeline_factory, scopes=self.policy.scopes)
        self.errors = self.compiled.errors
        self.evaluator = Evaluator(self.compiled, max_keys=max_keys, max_items=max_items)
        self.checkpoint: str | None = None
        self._state_loaded = False
        self._open: dict[str, tuple[dict[str, Any], str]] = {}
        self.workers = workers
        # the watchdog (detections.watchdog): a batch over this many seconds is logged with its slowest rules
        self.slow_batch_seconds = slow_batch_seconds
        self.timer = timer
        self._pool: WorkerPool | None = None
        # the next batch, planned while the workers matched the last one: (planned after, limit, plan, checkpoint)
        self._ahead: tuple[str | None, int, ReadPlan, str] | None = None
        self.intel = IntelDetector(store)  # threat-intel lists raise alerts too (detections.intel)

    def load_state(self) -> None:
        """Read the checkpoint and correlation windows saved by the previous run."""
        try:
            doc = self.store.get_doc(CHECKPOINT_KIND, CHECKPOINT_ID)
        except NotFound:
            self.checkpoint = None
        else:
            self.checkpoint = doc.body.get("checkpoint")
            state = doc.body.get("correlation")
            if state:
                self.evaluator.correlation.restore(state)
        self._state_loaded = True

    def save_state(self) -> None:
        self.store.put_doc(
            CHECKPOINT_KIND,
            CHECKPOINT_ID,
            {
                "checkpoint": self.checkpoint,
                "correlation": self.evaluator.correlation.snapshot(),
                "updated_at": self._now(),
            },
        )

    def run_once(self, limit: int = 1000) -> int:
        """Evaluate the next batch of at most ``limit`` events; returns how many were read."""
        return self.run_batch(limit=limit).events

    def run_batch(self, *, limit: int = 1000) -> RunResult:
        if not self._state_loaded:
            self.load_state()
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[:2] == (self.checkpoint, limit):
            _, _, plan, checkpoint = ahead
        else:
            plan, checkpoint = self.store.plan_new_events(self.checkpoint, limit=limit)
        result = RunResult()
        if plan.blocks:
            started = self.timer()
            detections, batch = self._evaluate(plan, result, checkpoint=checkpoint, limit=limit)
            # threat intel: every event of the batch (the workers hand back only rule matches)
            whole = batch if len(batch) == result.events else [event for _, event in self.store.read_plan(plan)]
            detections += self.intel.detect(whole)
            matched = self.timer()
            detections = self._admitted(detections, whole)
            result.detections = len(detections)
            self._write_alerts(detections, result)
            finished = self.timer()
            if self.slow_batch_seconds is not None and finished - started > self.slow_batch_seconds:
                self._report_slow(plan, result, seconds=finished - started, match_seconds=matched - started)
        if checkpoint != self.checkpoint:
            self.checkpoint = checkpoint
            self.save_state()
        return result

    def run_until_idle(self, *, limit: int = 1000, max_batches: int = 1_000_000) -> RunResult:
        """Process batches until the store has no new events (tests, backfills, CLI)."""
        total = RunResult()
        for _ in range(max_batches):
            before = self.checkpoint
            batch = self.run_batch(limit=limit)
            total.events += batch.events
            total.detections += batch.detections
            total.alerts_created += batch.alerts_created
            total.alerts_updated += batch.alerts_updated
            total.redone_in_process += batch.redone_in_process
            if batch.events == 0 and self.checkpoint == before:
                break
        return total

    def close(self) -> None:
        """Stop the worker processes, if any (idempotent; a later batch starts them again)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> DetectionEngine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _evaluate(
        self, plan: ReadPlan, result: RunResult, *, checkpoint: str, limit: int
    ) -> tuple[list[Detection], Sequence[Mapping[str, Any]]]:
        """Detections of a planned batch, and the events behind them that this process holds."""
        if self.workers > 1:
            from .workers import WorkerError, WorkerPool  # noqa: PLC0415 - detections.workers imports this module

            try:
                if self._pool is None:
                    self._pool = WorkerPool(self.evaluator, self.store, workers=self.workers)
                if self._pool.pending is not plan:  # else it was sent ahead, with the last batch
                    self._pool.submit(plan)
                # pipelining: plan the next batch while the workers match this one, and send it
                # to them before this one is emitted and its alerts written
                ahead, then = self.store.plan_new_events(checkpoint, limit=limit)
                if ahead.blocks:
                    self._ahead = (checkpoint, limit, ahead, then)
                results = self._pool.receive()
                if ahead.blocks:
                    self._pool.submit(ahead)
                result.events = sum(part.events for part in results)
                return self._pool.emit(results), [event for part in results for _, _, event in part.matched]
            except WorkerError as exc:
                log.warning("detection workers failed; batch evaluated in-process", extra={"error": exc.render()})
                result.redone_in_process += 1
        events = [event for _, event in self.store.read_plan(plan)]
        result.events = len(events)
        return self.evaluator.evaluate(events), events

    def _report_slow(self, plan: ReadPlan, result: RunResult, *, seconds: float, match_seconds: float) -> None:
        """Log a batch over the threshold; when matching (not writing alerts) took most of the
        time, with the rules that took it, re-timed one by one on the batch's events."""
        assert self.slow_batch_seconds is not None
        rules = None
        if match_seconds >= seconds / 2:
            events = (event for _, event in self.store.read_plan(plan))
            rules = time_rules(self.evaluator, events, budget=self.slow_batch_seconds, timer=self.timer)
        report_slow_batch(
            seconds=seconds,
            match_seconds=match_seconds,
            events=result.events,
            threshold=self.slow_batch_seconds,
            rules=rules,
        )

    def _admitted(self, detections: list[Detection], batch: Sequence[Mapping[str, Any]]) -> list[Detection]:
        """Rule scopes and exceptions, applied before anything becomes an alert."""
        if not self.policy.scopes and not self.policy.exceptions:
            return detections
        by_id = {_tenant_and_id(event): event for event in batch}  # ids are unique per tenant only
        now = self.clock()
        kept = []
        for detection in detections:
            events: list[Mapping[str, Any]] = []
            if self.policy.needs_events(detection):
                mine = {i: by_id[(detection.tenant, i)] for i in detection.event_ids if (detection.tenant, i) in by_id}
                missing = [i for i in detection.event_ids if i not in mine]
                mine.update((e["event.id"], e) for e in self.store.get_events(missing, tenants=(detection.tenant,)))
                events = [mine[i] for i in detection.event_ids if i in mine]
            if self.policy.admits(detection, events, now=now):
                kept.append(detection)
        return kept

    # alerts --------------------------------------------------------------------------------
    def _now(self) -> str:
        return format_timestamp(self.clock())

    def _write_alerts(self, detections: Sequence[Detection], result: RunResult) -> None:
        """A batch's alerts in one :meth:`Store.write_docs` call (one bulk request and refresh on
        Elasticsearch); a key whose write meets a conflict goes again on its own."""
        by_key: dict[str, list[Detection]] = {}
        for detection in detections:
            by_key.setdefault(detection.dedup_key, []).append(detection)
        writes: list[DocWrite] = []
        keys: list[tuple[str, bool]] = []  # per write: its key, and whether it updates the open alert
        for key, group in by_key.items():
            current = self._lookup_open(key, group[0].tenant)
            known = {key: current[0]} if current else {}
            for alert in group_detections(group, known, window=self.suppression, now=self._now()):
                update = current is not None and current[0].get("id") == alert["id"]
                writes.append(DocWrite(str(alert["id"]), alert, current[1] if current and update else None))
                keys.append((key, update))
        again: set[str] = set()
        for (key, update), written in zip(keys, self.store.write_docs("alerts", writes), strict=True):
            if isinstance(written, Conflict):
                again.add(key)  # changed meanwhile (an analyst), or a replay after a crash
                continue
            if update:
                result.alerts_updated += 1
            else:
                result.alerts_created += 1
            self._remember_open(key, written)
        for key in again:
            self._open.pop(key, None)
            self._write_key(key, by_key[key], result)

    def _remember_open(self, key: str, doc: Doc) -> None:
        if len(self._open) >= OPEN_CACHE_SIZE:
            self._open.clear()  # only a cache: the store answers misses
        self._open[key] = (dict(doc.body, id=doc.id), doc.version)

    def _lookup_open(self, key: str, tenant: str) -> tuple[dict[str, Any], str] | None:
        cached = self._open.get(key)
        if cached is not None:
            return cached
        page = self.store.list_docs(
            "alerts",
            tenants=(tenant,),
            filters={"dedup_key": key},
            sort="updated_at",
            descending=True,
            size=1,
        )
        for doc in page.items:
            if doc.body.get("status") in OPEN_STATUSES:
                found = (dict(doc.body, id=doc.id), doc.version)
                self._open[key] = found
                return found
        return None

    def _write_key(self, key: str, detections: list[Detection], result: RunResult) -> None:
        tenant = detections[0].tenant
        for _attempt in range(5):
            current = self._lookup_open(key, tenant)
            known = {key: current[0]} if current else {}
            alerts = group_detections(detections, known, window=self.suppression, now=self._now())
            try:
                for alert in alerts:
                    self._write_alert(key, alert, current, result)
            except Conflict:
                self._open.pop(key, None)
                continue
            return
        raise Conflict(f"alert {key} kept changing while the engine updated it", hint="retry later")

    def _write_alert(
        self,
        key: str,
        alert: dict[str, Any],
        current: tuple[dict[str, Any], str] | None,
        result: RunResult,
    ) -> None:
        alert_id = str(alert["id"])
        if current is not None and current[0].get("id") == alert_id:
            doc = self.store.update_doc("alerts", alert_id, alert, version=current[1])
            result.alerts_updated += 1
        else:
            try:
                doc = self.store.create_doc("alerts", alert, doc_id=alert_id)
            except Conflict:
                # A replay after a crash: that alert exists. Merge into it on the retry, unless
                # an analyst closed it meanwhile — then this detection was handled already.
                existing = self.store.get_doc("alerts", alert_id)
                if existing.body.get("status") not in OPEN_STATUSES:
                    return
                self._open[key] = (dict(existing.body, id=existing.id), existing.version)
                raise
            result.alerts_created += 1
        self._remember_open(key, doc)


__all__ = [
    "CHECKPOINT_ID",
    "CHECKPOINT_KIND",
    "CompiledRule",
    "CompiledRuleSet",
    "DetectionEngine",
    "Evaluator",
    "LogSource",
    "Route",
    "Router",
    "RunResult",
    "compile_detection_rule",
    "compile_ruleset",
    "event_logsources",
    "process_rule",
]
