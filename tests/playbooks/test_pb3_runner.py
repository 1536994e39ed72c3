"""Item 3 — the runner, on both stores: once per alert across racing runners and restarts,
retries, timeouts, on_error, if, cancel, rerun, approvals (approve, reject, expire), a restart
in the middle of a run, the concurrency limit, and the record (audit, timelines)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from playbooks.records import KIND, auto_run_id, get_run, mutate
from playbooks.runner import CHECKPOINT_ID, LATE_SWEEP_POLLS, Runner
from playbooks.service import ApprovalRefused, cancel_run, decide, list_runs, rerun, start_run
from soc_core.auth import Membership
from soc_core.config import Settings
from soc_core.errors import PlaybookError
from soc_core.events import format_timestamp, parse_timestamp, utcnow
from soc_core.store import Store
from tests.playbooks.conftest import key, make_alert, playbook
from tests.playbooks.fake_actions import CALLS, gate
from tests.support.waiting import wait_for
from workflow.principals import Principal


def steps_of(store: Store, run_id: str) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in get_run(store, run_id).body["steps"]}


def person(name: str, *memberships: tuple[str, str]) -> Principal:
    return Principal(
        id=name,
        name=name,
        kind="user",
        memberships=tuple(Membership(t, r) for t, r in memberships),  # type: ignore[arg-type]
    )


def test_pb3_an_alert_starts_a_playbook_once_across_racing_runners_and_restarts(
    pstore: Store, make_runner: Callable[..., Runner]
) -> None:
    k = key()
    book = playbook(
        f"""\
name: auto-send
trigger: {{type: alert, levels: [high], agencies: [police]}}
steps:
  - id: send
    action: test.send
    with: {{key: "{k}-{{{{ alert.id }}}}"}}
"""
    )
    one, two = make_runner(book, holder="one"), make_runner(book, holder="two")
    one.trigger_new_alerts()  # the first poll sets the checkpoint at "now"
    matching = [make_alert(pstore) for _ in range(4)]
    other_level = make_alert(pstore, **{"rule.level": "low"})
    other_agency = make_alert(pstore, tenant="health")
    barrier = threading.Barrier(2)
    futures: list[Any] = []

    def poll(runner: Runner) -> None:
        barrier.wait()
        futures.extend(runner.poll_once())

    threads = [threading.Thread(target=poll, args=(runner,)) for runner in (one, two)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for future in futures:
        future.result()
    for runner in (one, two):  # whatever was still pending (claimed by nobody yet)
        for future in runner.dispatch():
            future.result()
    runs = list_runs(pstore, scope=None, size=100).items
    assert sorted(doc.body["alert_id"] for doc in runs) == sorted(matching)
    assert {doc.id for doc in runs} == {auto_run_id("auto-send", a) for a in matching}
    assert all(doc.body["status"] == "succeeded" for doc in runs)
    assert [CALLS[f"{k}-{a}"] for a in matching] == [1, 1, 1, 1]
    assert CALLS[f"{k}-{other_level}"] == CALLS[f"{k}-{other_agency}"] == 0
    # a restart, even one that lost its checkpoint, starts nothing twice
    pstore.delete_doc("checkpoints", CHECKPOINT_ID)
    fresh = make_runner(book, holder="three")
    pstore.put_doc("checkpoints", CHECKPOINT_ID, {"since": format_timestamp(utcnow() - timedelta(hours=1)), "seen": []})
    assert fresh.trigger_new_alerts() == 0
    assert len(list_runs(pstore, scope=None, size=100).items) == 4


def test_pb3_retries_with_backoff_then_success_or_failure(pstore: Store, make_runner: Callable[..., Runner]) -> None:
    k1, k2 = key(), key()
    book = playbook(
        f"""\
name: flaky
steps:
  - id: twice
    action: test.flaky
    with: {{key: {k1}, fail_times: 2}}
    retries: 2
  - id: thrice
    action: test.flaky
    with: {{key: {k2}, fail_times: 3}}
    retries: 2
