"""Rule lifecycle: custom rules, enable/disable, tenant scopes and exceptions — all versioned.

Rule state lives in store documents of kind ``rules`` (id = rule id), one per rule that has
ever been changed, each carrying its whole history (who, when, why, what)::

    {"rule_id", "source": "shipped" | "custom", "yaml" (custom rules), "tenant" (owner agency or
     None for province-wide), "scope" (tenants the rule applies to, None = all), "enabled",
     "revision", "exceptions": [...], "history": [...], "created_at", "updated_at"}

Exceptions and history entries belong to the agency that made them (``tenant``; None for
province-wide ones): :func:`visible_exceptions` and :func:`visible_history` are what a caller
scoped to some agencies may read, and the limits (:data:`MAX_EXCEPTIONS`, :data:`MAX_HISTORY`)
count per agency, so one agency can neither read nor crowd out another's. ``revision`` counts
only changes to the rule itself (text, scope, enabled), which everyone who can open the rule
may see; it is the version callers send back, never the store's document version, which every
agency's exceptions move (and which on Elasticsearch counts writes to the whole index).

:class:`RulePolicy` is the pure view the detection engine applies before alerting: a detection
is dropped when its rule is scoped away from the detection's tenant (a tenant's rule admin can
never aim a rule at another agency's data), or when every event behind it matches an active
exception of the rule (for that tenant).

Every change bumps a generation counter so a running engine knows to reload its rules.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soc_core.errors import Conflict, NotFound, NotVisible, RuleError
from soc_core.events import format_timestamp, parse_timestamp, utcnow
from soc_core.store import Doc, Store

from .alerts import Detection
from .loader import RuleSet, load_rule_text, load_rules

if TYPE_CHECKING:
    from .rulecache import RuleCache

GENERATION_DOC = "rules-generation"
MAX_HISTORY = 500  # entries kept per agency (and for province-wide entries)
MAX_EXCEPTIONS = 200  # per rule and agency
RETRIES = 10


@dataclass(frozen=True)
class RuleException:
    """Field conditions (all must hold) under which a rule's detections are not alerts."""

    id: str
    conditions: Mapping[str, tuple[str, ...]]
    reason: str
    author: str
    created_at: str
    tenant: str | None = None  # None: every agency (province-wide exception)
    expires_at: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleException:
        return cls(
            id=str(data["id"]),
            conditions={str(k): tuple(str(v) for v in values) for k, values in data["conditions"].items()},
            reason=str(data["reason"]),
            author=str(data["author"]),
            created_at=str(data["created_at"]),
            tenant=data.get("tenant"),
            expires_at=data.get("expires_at"),
        )

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or parse_timestamp(self.expires_at) > now

    def matches(self, event: Mapping[str, Any]) -> bool:
        return all(_field_matches(event.get(name), wanted) for name, wanted in self.conditions.items())


def _field_matches(value: Any, wanted: Sequence[str]) -> bool:
    values = value if isinstance(value, list) else [value]
    for item in values:
        if item is None:
            continue
        text = str(item).lower()
        for candidate in wanted:
            if "/" in candidate and _in_network(text, candidate):
                return True
            if text == candidate.lower():
                return True
    return False


