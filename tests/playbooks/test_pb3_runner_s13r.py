"""Session 13, runner throughput (issue 12's benchmark), on both stores where the store matters:

1. closing a SQLite store while other threads still write (``soc up`` shutting down with a run
   writing its last step) never crashes the process;
2. a run costs a bounded number of store writes: one run-document write per step transition,
   the timeline entries of a drive in one update per alert/case (kept in the run's outbox until
   then, so a crash loses none and a second copy adds none), no Elasticsearch refresh for a
   step's progress;
3. the runner's threads appending to the audit trail at once never race each other (a thread
   could lose the head 50 times running: "playbook run stopped by an error").
"""

from __future__ import annotations

import collections
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from playbooks.records import KIND, get_run
from playbooks.runner import Runner
from playbooks.service import start_run
from soc_core.errors import Conflict
from soc_core.events import format_timestamp, utcnow
from soc_core.store import Store
from tests.playbooks.conftest import make_alert, playbook
from workflow import audit

CLOSE_WHILE_WRITING = """
import sys, threading, time
from pathlib import Path
from soc_core.store import SqliteStore
from soc_core.errors import SocError

store = SqliteStore(Path(sys.argv[1]))
store.setup()
store.create_doc("cases", {"tenant": "t", "n": 0, "pad": "x" * 5000}, doc_id="c")
stop = threading.Event()
writes = [0]

def write() -> None:
    while not stop.is_set():
        try:
            doc = store.get_doc("cases", "c")
            store.update_doc("cases", "c", {**doc.body, "n": doc.body["n"] + 1}, version=doc.version)
            writes[0] += 1
        except SocError:
            pass

threads = [threading.Thread(target=write) for _ in range(3)]
for thread in threads:
    thread.start()
closes, end = 0, time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    time.sleep(0.001)
    store.close()
    closes += 1
stop.set()
for thread in threads:
    thread.join()
print(closes, writes[0], store.get_doc("cases", "c").body["n"])
"""


