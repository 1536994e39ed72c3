"""Issue 12, runner throughput (session 22): audit records appended as one chained batch, on
both stores.

2. A batch is one create (its first record, carrying the others under a MAC) and one bulk
   write of the others at the places that create reserved; every record is listed on its own;
   ``verify_chain`` verifies single records and batches and finds a record edited, removed or
   reordered inside a batch; a crash between the batch's two writes loses nothing (the next
   append restores the copies); the runner keeps a drive's records in the run's outbox
   (written with each change) and appends them as one batch when the drive ends, so a crash
   between the batch and the run's write neither loses nor doubles a record.
3. A run's audit records cost two requests, none refreshed; starting runs for a page of alerts
   writes no audit record one by one; the asset inventory is parsed once until a file changes.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from playbooks import assets
from playbooks.records import KIND, get_run
from playbooks.runner import Runner
from playbooks.service import start_auto_runs, start_run
from soc_api.main import create_app
from soc_api.services import accounts
from soc_core.auth import PROVINCE, Membership
from soc_core.config import Settings, read_config_file
from soc_core.errors import ConfigError, StoreUnavailable
from soc_core.events import format_timestamp, utcnow
from soc_core.store import Store
from tests.playbooks.conftest import make_alert, playbook
from tests.playbooks.test_pb3_runner_s13r import FIVE, STEPS, Counting
from workflow import audit

PASSWORD = "a-very-long-password"


class Requests(Counting):
    """:class:`Counting` of the calls made to the store, not those a store method makes to
    itself (SQLite's ``write_docs`` creates one by one inside one call)."""

    def __init__(self, store: Store) -> None:
        self._inside = threading.local()
        super().__init__(store)

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        counted = super()._wrap(name, method)

        def outermost(kind: str, *args: Any, **kwargs: Any) -> Any:
            if getattr(self._inside, "depth", 0):
                return method(kind, *args, **kwargs)
            self._inside.depth = 1
            try:
                return counted(kind, *args, **kwargs)
            finally:
                self._inside.depth = 0

        return outermost


def entries(prefix: str, count: int) -> list[dict[str, Any]]:
    return [
        audit.entry(
            actor=f"{prefix}-actor{i}",
            action=f"test.{prefix}.{i}",
            tenant="police",
            target=f"alerts/{prefix}{i}",
            entry_id=f"{prefix}:{i}",
        )
        for i in range(count)
    ]


def listed(store: Store) -> list[dict[str, Any]]:
    store.refresh()
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = store.list_docs("audit", sort="seq", descending=False, size=500, cursor=cursor)
        out += [dict(d.body) for d in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return out


def problems(store: Store) -> list[tuple[int, str]]:
    report = audit.verify_chain(store)
    return [(p.seq, p.reason) for p in report.problems]


def test_p12_2_a_batch_is_two_requests_and_every_record_is_listed_on_its_own(pstore: Store) -> None:
    """Before: one create (and on Elasticsearch one fsync) per record, each waiting for the last."""
    audit.record(pstore, actor="old", action="test.single", tenant="police")
    counts = Requests(pstore)
    seqs = audit.record_batch(pstore, entries("b", 6), refresh=False)
    assert seqs == list(range(2, 8))
    assert counts.calls[("create_doc", "audit")] == 1 and counts.calls[("write_docs", "audit")] == 1, counts.calls
    assert counts.refreshed["audit"] == 0, counts.refreshed
    audit.record(pstore, actor="after", action="test.single", tenant="police")
    records = listed(pstore)
    assert [r["seq"] for r in records] == list(range(1, 9)), "each record at its own place, none lost or doubled"
    assert [r["action"] for r in records[1:7]] == [f"test.b.{i}" for i in range(6)]
    assert all(r["actor"] == f"b-actor{i}" and r["target"] == f"alerts/b{i}" for i, r in enumerate(records[1:7]))
    report = audit.verify_chain(pstore)
    assert report.ok and report.records == 8 and report.head_seq == 8, report.as_dict()


def test_p12_2_the_api_lists_a_batchs_records_one_by_one(pstore: Store, settings: Settings) -> None:
    accounts.add_tenant(pstore, tenant_id="police", name="police")
    accounts.add_user(pstore, username="boss", password=PASSWORD, memberships=[Membership(PROVINCE, "admin")])
    audit.record_batch(pstore, entries("api", 4))
    with TestClient(create_app(settings, pstore)) as client:
        token = client.post("/api/auth/login", json={"username": "boss", "password": PASSWORD}).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        pstore.refresh()
        response = client.get("/api/audit", params={"action": "test.api.2"}, headers=headers)
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        assert [(i["actor"], i["action"], i["target"]) for i in items] == [("api-actor2", "test.api.2", "alerts/api2")]
        assert "batch" not in items[0]
        everything = client.get("/api/audit", params={"size": 500}, headers=headers).json()["items"]
        assert sorted(i["action"] for i in everything if i["action"].startswith("test.api.")) == [
            f"test.api.{i}" for i in range(4)
        ]
        assert client.get("/api/audit/verify", headers=headers).json()["ok"]


def _batch_at_2(store: Store) -> list[dict[str, Any]]:
    audit.record(store, actor="old", action="test.single", tenant="police")
    audit.record_batch(store, entries("t", 4))
    audit.record(store, actor="after", action="test.single", tenant="police")
    assert audit.verify_chain(store).ok
    return listed(store)  # 1 single, 2..5 the batch (2 carries 3..5), 6 single


def test_p12_2_a_record_edited_inside_a_batch_is_detected(pstore: Store) -> None:
    records = _batch_at_2(pstore)
    pstore.put_doc("audit", f"{4:012d}", {**records[3], "actor": "someone-else"})
    found = problems(pstore)
    assert found and found[0][0] == 4, found
    assert any("MAC" in reason for _, reason in found) and any("carries" in reason for _, reason in found), found


def test_p12_2_a_record_removed_from_a_batch_is_detected(pstore: Store) -> None:
    _batch_at_2(pstore)
    pstore.delete_doc("audit", f"{3:012d}")
    assert problems(pstore) == [
        (3, "missing: its batch (record 2) carries it, but it is not stored on its own (deleted, or a write cut short)")
    ]


CONTENT = ("at", "actor", "action", "target", "entry_id")


def test_p12_2_records_reordered_inside_a_batch_are_detected(pstore: Store) -> None:
    """Two records' contents swapped at their places (the places, links and MACs kept), then
    the records the batch carries swapped in its first record."""
    records = _batch_at_2(pstore)
    third, fourth = records[2], records[3]
    pstore.put_doc("audit", f"{3:012d}", {**third, **{k: fourth[k] for k in CONTENT}})
    pstore.put_doc("audit", f"{4:012d}", {**fourth, **{k: third[k] for k in CONTENT}})
    found = problems(pstore)
    assert [seq for seq, _ in found][:2] == [3, 3] and found[-1][0] == 4, found
    pstore.put_doc("audit", f"{3:012d}", third)
    pstore.put_doc("audit", f"{4:012d}", fourth)
    assert audit.verify_chain(pstore).ok
    first = records[1]
    carried = first["batch"]
    pstore.put_doc("audit", f"{2:012d}", {**first, "batch": [carried[1], carried[0], *carried[2:]]})
    found = problems(pstore)
    assert found and found[0][0] == 2 and "do not match their MAC" in found[0][1], found


def test_p12_2_the_records_a_batch_carries_are_sealed(pstore: Store) -> None:
    records = _batch_at_2(pstore)
    first = records[1]
    edited = [{**first["batch"][0], "outcome": "failure"}, *first["batch"][1:]]
    pstore.put_doc("audit", f"{2:012d}", {**first, "batch": edited})
    assert [seq for seq, _ in problems(pstore)][:1] == [2]
    pstore.put_doc("audit", f"{2:012d}", {**first, "batch": first["batch"][1:]})  # one dropped from the carrier
    assert [seq for seq, _ in problems(pstore)][:1] == [2]


def test_p12_2_a_crash_between_a_batchs_two_writes_loses_nothing(pstore: Store, monkeypatch: Any) -> None:
    audit.record(pstore, actor="old", action="test.single", tenant="police")

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("the process died here")

    monkeypatch.setattr(pstore, "write_docs", crash)
    with pytest.raises(StoreUnavailable):
        audit.record_batch(pstore, entries("c", 5))
    monkeypatch.undo()
    # the batch's first record is stored and carries the rest: reported missing, not lost
    assert [seq for seq, _ in problems(pstore)] == [3, 4, 5, 6]
    audit.record(pstore, actor="next", action="test.single", tenant="police")  # the next append restores them
    records = listed(pstore)
    assert [r["seq"] for r in records] == list(range(1, 8))
    assert [r["action"] for r in records] == ["test.single", *[f"test.c.{i}" for i in range(5)], "test.single"]
    assert audit.verify_chain(pstore).ok, problems(pstore)


def test_p12_2_two_processes_appending_batches_at_once_keep_one_chain(pstore: Store, settings: Settings) -> None:
    """Each store object is a process of its own for the trail (its own lock and head): their
    batches race for places and the loser chains after the winner's whole batch."""
    other = pstore.reopened()
    audit.configure(other, settings)
    errors: list[BaseException] = []

    def append(store: Store, name: str) -> None:
        try:
            for n in range(6):
                audit.record_batch(store, entries(f"{name}-{n}", 3), refresh=False)
        except BaseException as exc:  # reported below, with what was appended
            errors.append(exc)

    threads = [
        threading.Thread(target=append, args=(store, f"{label}{i}"))
        for label, store in (("a", pstore), ("b", other))
        for i in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    try:
        assert not errors, errors
        records = listed(pstore)
        ids = collections.Counter(r.get("entry_id") for r in records)
        assert len(ids) == 4 * 6 * 3 and set(ids.values()) == {1}, f"lost or doubled: {ids}"
        assert [r["seq"] for r in records] == list(range(1, 4 * 6 * 3 + 1))
        assert audit.verify_chain(pstore).ok, problems(pstore)
    finally:
        other.close()


def run_records(store: Store, run_id: str) -> collections.Counter[str]:
    records = listed(store)
    return collections.Counter(str(r["action"]) for r in records if r.get("target") == f"{KIND}/{run_id}")


EXPECTED = {
    "playbook.run.start": 1,
    "playbook.run.running": 1,
    "playbook.step.running": STEPS,
    "playbook.step.succeeded": STEPS,
    "playbook.run.succeeded": 1,
}


def _expire_lease(store: Store, run_id: str) -> None:
    doc = get_run(store, run_id)
    expired = {"holder": "dead", "until": format_timestamp(utcnow() - timedelta(seconds=1))}
    store.update_doc(KIND, run_id, {**doc.body, "lease": expired}, version=doc.version)


@pytest.mark.parametrize("crash_at", ["before the batch", "after the batch"])
def test_p12_2_a_crash_around_a_runs_audit_batch_neither_loses_nor_doubles_records(
    pstore: Store, make_runner: Callable[..., Runner], monkeypatch: Any, crash_at: str
) -> None:
    """The runner dies when its drive ends: before appending the run's outbox to the trail, or
    after (the run's write emptying the outbox never came). The next drive appends the outbox
    again, leaving out what the trail has: every change is recorded exactly once."""
    book = playbook(FIVE)
    alert_id = make_alert(pstore)
    run = start_run(pstore, playbook=book, alert_id=alert_id, scope=None, actor="tester")

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("the process died here")

    target = "playbooks.runner.flush_audit" if crash_at == "before the batch" else "playbooks.runner.flush_timelines"
    monkeypatch.setattr(target, crash)
    with pytest.raises(StoreUnavailable):
        make_runner(book).execute(run.id)
    monkeypatch.undo()
    left = get_run(pstore, run.id).body["audit_outbox"]
    assert len(left) == sum(EXPECTED.values()) - 1  # all but the manual start's, written at once
    _expire_lease(pstore, run.id)
    pstore.refresh()
    # the run is final: the sweep for what stopped drives left hands it out
    futures = make_runner(book).dispatch_leftovers()
    assert [future.result(timeout=120) for future in futures] == ["succeeded"]
    assert run_records(pstore, run.id) == EXPECTED, "lost or doubled"
    assert get_run(pstore, run.id).body["audit_outbox"] == []
    assert audit.verify_chain(pstore).ok, problems(pstore)


def test_p12_3_a_runs_audit_records_cost_two_requests_and_no_refresh(
    pstore: Store, make_runner: Callable[..., Runner]
) -> None:
    """Before: 14 records each a create of its own (waiting for the one before), the claim and
    the run's start each refreshed on Elasticsearch."""
    book = playbook(FIVE)
    runner = make_runner(book)
    alert_ids = [make_alert(pstore) for _ in range(3)]
    counts = Requests(pstore)
    made = start_auto_runs(pstore, [(book, alert_id, {"tenant": "police"}) for alert_id in alert_ids])
    assert all(doc is not None for doc in made)
    assert counts.calls[("create_doc", "audit")] == 0 and counts.calls[("write_docs", "audit")] == 0, counts.calls
    counts.calls.clear()
    counts.refreshed.clear()
    assert runner.execute(made[0].id) == "succeeded"  # type: ignore[union-attr]
    audit_writes = counts.calls[("create_doc", "audit")] + counts.calls[("write_docs", "audit")]
    assert audit_writes == 2 and counts.refreshed["audit"] == 0, counts.calls
    assert counts.refreshed[KIND] == 1, counts.refreshed  # the run's end only
    assert run_records(pstore, made[0].id) == EXPECTED  # type: ignore[union-attr]
    assert audit.verify_chain(pstore).ok


def test_p12_3_claims_are_not_refreshed_but_dispatch_still_finds_every_run(
    pstore: Store, make_runner: Callable[..., Runner]
) -> None:
    book = playbook(FIVE.replace("name: five", "name: five\ntrigger: {type: alert, levels: [high]}"))
    runner = make_runner(book)
    runner.trigger_new_alerts()  # the first poll sets the checkpoint
    alert_ids = [make_alert(pstore) for _ in range(6)]
    pstore.refresh()
    counts = Requests(pstore)
    futures = runner.poll_once()
    for future in futures:
        future.result(timeout=120)
    deadline = utcnow() + timedelta(seconds=120)
    while utcnow() < deadline:
        pstore.refresh()
        runs = pstore.list_docs(KIND, filters={"status": ["pending", "running"]}, size=100).items
        if not runs:
            break
        for future in runner.dispatch():
            future.result(timeout=120)
    done = pstore.list_docs(KIND, size=100).items
    assert sorted(d.body["alert_id"] for d in done) == sorted(alert_ids)
    statuses = collections.Counter(str(d.body["status"]) for d in done)
    assert statuses == {"succeeded": 6}, statuses
    # the runs' creation (one bulk write) and each run's end; before, each claim too
    assert counts.refreshed[KIND] == 1 + 6, counts.refreshed
    assert audit.verify_chain(pstore).ok


def test_p12_3_the_asset_inventory_is_parsed_once_until_a_file_changes(tmp_path: Path, monkeypatch: Any) -> None:
    """Before: every ``enrich_assets`` step read and validated the whole inventory again — with
    200 hosts most of a run's time (session 22's profile)."""
    inventory = tmp_path / "assets.yml"
    inventory.write_text("assets:\n  - {name: web01, ips: [10.0.0.1], agency: police}\n", encoding="utf-8")
    reads = collections.Counter[str]()
    real = read_config_file

    def counted(path: Path, **kwargs: Any) -> Any:
        reads[str(path)] += 1
        return real(path, **kwargs)

    monkeypatch.setattr(assets, "read_config_file", counted)
    first = assets.load_inventory([inventory])
    assert assets.load_inventory([inventory]) is first and reads[str(inventory)] == 1
    inventory.write_text(
        "assets:\n  - {name: web01, ips: [10.0.0.1], agency: police}\n"
        "  - {name: db01, ips: [10.0.0.2], agency: police}\n",
        encoding="utf-8",
    )
    assert [a.name for a in assets.load_inventory([inventory]).assets] == ["web01", "db01"], "a changed file is read"
    inventory.write_text("assets:\n  - {name: 'bad name!', agency: police}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="bad name"):  # a broken file is still reported, every time
        assets.load_inventory([inventory])
    with pytest.raises(ConfigError, match="bad name"):
        assets.load_inventory([inventory])


def test_p12_3_dispatch_lists_runs_again_only_when_the_kept_ones_are_used_up(
    pstore: Store, make_runner: Callable[..., Runner], settings: Settings
) -> None:
    """Before: every hand-out (each time a run finished) listed the pending runs again — with
    10,000 pending, a search of seconds on a loaded SQLite store for each run started."""
    book = playbook(FIVE)
    two = settings.model_copy(update={"playbooks": settings.playbooks.model_copy(update={"max_concurrent_runs": 2})})
    runner = make_runner(book, settings=two)
    runs = [start_run(pstore, playbook=book, alert_id=make_alert(pstore), scope=None, actor="t").id for _ in range(8)]
    pstore.refresh()
    counts = Requests(pstore)
    listings = []
    for _ in range(4):
        before = counts.calls[("list_docs", KIND)]
        futures = runner.dispatch()
        listings.append(counts.calls[("list_docs", KIND)] - before)
        assert [future.result(timeout=120) for future in futures] == ["succeeded", "succeeded"], listings
    assert listings[:3] == [1, 0, 0], f"listed again while kept runs were left: {listings}"
    statuses = collections.Counter(str(get_run(pstore, run_id).body["status"]) for run_id in runs)
    assert statuses == {"succeeded": 8}, statuses