"""
    )
    run = start_run(pstore, playbook=book, alert_id=make_alert(pstore), scope=None, actor="tester")
    assert make_runner(book).execute(run.id) == "failed"
    steps = steps_of(pstore, run.id)
    assert steps["twice"]["status"] == "succeeded" and steps["twice"]["attempts"] == 3
    assert steps["twice"]["output"] == {"calls": 3}
    assert steps["thrice"]["status"] == "failed" and steps["thrice"]["attempts"] == 3
    assert "attempt 3: planned failure 3" in steps["thrice"]["error"]
    assert CALLS[k2] == 3
    body = get_run(pstore, run.id).body
    assert body["error"] == "step thrice failed" and body["duration_ms"] is not None


def test_pb3_timeout_on_error_and_if(pstore: Store, make_runner: Callable[..., Runner]) -> None:
    k = key()
    book = playbook(
        f"""\
name: timing
steps:
  - id: slow
    action: test.block
    with: {{key: {k}-slow, seconds: 60}}
    timeout: 0.3
    retries: 3
    on_error: continue
  - id: skipped
    action: test.send
    with: {{key: {k}-skipped}}
    if: "steps.slow.status == 'succeeded'"
  - id: ran
    action: test.send
    with: {{key: {k}-ran}}
    if: "{{{{ steps.slow.status == 'failed' and alert['rule.level'] == 'high' }}}}"
  - id: broken
    action: test.flaky
    with: {{key: {k}-broken, fail_times: 5}}
  - id: never
    action: test.send
    with: {{key: {k}-never}}
"""
    )
    try:
        run = start_run(pstore, playbook=book, alert_id=make_alert(pstore), scope=None, actor="tester")
        assert make_runner(book).execute(run.id) == "failed"
    finally:
        gate(f"{k}-slow").set()
    steps = steps_of(pstore, run.id)
    # timed out, and not retried: test.block is not idempotent and may have acted
    assert steps["slow"]["status"] == "failed" and steps["slow"]["attempts"] == 1
    assert "timed out after 0.3 s" in steps["slow"]["error"] and "not retried" in steps["slow"]["error"]
    assert steps["skipped"]["status"] == "skipped" and CALLS[f"{k}-skipped"] == 0
    assert steps["ran"]["status"] == "succeeded" and CALLS[f"{k}-ran"] == 1
    assert steps["broken"]["status"] == "failed"
    assert steps["never"]["status"] == "skipped" and CALLS[f"{k}-never"] == 0  # on_error: stop


def test_pb3_cancel_and_rerun(pstore: Store, make_runner: Callable[..., Runner]) -> None:
    k = key()
    book = playbook(
        f"""\
name: cancellable
steps:
  - id: hold
    action: test.block
    with: {{key: {k}}}
  - id: after
    action: test.send
    with: {{key: {k}-after}}
"""
    )
    runner = make_runner(book)
    pending = start_run(pstore, playbook=book, alert_id=make_alert(pstore), scope=None, actor="tester")
    assert cancel_run(pstore, run_id=pending.id, scope=("police",), actor="boss").body["status"] == "cancelled"
    assert runner.execute(pending.id) == "cancelled" and CALLS[k] == 0
    with pytest.raises(PlaybookError, match="cancelled already"):
        cancel_run(pstore, run_id=pending.id, scope=None, actor="boss")

    running = start_run(pstore, playbook=book, alert_id=make_alert(pstore), scope=None, actor="tester")
    [future] = runner.dispatch()
    wait_for(lambda: steps_of(pstore, running.id)["hold"]["status"], "the step to run", until=lambda s: s == "running")
    cancel_run(pstore, run_id=running.id, scope=None, actor="boss")
    assert get_run(pstore, running.id).body["status"] == "running"  # a running step finishes first
    gate(k).set()
    assert future.result() == "cancelled"
    steps = steps_of(pstore, running.id)
    assert steps["hold"]["status"] == "succeeded" and steps["after"]["status"] == "cancelled"
    assert CALLS[f"{k}-after"] == 0
    assert get_run(pstore, running.id).body["cancelled_by"] == "boss"

    again = rerun(pstore, run_id=running.id, scope=("police",), actor="boss")
    assert again.body["rerun_of"] == running.id and again.body["alert_id"] == running.body["alert_id"]
    assert runner.execute(again.id) == "succeeded" and CALLS[f"{k}-after"] == 1


GATED = """\
name: gated
steps:
  - id: cut
    action: test.contain
    with: {{key: {k}}}
    approval: {{roles: [analyst], agency: own, expires: {expires}}}
  - id: after
    action: test.send
    with: {{key: {k}-after}}