def test_s13r_1_closing_a_sqlite_store_while_threads_write_does_not_crash(tmp_path: Path) -> None:
    """Before: ``close()`` closed connections other threads were inside, freeing them under
    those threads — the process died with SIGSEGV (exit -11) within a second, every time."""
    done = subprocess.run(
        [sys.executable, "-c", CLOSE_WHILE_WRITING, str(tmp_path / "close.db"), "2"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"the process died ({done.returncode}) closing the store: {done.stderr[-2000:]}"
    closes, writes, stored = (int(part) for part in done.stdout.split())
    assert closes > 10 and writes > 10, done.stdout  # both went on: closing and writing
    assert stored == writes, f"{writes} writes succeeded but the document counts {stored}: some were lost"


class Counting:
    """Counts a store's document reads and writes by (method, kind), and the writes that asked
    for a refresh, by wrapping the instance's methods."""

    def __init__(self, store: Store) -> None:
        self.calls: collections.Counter[tuple[str, str]] = collections.Counter()
        self.refreshed: collections.Counter[str] = collections.Counter()
        for name in ("get_doc", "create_doc", "update_doc", "put_doc", "write_docs", "list_docs"):
            setattr(store, name, self._wrap(name, getattr(store, name)))

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def counted(kind: str, *args: Any, **kwargs: Any) -> Any:
            self.calls[(name, kind)] += 1
            if name != "get_doc" and name != "list_docs" and kwargs.get("refresh", True):
                self.refreshed[kind] += 1
            return method(kind, *args, **kwargs)

        return counted

    def writes(self, kind: str) -> int:
        return sum(n for (name, k), n in self.calls.items() if k == kind and name not in ("get_doc", "list_docs"))


STEPS = 5
FIVE = "name: five\nsteps:\n" + "".join(
    f'  - id: s{i}\n    action: test.echo\n    with: {{key: "{{{{ run.alert_id }}}}-{i}", value: {i}}}\n'
    for i in range(STEPS)
)


def test_s13r_2_a_run_costs_one_run_write_per_step_transition(
    pstore: Store, make_runner: Callable[..., Runner]
) -> None:
    """Before: 14 run-document writes and 33 reads of it for 5 steps (each field change its own
    read-modify-write), every write refreshed on Elasticsearch, and 2-3 alert updates per change
    for the timeline."""
    book = playbook(FIVE)
    runner = make_runner(book)
    alert_id = make_alert(pstore)
    run = start_run(pstore, playbook=book, alert_id=alert_id, scope=None, actor="tester")
    audited_before = len(pstore.list_docs("audit", size=1000).items)
    counts = Counting(pstore)
    assert runner.execute(run.id) == "succeeded"
    # claim (and running) + step 1 running + 4 × (step i done + step i+1 running) + last done
    # with the run's end + the lease given back with the outbox emptied
    assert counts.writes(KIND) == STEPS + 3, counts.calls
    assert counts.calls[("get_doc", KIND)] <= 1, counts.calls  # the claim; then it keeps what it wrote
    assert counts.refreshed[KIND] == 1, counts.refreshed  # only the run's end (the claim: session 22)
    assert counts.writes("alerts") == 1, counts.calls  # every timeline entry of the run at once
    assert counts.refreshed["alerts"] == 0 and counts.refreshed["audit"] <= 2, counts.refreshed
    # the record is whole all the same: an audit record per change, searchable when the run ends
    pstore.refresh()
    records = [d.body for d in pstore.list_docs("audit", sort="seq", descending=False, size=1000).items]
    assert len(records) == audited_before + 2 * STEPS + 2, "an audit record per change, none lost or doubled"
    assert audit.verify_chain(pstore).ok
    timeline = [e["text"] for e in pstore.get_doc("alerts", alert_id).body["timeline"]]
    assert timeline == [
        "five: started",
        "five: running",
        *[
            text
            for i in range(STEPS)
            for text in (f"five: step s{i} running (attempt 1)", f"five: step s{i} succeeded (no change)")
        ],
        "five: run succeeded",
    ]
    body = get_run(pstore, run.id).body
    assert body["timeline_outbox"] == [] and body["lease"] is None
    assert [s["output"]["value"] for s in body["steps"]] == list(range(STEPS))


def test_s13r_2_an_outbox_left_by_a_dead_runner_reaches_the_timeline_once(
    pstore: Store, make_runner: Callable[..., Runner]
) -> None:
    """A runner died after writing a change (its entry in the run's outbox) and after copying
    part of the outbox to the alert: the next runner copies what is missing, once."""
    book = playbook(FIVE)
    alert_id = make_alert(pstore)
    run = start_run(pstore, playbook=book, alert_id=alert_id, scope=None, actor="tester")
    now = format_timestamp(utcnow())
    left = [
        {"id": f"left-{i}", "at": now, "actor": "playbook:five", "kind": "playbook", "text": f"left {i}",
         "run_id": run.id, "targets": [["alerts", alert_id]]}
        for i in range(3)
    ]  # fmt: skip
    alert = pstore.get_doc("alerts", alert_id)
    copied = {k: v for k, v in left[0].items() if k != "targets"}  # the dead runner got this far
    pstore.update_doc(
        "alerts", alert_id, {**alert.body, "timeline": [*alert.body["timeline"], copied]}, version=alert.version
    )
    expired = {"holder": "dead", "until": format_timestamp(utcnow() - timedelta(seconds=1))}
    doc = get_run(pstore, run.id)
    pstore.update_doc(KIND, run.id, {**doc.body, "timeline_outbox": left, "lease": expired}, version=doc.version)
    assert make_runner(book).execute(run.id) == "succeeded"
    texts = [e["text"] for e in pstore.get_doc("alerts", alert_id).body["timeline"]]
    assert [texts.count(f"left {i}") for i in range(3)] == [1, 1, 1], f"lost or doubled: {texts}"
    assert texts[-1] == "five: run succeeded"
    assert get_run(pstore, run.id).body["timeline_outbox"] == []


def test_s13r_3_threads_appending_to_the_audit_trail_never_race_each_other(pstore: Store) -> None:
    """Before: each thread read the head and created the next record; under load a thread lost
    the race again and again and gave up after 50 tries (a SocError: "playbook run stopped by an
    error" in the 500-alert benchmark). Now one process appends one record at a time."""
    conflicts = [0]
    create = pstore.create_doc

    def slow_create(kind: str, *args: Any, **kwargs: Any) -> Any:
        if kind == "audit":
            time.sleep(0.002)  # widen the window between reading the head and writing after it
        try:
            return create(kind, *args, **kwargs)
        except Conflict:
            conflicts[0] += 1
            raise

    pstore.create_doc = slow_create  # type: ignore[method-assign]
    threads, each = 6, 15
    failures: list[BaseException] = []

    def append(n: int) -> None:
        try:
            for i in range(each):
                audit.record(pstore, actor=f"t{n}", action="test.append", target=f"x/{i}")
        except Exception as exc:  # reported below with every thread's outcome
            failures.append(exc)

    workers = [threading.Thread(target=append, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == [], failures
    assert conflicts[0] == 0, f"{conflicts[0]} appends lost the head to a thread of the same process"
    pstore.refresh()
    report = audit.verify_chain(pstore)
    assert report.ok and report.records == threads * each, report.as_dict()


@pytest.mark.parametrize("refresh", [True, False])
def test_s13r_2_audit_records_written_without_refresh_still_chain(pstore: Store, refresh: bool) -> None:
    """Records appended without a refresh (the runner's step records) are followed by id: a
    writer with only the search to go by (another process: no head of its own) chains onto the
    last of them, not onto the last searchable one."""
    for i in range(5):
        audit.record(pstore, actor="runner", action="step", target=f"r/{i}", refresh=refresh)
    audit._trail(pstore).head = None  # as in another process
    assert audit.record(pstore, actor="api", action="person", target="x/1") == 6
    pstore.refresh()
    report = audit.verify_chain(pstore)
    assert report.ok and report.records == 6, report.as_dict()


def test_s13r_4_threads_that_ended_leave_no_sqlite_connection_open(sqlite_store: Store) -> None:
    """Every playbook step runs its action in a thread of its own; each opened a connection that
    stayed open, so a 10,000-alert run ran out of file descriptors ("unable to open database
    file") after a few thousand runs."""

    def open_files() -> int:
        return len(list(Path("/proc/self/fd").iterdir()))

    sqlite_store.create_doc("cases", {"tenant": "t", "n": 0}, doc_id="c")
    before = open_files()
    for _ in range(300):
        thread = threading.Thread(target=sqlite_store.get_doc, args=("cases", "c"))
        thread.start()
        thread.join()
    grown = open_files() - before
    assert grown < 20, f"{grown} files left open by 300 threads that each read once and ended"
