"""Item 4 — the alert, case and search actions, end to end on each store: through the triage
and case services (workflow enforced, audited as the playbook), within the run's agency,
dry-run changing nothing; and every action module's actions registered."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from playbooks.actions import load_all
from playbooks.actions.base import ACTIONS, Action
from playbooks.records import get_run
from playbooks.runner import Runner
from playbooks.service import start_run
from soc_core.events import format_timestamp, make_event, utcnow
from soc_core.store import Store
from tests.playbooks.conftest import make_alert, playbook


def steps_of(store: Store, run_id: str) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in get_run(store, run_id).body["steps"]}


def run_on(store: Store, runner: Runner, book: Any, alert_id: str, **kwargs: Any) -> str:
    run = start_run(store, playbook=book, alert_id=alert_id, scope=None, actor="tester", **kwargs)
    runner.execute(run.id)
    return run.id


def test_pb4_every_action_module_registers_its_actions() -> None:
    modules = load_all()
    assert {"playbooks.actions.alert", "playbooks.actions.case", "playbooks.actions.search"} <= set(modules)
    found = 0
    for name in modules:
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Action) and cls is not Action and cls.__module__ == name and not inspect.isabstract(cls):
                found += 1
                assert ACTIONS.get(cls.name) is cls, f"{name}.{cls.__name__} is not registered as {cls.name!r}"
                assert cls.Params.model_config.get("extra") == "forbid", f"{cls.name}: Params must forbid unknown keys"
    assert found >= 9
    assert {
        "alert.set_status",
        "alert.set_level",
        "alert.tag",
        "alert.assign",
        "alert.comment",
        "case.open",
        "case.add_observables",
        "case.link_related",
        "search.hunt",
    } <= set(ACTIONS)


ALERT_BOOK = """\
name: triage
steps:
  - id: ack
    action: alert.set_status
    with: {status: acknowledged}
  - id: level
    action: alert.set_level
    with: {level: critical}
  - id: tag
    action: alert.tag
    with: {add: [brute-force, "{{ alert.entities['source.ip'][0] }}"]}
  - id: assign
    action: alert.assign
    with: {assignee: ana}
  - id: note
    action: alert.comment
    with: {text: "seen {{ alert.count }} time(s)"}
"""


def test_pb4_alert_actions_through_the_triage_service(pstore: Store, make_runner: Callable[..., Runner]) -> None:
    book = playbook(ALERT_BOOK)
    runner = make_runner(book)
    alert_id = make_alert(pstore)
    run_id = run_on(pstore, runner, book, alert_id)
    assert get_run(pstore, run_id).body["status"] == "succeeded"
    alert = pstore.get_doc("alerts", alert_id).body
    assert alert["status"] == "acknowledged" and alert["acknowledged_at"]
    assert alert["rule.level"] == "critical" and alert["rule.level_original"] == "high"
    assert alert["tags"] == ["brute-force", "203.0.113.7"] and alert["assignee"] == "ana"
    assert [(c["author"], c["text"]) for c in alert["comments"]] == [("playbook:triage", "seen 1 time(s)")]
    pstore.refresh()  # playbook actions write without a refresh (ES: searchable within the interval)
    audits = [d.body for d in pstore.list_docs("audit", sort="seq", descending=False, size=200).items]
    updates = [r for r in audits if r["action"] in ("alert.update", "alert.comment")]
    assert len(updates) == 5 and {r["actor"] for r in updates} == {"playbook:triage"}

    # the workflow holds for playbooks: a resolved alert cannot be acknowledged
    closed = make_alert(pstore, status="resolved")
    run_id = run_on(pstore, runner, book, closed)
    ack = steps_of(pstore, run_id)["ack"]
    assert ack["status"] == "failed" and "cannot go from resolved to acknowledged" in ack["error"]
    assert pstore.get_doc("alerts", closed).body["status"] == "resolved"


def test_pb4_alert_actions_dry_run_and_agency_scope(pstore: Store, make_runner: Callable[..., Runner]) -> None:
    book = playbook(ALERT_BOOK)
    alert_id = make_alert(pstore)
    before = pstore.get_doc("alerts", alert_id)
    run_id = run_on(pstore, make_runner(book), book, alert_id, dry_run=True)
    steps = steps_of(pstore, run_id)
    assert all(s["status"] == "succeeded" for s in steps.values())
    assert steps["ack"]["output"]["result"] == "would change"
    assert steps["ack"]["output"]["after"]["status"] == "acknowledged"
    assert steps["note"]["output"]["result"] == "would comment"
    after = pstore.get_doc("alerts", alert_id)
    assert {k: v for k, v in after.body.items() if k != "timeline"} == before.body  # only the run's timeline entries

    other = make_alert(pstore, tenant="health")
    reach = playbook(
        "name: reach\nsteps:\n  - id: ack\n    action: alert.set_status\n"
        f"    with: {{status: resolved, alert_id: {other}}}\n"
    )
    run_id = run_on(pstore, make_runner(reach), reach, alert_id)
    ack = steps_of(pstore, run_id)["ack"]
    assert ack["status"] == "failed" and "no such alert" in ack["error"]
    assert pstore.get_doc("alerts", other).body["status"] == "new"


def _events(store: Store, tenant: str, ip: str, count: int) -> list[str]:
    now = utcnow()
    events = [
        make_event(
            tenant=tenant,
            dataset="system.auth",
            sensor_id="s1",
            source="/var/log/auth.log",
            position=f"{ip}-{i}",
            raw=f"{tenant} {ip} {i}".encode(),
            timestamp=now - timedelta(minutes=i + 1),
            fields={
                "message": f"Failed password for root from {ip}",
                "source.ip": ip,
                "user.name": "root",
                "host.name": f"{tenant}-gw",
                "event.outcome": "failure",
            },
        )
        for i in range(count)
    ]
    result = store.add_events(events)
    assert result.created == count
    store.refresh()
    return [str(e["event.id"]) for e in events]


CASE_BOOK = """\
name: investigate
steps:
  - id: case
    action: case.open
    with: {title: "Brute force on {{ alert.entities['user.name'][0] }}"}
  - id: observables
    action: case.add_observables
  - id: domain
    action: case.add_observables
    with:
      observables:
        - {type: domain, value: evil.example}
        - {type: ip, value: "{{ alert.entities['source.ip'][0] }}"}
  - id: related
    action: case.link_related
    with: {window_hours: 24, fields: [source.ip]}
  - id: hunt
    action: search.hunt
    with: {query: "source.ip:{{ alert.entities['source.ip'][0] }}", hours: 24}