"""


def test_pb3_approval_approved_by_a_person_of_the_right_role_and_agency(
    pstore: Store, make_runner: Callable[..., Runner]
) -> None:
    k = key()
    book = playbook(GATED.format(k=k, expires="4h"))
    runner = make_runner(book)
    run = start_run(pstore, playbook=book, alert_id=make_alert(pstore), scope=None, actor="tester", dry_run=False)
    assert runner.execute(run.id) == "waiting_approval"
    approval = steps_of(pstore, run.id)["cut"]["approval"]
    assert approval["roles"] == ["analyst"] and approval["decision"] is None
    assert parse_timestamp(approval["expires_at"]) - parse_timestamp(approval["requested_at"]) == timedelta(hours=4)
    assert runner.dispatch() == []  # nothing to do until someone decides
    with pytest.raises(ApprovalRefused, match="needs one of the roles"):
        decide(pstore, run_id=run.id, step_id="cut", principal=person("m", ("police", "manager")), approve=True)
    with pytest.raises(Exception, match="no such playbook run"):  # another agency's analyst: not even visible
        decide(pstore, run_id=run.id, step_id="cut", principal=person("h", ("health", "analyst")), approve=True)
    key_of_ana = Principal(id="k1", name="k1", kind="apikey", memberships=(Membership("police", "analyst"),))
    with pytest.raises(ApprovalRefused, match="people, not by API keys"):
        decide(pstore, run_id=run.id, step_id="cut", principal=key_of_ana, approve=True)
    decide(
        pstore, run_id=run.id, step_id="cut", principal=person("ana", ("police", "analyst")), approve=True, comment="ok"
    )
    with pytest.raises(ApprovalRefused, match="not waiting"):
        decide(pstore, run_id=run.id, step_id="cut", principal=person("ana", ("police", "analyst")), approve=False)
    [future] = runner.dispatch()
    assert future.result() == "succeeded"
    steps = steps_of(pstore, run.id)
    assert steps["cut"]["status"] == "succeeded" and steps["cut"]["output"] == {"dry_run": False}
    assert steps["cut"]["approval"]["decided_by"] == "ana" and steps["cut"]["approval"]["decision"] == "approved"
    assert CALLS[k] == 1 and CALLS[f"{k}-after"] == 1


def test_pb3_approval_rejected_or_expired_cancels_the_step_and_the_run(
    pstore: Store, make_runner: Callable[..., Runner]
) -> None:
    k = key()
    book = playbook(GATED.format(k=k, expires="4h"))
    runner = make_runner(book)
    rejected = start_run(pstore, playbook=book, alert_id=make_alert(pstore), scope=None, actor="tester")
    assert runner.execute(rejected.id) == "waiting_approval"
    decide(pstore, run_id=rejected.id, step_id="cut", principal=person("p", ("*", "analyst")), approve=False)
    assert runner.execute(rejected.id) == "cancelled"
    steps = steps_of(pstore, rejected.id)
    assert steps["cut"]["status"] == "cancelled" and steps["cut"]["error"] == "rejected by p"
    assert steps["after"]["status"] == "cancelled" and CALLS[k] == 0

    short = playbook(GATED.format(k=k, expires="0.5"))
    expiring = start_run(pstore, playbook=short, alert_id=make_alert(pstore), scope=None, actor="tester")
    runner = make_runner(short)
    assert runner.execute(expiring.id) == "waiting_approval"
    expires = parse_timestamp(steps_of(pstore, expiring.id)["cut"]["approval"]["expires_at"])
    wait_for(utcnow, "the approval to expire", until=lambda now: now > expires)
    with pytest.raises(ApprovalRefused, match="expired"):
        decide(pstore, run_id=expiring.id, step_id="cut", principal=person("p", ("*", "analyst")), approve=True)
    [future] = runner.dispatch()
    assert future.result() == "cancelled"
    steps = steps_of(pstore, expiring.id)
    assert steps["cut"]["status"] == "cancelled" and "approval expired" in steps["cut"]["error"]
    assert CALLS[k] == 0 and CALLS[f"{k}-after"] == 0


def test_pb3_a_gated_step_is_a_dry_run_unless_a_person_started_the_run_live(
    pstore: Store, make_runner: Callable[..., Runner]
) -> None:
    k = key()
    book = playbook(GATED.format(k=k, expires="4h"))
    runner = make_runner(book)
    run = start_run(pstore, playbook=book, alert_id=make_alert(pstore), scope=None, actor="tester")  # default
    runner.execute(run.id)
    decide(pstore, run_id=run.id, step_id="cut", principal=person("p", ("police", "analyst")), approve=True)
    assert runner.execute(run.id) == "succeeded"
    assert steps_of(pstore, run.id)["cut"]["output"] == {"dry_run": True}


def _crashed_mid_step(store: Store, run_id: str, step_id: str) -> None:
    """The run as a process killed while running ``step_id`` leaves it: the step running, the
    lease of a holder that no longer renews it, run out."""
    past = format_timestamp(utcnow() - timedelta(seconds=1))

    def change(body: dict[str, Any]) -> dict[str, Any]:
        body.update(status="running", started_at=past, lease={"holder": "dead", "until": past})
        body["steps"] = [
            {**s, "status": "running", "attempts": 1, "started_at": past} if s["id"] == step_id else s
            for s in body["steps"]
        ]
        return body

    mutate(store, run_id, change)


def test_pb3_restart_mid_run_resumes_idempotent_steps_and_never_repeats_others(
    pstore: Store, make_runner: Callable[..., Runner]
) -> None:
    k = key()
    book = playbook(
        f"""\
