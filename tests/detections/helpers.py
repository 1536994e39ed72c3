"""Small builders shared by the detection tests."""

from __future__ import annotations

import textwrap
from typing import Any

from detections.backtest import store_hits
from detections.evaluation import process_rule
from detections.loader import LoadedRule, load_rule_text
from detections.matcher import Matcher, compile_rule
from soc_core.store import Store

_counter = [0]


def event(**fields: Any) -> dict[str, Any]:
    """An event with the required fields; keyword names use ``__`` for dots."""
    _counter[0] += 1
    base: dict[str, Any] = {
        "@timestamp": "2026-11-25T10:00:00.000Z",
        "event.id": f"e{_counter[0]}",
        "event.kind": "event",
        "organization.id": "police",
        "event.dataset": "system.auth",
    }
    base.update({name.replace("__", "."): value for name, value in fields.items()})
    return base


def load_one(text: str) -> LoadedRule:
    ruleset = load_rule_text(textwrap.dedent(text), path="test.yml")
    assert not ruleset.errors, [e.render() for e in ruleset.errors]
    assert len(ruleset) == 1
    return next(iter(ruleset))


def rule_yaml(detection: str, logsource: str = "product: linux\n    service: sshd") -> str:
    body = textwrap.indent(textwrap.dedent(detection).strip("\n"), "    ")
    return (
        "title: Test rule\n"
        "id: 11111111-2222-3333-4444-555555555555\n"
        "status: test\n"
        "logsource:\n"
        f"    {logsource}\n"
        "detection:\n"
        f"{body}\n"
        "level: low\n"
    )


def matcher(detection: str, logsource: str = "product: linux\n    service: sshd") -> Matcher:
    loaded = load_one(rule_yaml(detection, logsource))
    return compile_rule(process_rule(loaded), where=loaded.where)


def rule_hits(store: Store, loaded: LoadedRule, **scope: Any) -> list[str]:
    """Ids of the stored events the rule matches, oldest first (:func:`store_hits`'s options)."""
    return [hit.id for hit in store_hits(store, loaded, **scope)]