"""


def test_pb4_case_and_search_actions_end_to_end(pstore: Store, make_runner: Callable[..., Runner]) -> None:
    ip = "198.51.100.9"
    police_events = _events(pstore, "police", ip, 3)
    _events(pstore, "health", ip, 2)
    entities = {"source.ip": [ip], "user.name": ["root"]}
    alert_id = make_alert(pstore, entities=entities, event_ids=police_events)
    related = make_alert(pstore, entities={"source.ip": [ip]})
    old = format_timestamp(utcnow() - timedelta(days=3))
    too_old = make_alert(pstore, entities={"source.ip": [ip]}, first_seen=old, last_seen=old)
    other_ip = make_alert(pstore, entities={"source.ip": ["192.0.2.1"]})
    other_agency = make_alert(pstore, tenant="health", entities={"source.ip": [ip]})
    book = playbook(CASE_BOOK)
    runner = make_runner(book)

    dry = run_on(pstore, runner, book, alert_id, dry_run=True)
    assert steps_of(pstore, dry)["case"]["output"]["result"] == "would open"
    dry_steps = steps_of(pstore, dry)
    assert all(step["status"] == "succeeded" for step in dry_steps.values()), dry_steps
    assert {"type": "ip", "value": ip} in dry_steps["observables"]["output"]["observables"]
    assert dry_steps["related"]["output"] == {"case_id": None, "result": "would link", "alert_ids": [related]}
    assert dry_steps["hunt"]["output"]["result"] == "would attach" and dry_steps["hunt"]["output"]["count"] == 3
    assert pstore.get_doc("alerts", alert_id).body.get("case_id") is None
    assert pstore.list_docs("cases", size=10).items == []

    run_id = run_on(pstore, runner, book, alert_id)
    run = get_run(pstore, run_id).body
    assert run["status"] == "succeeded", run
    steps = steps_of(pstore, run_id)
    case_id = steps["case"]["output"]["case_id"]
    assert run["case_id"] == case_id
    case = pstore.get_doc("cases", case_id).body
    assert case["title"] == "Brute force on root" and case["tenant"] == "police" and case["severity"] == "high"
    assert {(o["type"], o["value"]) for o in case["observables"]} >= {
        ("ip", ip),
        ("user", "root"),
        ("host", "police-gw"),  # from the alert's events
        ("domain", "evil.example"),
    }
    assert steps["domain"]["output"]["observables"] == [{"type": "domain", "value": "evil.example"}]
    assert sorted(case["alert_ids"]) == sorted([alert_id, related])
    assert steps["related"]["output"]["alert_ids"] == [related]
    for untouched in (too_old, other_ip, other_agency):
        assert pstore.get_doc("alerts", untouched).body.get("case_id") is None
    assert pstore.get_doc("alerts", related).body["case_id"] == case_id
    [hunt] = case["hunts"]
    assert hunt["count"] == 3 and sorted(hunt["event_ids"]) == sorted(police_events)
    assert hunt["details"]["top"]["source.ip"] == [[ip, 3]]
    kinds = [e["kind"] for e in case["timeline"]]
    assert {"created", "observables", "alerts", "hunt", "playbook"} <= set(kinds)
    assert any(e["kind"] == "playbook" and e["run_id"] == run_id for e in case["timeline"])

    # again on the same alert: the case is updated, not opened twice; nothing is added twice
    again = run_on(pstore, runner, book, alert_id)
    steps = steps_of(pstore, again)
    assert steps["case"]["output"] == {"case_id": case_id, "result": "updated", "created": False}
    assert steps["observables"]["output"]["observables"] == steps["domain"]["output"]["observables"] == []
    assert steps["related"]["output"]["alert_ids"] == []
    assert len(pstore.list_docs("cases", size=10).items) == 1
    assert len(pstore.get_doc("cases", case_id).body["hunts"]) == 2  # one per run step