name: restart
steps:
  - id: read
    action: test.echo
    with: {{key: {k}-read}}
  - id: send
    action: test.send
    with: {{key: {k}-send}}
    on_error: continue
  - id: last
    action: test.echo
    with: {{key: {k}-last}}
"""
    )
    runner = make_runner(book, holder="new")
    idempotent = start_run(pstore, playbook=book, alert_id=make_alert(pstore), scope=None, actor="tester")
    _crashed_mid_step(pstore, idempotent.id, "read")
    # a live lease of another process is respected: nothing is touched
    mutate(
        pstore,
        idempotent.id,
        lambda b: {**b, "lease": {"holder": "alive", "until": format_timestamp(utcnow() + timedelta(hours=1))}},
    )
    assert runner.execute(idempotent.id) == "running" and CALLS[f"{k}-read"] == 0
    assert runner.dispatch() == []
    _crashed_mid_step(pstore, idempotent.id, "read")
    [future] = runner.dispatch()
    assert future.result() == "succeeded"
    steps = steps_of(pstore, idempotent.id)
    assert steps["read"]["status"] == "succeeded" and steps["read"]["attempts"] == 2 and CALLS[f"{k}-read"] == 1

    not_idempotent = start_run(pstore, playbook=book, alert_id=make_alert(pstore), scope=None, actor="tester")
    _crashed_mid_step(pstore, not_idempotent.id, "send")
    mutate(
        pstore, not_idempotent.id, lambda b: {**b, "steps": [{**b["steps"][0], "status": "succeeded"}, *b["steps"][1:]]}
    )
    sent = CALLS[f"{k}-send"]  # the first run sent once
    assert runner.execute(not_idempotent.id) == "succeeded"  # on_error: continue
    steps = steps_of(pstore, not_idempotent.id)
    assert steps["send"]["status"] == "interrupted" and "not repeated" in steps["send"]["error"]
    assert CALLS[f"{k}-send"] == sent
    assert steps["last"]["status"] == "succeeded"


def test_pb3_concurrency_limit(pstore: Store, make_runner: Callable[..., Runner], settings: Any) -> None:
    k = key()
    book = playbook(f"name: limited\nsteps:\n  - id: hold\n    action: test.block\n    with: {{key: {k}}}\n")
    limited = settings.model_copy(
        update={"playbooks": settings.playbooks.model_copy(update={"max_concurrent_runs": 2})}
    )
    runner = make_runner(book, settings=limited)
    runs = [start_run(pstore, playbook=book, alert_id=make_alert(pstore), scope=None, actor="t") for _ in range(4)]
    first = runner.dispatch()
    assert len(first) == 2
    wait_for(lambda: CALLS[k], "two runs to start", until=lambda n: n == 2)
    assert runner.dispatch() == []
    gate(k).set()
    done = [f.result() for f in first]
    rest = runner.dispatch()
    assert done == ["succeeded", "succeeded"] and len(rest) == 2
    assert [f.result() for f in rest] == ["succeeded", "succeeded"]
    assert all(get_run(pstore, r.id).body["status"] == "succeeded" for r in runs)


def test_pb3_every_change_is_audited_and_on_the_alert_timeline(
    pstore: Store, make_runner: Callable[..., Runner], settings: Settings
) -> None:
    k = key()
    book = playbook(
        f"""\
name: recorded
steps:
  - id: say
    action: test.echo
    with:
      key: {k}
      value: {{text: "seen {{{{ alert.entities['user.name'][0] }}}}", api_key: abc123}}