def _in_network(address: str, block: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(block, strict=False)
    except ValueError:
        return False


@dataclass
class RulePolicy:
    """What the engine applies to detections before they become alerts (pure)."""

    scopes: dict[str, tuple[str, ...] | None] = field(default_factory=dict)
    exceptions: dict[str, list[RuleException]] = field(default_factory=dict)
    suppressed_by_scope: int = 0
    suppressed_by_exception: int = 0

    def needs_events(self, detection: Detection) -> bool:
        return bool(self.exceptions.get(detection.rule.id))

    def admits(self, detection: Detection, events: Sequence[Mapping[str, Any]], *, now: datetime) -> bool:
        scope = self.scopes.get(detection.rule.id)
        if scope is not None and detection.tenant not in scope:
            self.suppressed_by_scope += 1
            return False
        active = [
            exception
            for exception in self.exceptions.get(detection.rule.id, [])
            if exception.active(now) and exception.tenant in (None, detection.tenant)
        ]
        if active and events and all(any(e.matches(event) for e in active) for event in events):
            self.suppressed_by_exception += 1
            return False
        return True


# --- the store-backed registry ----------------------------------------------------------------
def _now() -> str:
    return format_timestamp(utcnow())


def _entry(author: str, action: str, reason: str, *, tenant: str | None, **extra: Any) -> dict[str, Any]:
    return {"at": _now(), "author": author, "action": action, "reason": reason, "tenant": tenant, **extra}


def _entry_tenant(entry: Mapping[str, Any]) -> str | None:
    """The agency a history entry belongs to; entries written before entries carried one take
    their exception's."""
    exception = entry.get("exception")
    if "tenant" in entry:
        tenant = entry["tenant"]
    else:
        tenant = exception.get("tenant") if isinstance(exception, Mapping) else None
    return str(tenant) if tenant is not None else None


def _sees(tenant: str | None, scope: tuple[str, ...] | None) -> bool:
    return tenant is None or scope is None or tenant in scope


def visible_exceptions(body: Mapping[str, Any], scope: tuple[str, ...] | None) -> list[dict[str, Any]]:
    """The rule's exceptions a caller acting for ``scope`` (None = province-wide) may read."""
    return [dict(e) for e in body.get("exceptions") or [] if _sees(e.get("tenant"), scope)]


def visible_history(body: Mapping[str, Any], scope: tuple[str, ...] | None) -> list[dict[str, Any]]:
    """The rule's history entries a caller acting for ``scope`` may read."""
    return [dict(e, tenant=_entry_tenant(e)) for e in body.get("history") or [] if _sees(_entry_tenant(e), scope)]


def revision(state: Doc | None) -> str:
    """The version of a rule's own state that callers see and send back (see the module doc)."""
    return str(state.body.get("revision", 0)) if state is not None else "0"


def _trim_history(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest :data:`MAX_HISTORY` entries of each agency (and of province-wide ones)."""
    kept: list[dict[str, Any]] = []
    counts: dict[str | None, int] = {}
    for entry in reversed(history):
        tenant = _entry_tenant(entry)
        counts[tenant] = counts.get(tenant, 0) + 1
        if counts[tenant] <= MAX_HISTORY:
            kept.append(entry)
    return kept[::-1]


def bump_generation(store: Store) -> int:
    for _ in range(20):
        try:
            doc = store.get_doc("checkpoints", GENERATION_DOC)
        except NotFound:
            try:
                store.create_doc("checkpoints", {"generation": 1}, doc_id=GENERATION_DOC)
            except Conflict:
                continue
            return 1
        try:
            store.update_doc(
                "checkpoints", GENERATION_DOC, {"generation": doc.body["generation"] + 1}, version=doc.version
            )
        except Conflict:
            continue
        return int(doc.body["generation"]) + 1
    raise Conflict("rule generation counter kept changing")


def generation(store: Store) -> int:
    try:
        return int(store.get_doc("checkpoints", GENERATION_DOC).body["generation"])
    except NotFound:
        return 0


def rule_states(store: Store) -> list[Doc]:
    """Every stored rule state document."""
    docs: list[Doc] = []
    cursor = None
    while True:
        page = store.list_docs("rules", sort="created_at", descending=False, size=1000, cursor=cursor)
        docs.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return docs


def effective_rules(
    store: Store, shipped_dirs: Iterable[str | Path], *, cache: RuleCache | None = None
) -> tuple[RuleSet, RulePolicy]:
    """The shipped rules plus custom ones from the store, with enabled flags, scopes and
    exceptions applied; errors of broken stored rules are in ``RuleSet.errors``. With ``cache``
    the rule files load through the compiled-rule cache (:mod:`detections.rulecache`)."""
    ruleset = cache.load(list(shipped_dirs)) if cache is not None else load_rules(list(shipped_dirs))
    policy = RulePolicy()
    for doc in rule_states(store):
        body = doc.body
        if body.get("source") == "custom" and body.get("yaml"):
            custom = load_rule_text(body["yaml"], path=f"rules/{doc.id}")
            ruleset.errors.extend(custom.errors)
            for loaded in custom:
                ruleset.rules[loaded.id] = loaded
        if doc.id in ruleset.rules:
            ruleset.rules[doc.id].enabled = bool(body.get("enabled", True))
        scope = body.get("scope")
        policy.scopes[doc.id] = tuple(scope) if scope is not None else None
        policy.exceptions[doc.id] = [RuleException.from_dict(e) for e in body.get("exceptions") or []]
    return ruleset, policy


def _state(store: Store, rule_id: str, *, shipped: RuleSet) -> Doc | None:
    try:
        return store.get_doc("rules", rule_id)
    except NotFound:
        if rule_id not in shipped.rules:
            raise NotFound(f"no rule {rule_id!r}") from None
        return None


def _check_revision(rule_id: str, current: Doc | None, version: str | None) -> None:
    if version is not None and version != revision(current):
        raise Conflict(
            f"rule {rule_id} changed since it was read (version {revision(current)}, not {version})",
            hint="read it again and re-apply the change",
        )


def _save(store: Store, rule_id: str, current: Doc | None, body: dict[str, Any], *, revised: bool) -> Doc:
    """Write the state read as ``current`` (Conflict if the stored one moved since); ``revised``
    for a change of the rule itself, which bumps its revision."""
    body["updated_at"] = _now()
    body["history"] = _trim_history(list(body.get("history") or []))
    if revised:
        body["revision"] = int(body.get("revision", 0)) + 1
    if current is None:
        saved = store.create_doc("rules", body, doc_id=rule_id)
    else:
        saved = store.update_doc("rules", rule_id, body, version=current.version)
    bump_generation(store)
    return saved


def _fresh_state(rule_id: str, *, source: str) -> dict[str, Any]:
    return {
        "rule_id": rule_id,
        "source": source,
        "tenant": None,
        "scope": None,
        "enabled": True,
        "revision": 0,
        "exceptions": [],
        "history": [],
        "created_at": _now(),
    }


def validate_rule_text(text: str) -> RuleSet:
    """Parse one rule (or a collection); raises RuleError listing every problem."""
    parsed = load_rule_text(text, path="<submitted rule>")
    if parsed.errors:
        raise RuleError("; ".join(error.render() for error in parsed.errors))
    if len(parsed) == 0:
        raise RuleError("no rule in the submitted text")
    return parsed


def check_scope(scope: Sequence[str] | None, *, allowed: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """A tenant's rule admin may only aim a rule at their own agencies (scenario T5)."""
    if allowed is None:
        return tuple(scope) if scope is not None else None
    wanted = tuple(scope) if scope is not None else allowed
    outside = sorted(set(wanted) - set(allowed))
    if outside:
        raise NotVisible(f"no such tenant: {', '.join(outside)}", target=f"tenants/{outside[0]}", owner=outside[0])
    if not wanted:
        raise NotFound("no such tenant: (none)")
    return wanted


def save_custom_rule(
    store: Store,
    *,
    text: str,
    author: str,
    reason: str,
    scope: Sequence[str] | None,
    allowed: tuple[str, ...] | None,
    shipped: RuleSet,
    version: str | None = None,
) -> Doc:
    parsed = validate_rule_text(text)
    if len(parsed) != 1:
        raise RuleError("submit one rule at a time")
    loaded = next(iter(parsed))
    if loaded.id in shipped.rules:
        raise Conflict(f"rule id {loaded.id} belongs to a shipped rule", hint="give the new rule its own id")
    final_scope = check_scope(scope, allowed=allowed)
    owner = final_scope[0] if (allowed is not None and final_scope) else None
    for _ in range(RETRIES):
        try:
            current: Doc | None = store.get_doc("rules", loaded.id)
        except NotFound:
            current = None
        if current is not None:
            if current.body.get("source") != "custom":
                raise Conflict(f"rule {loaded.id} is not a custom rule")
            if allowed is not None and current.body.get("tenant") not in allowed:
                theirs = current.body.get("tenant")
                raise NotVisible(f"no rule {loaded.id!r}", target=f"rules/{loaded.id}", owner=theirs)
            if version is None:
                raise Conflict(f"rule {loaded.id} exists", hint="send the version you read to change it")
            _check_revision(loaded.id, current, version)
        body = dict(current.body) if current else _fresh_state(loaded.id, source="custom")
        body.update(yaml=text, scope=list(final_scope) if final_scope is not None else None, tenant=owner)
        action = "updated" if current else "created"
        body["history"] = [*body["history"], _entry(author, action, reason, tenant=owner, version=loaded.version)]
        try:
            return _save(store, loaded.id, current, body, revised=True)
        except Conflict:
            continue  # an exception came or went meanwhile: apply the change to the new state
    raise Conflict(f"rule {loaded.id} kept changing; try again")


def import_rules(
    store: Store, ruleset: RuleSet, *, author: str, reason: str, enabled: bool, shipped: RuleSet
) -> tuple[int, int]:
    """Store every rule of ``ruleset`` as a province-wide custom rule; returns (new, unchanged).

    Rules already stored with the same version are left alone; shipped ids are refused by the
    caller's ruleset check. The generation is bumped once, at the end.
    """
    new = unchanged = 0
    for loaded in ruleset:
        if loaded.id in shipped.rules:
            continue
        try:
            current: Doc | None = store.get_doc("rules", loaded.id)
        except NotFound:
            current = None
        if current is not None and current.body.get("yaml") == loaded.text:
            unchanged += 1
            continue
        body = dict(current.body) if current else _fresh_state(loaded.id, source="custom")
        body.update(yaml=loaded.text, scope=None, tenant=None, enabled=enabled if current is None else body["enabled"])
        body["history"] = [*body["history"], _entry(author, "imported", reason, tenant=None, version=loaded.version)]
        body["revision"] = int(body.get("revision", 0)) + 1
        body["updated_at"] = _now()
        if current is None:
            store.create_doc("rules", body, doc_id=loaded.id)
        else:
            store.update_doc("rules", loaded.id, body, version=current.version)
        new += 1
    if new:
        bump_generation(store)
    return new, unchanged


def set_enabled(
    store: Store, *, rule_id: str, enabled: bool, author: str, reason: str, shipped: RuleSet, version: str | None
) -> Doc:
    for _ in range(RETRIES):
        current = _state(store, rule_id, shipped=shipped)
        _check_revision(rule_id, current, version)
        body = dict(current.body) if current else _fresh_state(rule_id, source="shipped")
        body["enabled"] = enabled
        action = "enabled" if enabled else "disabled"
        body["history"] = [*body["history"], _entry(author, action, reason, tenant=body.get("tenant"))]
        try:
            return _save(store, rule_id, current, body, revised=True)
        except Conflict:
            continue  # an exception came or went meanwhile: apply the change to the new state
    raise Conflict(f"rule {rule_id} kept changing; try again")


def add_exception(
    store: Store,
    *,
    rule_id: str,
    conditions: Mapping[str, Sequence[str]],
    reason: str,
    author: str,
    tenant: str | None,
    expires_at: datetime | None,
    shipped: RuleSet,
) -> Doc:
    if not conditions:
        raise RuleError("an exception needs at least one field condition")
    for _ in range(RETRIES):
        current = _state(store, rule_id, shipped=shipped)
        body = dict(current.body) if current else _fresh_state(rule_id, source="shipped")
        exceptions = list(body.get("exceptions") or [])
        if sum(1 for e in exceptions if e.get("tenant") == tenant) >= MAX_EXCEPTIONS:
            raise RuleError(f"a rule holds at most {MAX_EXCEPTIONS} exceptions per agency; revoke some first")
        exception = {
            "id": uuid.uuid4().hex[:12],
            "conditions": {name: [str(v) for v in values] for name, values in conditions.items()},
            "reason": reason,
            "author": author,
            "created_at": _now(),
            "tenant": tenant,
            "expires_at": format_timestamp(expires_at) if expires_at else None,
        }
        body["exceptions"] = [*exceptions, exception]
        entry = _entry(author, "exception_added", reason, tenant=tenant, exception=exception)
        body["history"] = [*body["history"], entry]
        try:
            return _save(store, rule_id, current, body, revised=False)
        except Conflict:
            continue
    raise Conflict(f"rule {rule_id} kept changing; try again")


def revoke_exception(
    store: Store,
    *,
    rule_id: str,
    exception_id: str,
    reason: str,
    author: str,
    allowed: tuple[str, ...] | None,
    shipped: RuleSet,
) -> dict[str, Any]:
    """Remove the exception; returns it."""
    for _ in range(RETRIES):
        current = _state(store, rule_id, shipped=shipped)
        if current is None:
            raise NotFound(f"no exception {exception_id!r}")
        exceptions = list(current.body.get("exceptions") or [])
        kept = [e for e in exceptions if e["id"] != exception_id]
        removed = [e for e in exceptions if e["id"] == exception_id]
        if not removed:
            raise NotFound(f"no exception {exception_id!r}")
        # an agency's rule admin revokes only that agency's exceptions, not province-wide ones
        if allowed is not None and removed[0].get("tenant") not in allowed:
            target = f"rules/{rule_id}/exceptions/{exception_id}"
            raise NotVisible(f"no exception {exception_id!r}", target=target, owner=removed[0].get("tenant"))
        body = dict(current.body, exceptions=kept)
        entry = _entry(author, "exception_revoked", reason, tenant=removed[0].get("tenant"), exception=removed[0])
        body["history"] = [*body["history"], entry]
        try:
            _save(store, rule_id, current, body, revised=False)
        except Conflict:
            continue
        return dict(removed[0])
    raise Conflict(f"rule {rule_id} kept changing; try again")


def attack_coverage(ruleset: RuleSet) -> dict[str, list[str]]:
    """ATT&CK technique → ids of the enabled rules that detect it."""
    coverage: dict[str, list[str]] = {}
    for loaded in ruleset.enabled():
        for tag in loaded.attack_tags:
            name = tag.removeprefix("attack.")
            if name[:1] == "t" and name[1:2].isdigit():
                coverage.setdefault(name.upper(), []).append(loaded.id)
    return dict(sorted(coverage.items()))


__all__ = [
    "RuleException",
    "RulePolicy",
    "add_exception",
    "attack_coverage",
    "bump_generation",
    "check_scope",
    "effective_rules",
    "generation",
    "import_rules",
    "revision",
    "revoke_exception",
    "rule_states",
    "save_custom_rule",
    "set_enabled",
    "validate_rule_text",
    "visible_exceptions",
    "visible_history",
]