"""
    )
    # an event carried a configured secret (a password typed as a user name)
    alert_id = make_alert(pstore, entities={"user.name": ["s3cret-value"]})
    run = start_run(pstore, playbook=book, alert_id=alert_id, scope=None, actor="tester")
    # the configured SMTP password (a SecretStr) is one of the secrets blanked out of records
    smtp = settings.playbooks.smtp.model_copy(update={"password": SecretStr("s3cret-value")})
    configured = settings.model_copy(update={"playbooks": settings.playbooks.model_copy(update={"smtp": smtp})})
    runner = make_runner(book, settings=configured)
    assert runner.secrets == {"playbooks.smtp.password": "s3cret-value"}
    assert runner.execute(run.id) == "succeeded"
    step = steps_of(pstore, run.id)["say"]
    assert step["params"]["value"] == {"text": "seen ***", "api_key": "***"}
    assert step["output"]["value"] == {"text": "seen ***", "api_key": "***"}
    pstore.refresh()  # a run's audit batch is written without a refresh (ES: searchable within the interval)
    records = [d.body for d in pstore.list_docs("audit", sort="seq", descending=False, size=100).items]
    mine = [r for r in records if r["target"] == f"{KIND}/{run.id}"]
    assert [r["action"] for r in mine] == [
        "playbook.run.start",
        "playbook.run.running",
        "playbook.step.running",
        "playbook.step.succeeded",
        "playbook.run.succeeded",
    ]
    assert mine[0]["actor"] == "tester" and {r["actor"] for r in mine[1:]} == {"playbook:recorded"}
    timeline = pstore.get_doc("alerts", alert_id).body["timeline"]
    assert [e["text"] for e in timeline][-1] == "recorded: run succeeded"
    assert all(e["run_id"] == run.id and e["kind"] == "playbook" for e in timeline)


def test_pb3_an_alert_stored_after_newer_ones_is_started_by_the_sweep(
    pstore: Store, make_runner: Callable[..., Runner]
) -> None:
    book = playbook(
        "name: late\ntrigger: {type: alert, levels: [high]}\n"
        "steps:\n  - id: echo\n    action: test.echo\n    with: {key: late}\n"
    )
    runner = make_runner(book)
    assert runner.trigger_new_alerts() == 0  # poll 1 sets the checkpoint
    make_alert(pstore)
    assert runner.trigger_new_alerts() == 1  # poll 2: read after the checkpoint
    late = make_alert(pstore, created_at=format_timestamp(utcnow() - timedelta(seconds=30)))
    for _ in range(LATE_SWEEP_POLLS - 2):  # polls 3..30 read only after the checkpoint
        assert runner.trigger_new_alerts() == 0
    assert runner.trigger_new_alerts() == 1  # poll 31 sweeps the margin again
    assert runner.trigger_new_alerts() == 0
    assert sorted(d.body["alert_id"] == late for d in list_runs(pstore, scope=None).items) == [False, True]


def test_pb3_a_freed_slot_is_filled_at_once_not_at_the_next_poll(
    pstore: Store, make_runner: Callable[..., Runner], settings: Any
) -> None:
    """One slot and an hour between polls: the three queued runs still all finish, because each
    run that ends while others wait wakes the loop (the slot used to stay empty until the next poll,
    capping a runner at max_concurrent_runs / poll_seconds runs per second)."""
    k = key()
    book = playbook(f"name: queued\nsteps:\n  - id: hold\n    action: test.block\n    with: {{key: {k}}}\n")
    slow = settings.model_copy(
        update={"playbooks": settings.playbooks.model_copy(update={"max_concurrent_runs": 1, "poll_seconds": 3600})}
    )
    runner = make_runner(book, settings=slow)
    runs = [start_run(pstore, playbook=book, alert_id=make_alert(pstore), scope=None, actor="t") for _ in range(3)]
    gate(k).set()
    loop = threading.Thread(target=runner.run_forever, daemon=True)
    loop.start()
    try:
        finished = wait_for(
            lambda: sum(get_run(pstore, r.id).body["status"] == "succeeded" for r in runs),
            "the queued runs to finish one after another",
            until=lambda n: n == len(runs),
            stall=30.0,
        )
    finally:
        runner.close(wait=False)
        loop.join(timeout=60)
    assert finished == 3 and CALLS[k] == 3
    assert not loop.is_alive(), "close() wakes the loop out of its hour-long wait"
