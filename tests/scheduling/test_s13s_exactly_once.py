"""Item 2 of the scheduler brief: every job run is recorded once in ``job_runs``, claimed before
it runs, so a second scheduler firing the same run skips it; a job due during downtime runs
once after a restart (coalesced); a run past the misfire grace time is recorded as missed.

The process tests run ``soc up --role scheduler`` for real, with the digest every few seconds
as the job: each run e-mails one message to a local relay (aiosmtpd), so a doubled run shows
as an extra e-mail, not only as an extra record.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scheduling import runs
from scheduling.jobstore import KIND as JOBS_KIND
from scheduling.registry import JobRegistry, RunContext
from scheduling.scheduler import JobScheduler
from soc_core.config import JobTrigger, Settings
from soc_core.errors import StoreUnavailable
from soc_core.store import ElasticsearchStore, SqliteStore, Store
from tests.conftest import unique_prefix
from tests.scheduling.support import Inbox, SchedulerProcess, relay, write_config
from tests.support.waiting import wait_for

INTERVAL_SECONDS = 3.0
CALLS: list[str] = []
CALLS_LOCK = threading.Lock()


def count_call(store: Store, settings: Settings, context: RunContext) -> dict[str, Any]:
    with CALLS_LOCK:
        CALLS.append(context.run_id)
    return {"calls": len(CALLS)}


def registry_of(every_minutes: float = 60.0) -> JobRegistry:
    registry = JobRegistry()
    registry.add("counter", JobTrigger(every_minutes=every_minutes), count_call, "counts its calls")
    return registry


@pytest.fixture(autouse=True)
def no_calls() -> Iterator[None]:
    CALLS.clear()
    yield
    CALLS.clear()


def test_s13s_a_run_is_claimed_once_by_racing_schedulers(store: Store, tmp_path: Path) -> None:
    """Eight threads, each with its own store connection, fire the same (job, fire time) at once:
    one runs it, the others get a Conflict on the run record and skip."""
    settings = Settings(data_dir=tmp_path)
    registry = registry_of()
    when = datetime.now(UTC).replace(microsecond=123456)
    opened = [store.reopened() for _ in range(8)]
    schedulers = [JobScheduler(each, settings, registry) for each in opened]
    start = threading.Barrier(len(schedulers))

    def fire(scheduler: JobScheduler) -> None:
        start.wait()
        scheduler.fire("counter", [when])

    threads = [threading.Thread(target=fire, args=(scheduler,)) for scheduler in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for each in opened:
        each.close()
    records = runs.list_runs(store, "counter").items
    assert len(CALLS) == 1, f"the job ran {len(CALLS)} times for one fire time (expected once)"
    assert [doc.id for doc in records] == [runs.run_id("counter", when)], records
    assert records[0].body["status"] == "succeeded" and records[0].body["output"] == {"calls": 1}


def test_s13s_a_run_past_the_grace_time_is_recorded_as_missed(store: Store, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, scheduler={"misfire_grace_minutes": 1})
    scheduler = JobScheduler(store, settings, registry_of())
    late = datetime.now(UTC) - timedelta(minutes=5)
    scheduler.fire("counter", [late])
    scheduler.fire("counter", [late])  # the same missed run again: still one record
    (record,) = runs.list_runs(store, "counter").items
    assert not CALLS and record.body["status"] == "missed"
    assert record.body["scheduled_for"] == late.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_s13s_a_failing_job_is_recorded_with_its_error(store: Store, tmp_path: Path) -> None:
    def broken(store: Store, settings: Settings, context: RunContext) -> dict[str, Any]:
        raise ValueError("disk on fire")

    registry = JobRegistry()
    registry.add("broken", JobTrigger(every_minutes=1), broken, "fails")
    done = runs.execute(store, Settings(data_dir=tmp_path), registry.get("broken"), scheduled_for=datetime.now(UTC))
    assert done is not None and done["status"] == "failed" and done["error"] == "ValueError: disk on fire"
    stored = store.get_doc(runs.KIND, done["id"]).body
    assert stored["status"] == "failed" and stored["ended_at"] and stored["pid"] > 0 and stored["host"]


def test_s13s_old_run_records_are_purged(store: Store) -> None:
    old = (datetime.now(UTC) - timedelta(days=100)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    new = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for index in range(3):
        store.create_doc(runs.KIND, {"job": "x", "created_at": old}, doc_id=f"old{index}")
    store.create_doc(runs.KIND, {"job": "x", "created_at": new}, doc_id="new")
    assert runs.purge_runs(store, days=90) == 3
    assert [doc.id for doc in store.list_docs(runs.KIND).items] == ["new"]


# --- real processes ------------------------------------------------------------------------


def digest_settings(tmp_path: Path, smtp_port: int, store: dict[str, Any]) -> dict[str, Any]:
    return {
        "data_dir": str(tmp_path),
        "store": store,
        "log": {"json_format": True},
        "playbooks": {"enabled": False, "smtp": {"host": "127.0.0.1", "port": smtp_port, "starttls": False}},
        "detection": {"enabled": False},
        "scheduler": {
            "digest": {"every_minutes": INTERVAL_SECONDS / 60, "recipients": [{"address": "soc@tinh.gov.vn"}]},
            "retention": {"enabled": False},
            "silence": {"enabled": False},
            "throttle_purge": {"enabled": False},
        },
    }


def digest_runs(store: Store) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = runs.list_runs(store, "digest", size=500, cursor=cursor)
        found += [dict(doc.body, id=doc.id) for doc in page.items]
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def finished(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [record for record in records if record["status"] != "running"]


def check_one_mail_per_run(store: Store, inbox: Inbox) -> list[dict[str, Any]]:
    records = digest_runs(store)
    succeeded = [record for record in records if record["status"] == "succeeded"]
    assert len(succeeded) == len(finished(records)), f"runs that did not succeed: {records}"
    assert inbox.count() == len(succeeded), f"{inbox.count()} digest e-mails for {len(succeeded)} recorded runs: " + (
        "a run was doubled" if inbox.count() > len(succeeded) else "a run's e-mail was lost"
    )
    fire_times = [record["scheduled_for"] for record in records]
    assert len(set(fire_times)) == len(fire_times), f"a fire time recorded twice: {sorted(fire_times)}"
    return records


def seed_due_digest(store: Store, due: datetime) -> None:
    """The digest's job document as a scheduler writes it, due at ``due``: both schedulers keep
    it (the schedule is unchanged) and fire that run."""
    store.create_doc(
        JOBS_KIND,
        {
            "job": "digest",
            "function": "scheduling.jobs.digest:run",
            "schedule": f"every {INTERVAL_SECONDS / 60:g} min",
            "timezone": "Asia/Ho_Chi_Minh",
            "interval_start": due.isoformat(),
            "next_run_time": due.isoformat(),
            "misfire_grace_time": None,
            "coalesce": True,
            "max_instances": 1,
            "created_at": due.isoformat(),
        },
        doc_id="digest",
    )


def two_schedulers_run_each_fire_time_once(store: Store, store_settings: dict[str, Any], tmp_path: Path) -> None:
    due = datetime.now(UTC) + timedelta(seconds=2)
    seed_due_digest(store, due)
    with relay() as (inbox, port):
        config = write_config(tmp_path / "soc.yml", digest_settings(tmp_path, port, store_settings))
        first = SchedulerProcess(config, tmp_path / "first.log")
        second = SchedulerProcess(config, tmp_path / "second.log")
        try:
            wait_for(lambda: first.started() and second.started(), "both schedulers to start", stall=120)
            wait_for(
                lambda: len(finished(digest_runs(store))),
                "six finished digest runs",
                until=lambda count: count >= 6,
                stall=90,
                ignore=(StoreUnavailable,),  # Elasticsearch: the runs index is being created
            )
        finally:
            codes = [first.stop(), second.stop()]
        assert codes == [0, 0], (codes, first.text()[-2000:], second.text()[-2000:])
        records = check_one_mail_per_run(store, inbox)
    # the seeded run was due when they started: it ran once, for its latest fire time (coalesced)
    assert min(record["scheduled_for"] for record in records) >= due.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # both woke for the same fire times; the one that lost each claim skipped it
    skipped = [
        record["scheduled_for"]
        for process in (first, second)
        for record in process.records()
        if record["message"] == "job run claimed by another scheduler"
    ]
    assert skipped, "the two schedulers never fired the same run: the race was not exercised"
    fired = {record["scheduled_for"]: record for record in records}
    assert all(when in fired for when in skipped), (skipped, sorted(fired))


@pytest.mark.slow  # two scheduler processes, several fire times
def test_s13s_two_scheduler_processes_on_one_sqlite_file_run_each_fire_time_once(tmp_path: Path) -> None:
    path = tmp_path / "canhgac.db"
    store = SqliteStore(path)
    store.setup()
    try:
        two_schedulers_run_each_fire_time_once(store, {"backend": "sqlite", "sqlite_path": str(path)}, tmp_path)
    finally:
        store.close()


@pytest.mark.slow
def test_s13s_two_scheduler_processes_on_elasticsearch_run_each_fire_time_once(
    elasticsearch_url: str, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    store = ElasticsearchStore(elasticsearch_url, prefix=prefix, request_timeout=60)
    store.setup()
    try:
        es = {"url": elasticsearch_url, "index_prefix": prefix, "request_timeout": 60}
        two_schedulers_run_each_fire_time_once(store, {"backend": "elasticsearch", "elasticsearch": es}, tmp_path)
    finally:
        for name in store.client.indices.get(index=f"{prefix}-*", allow_no_indices=True):
            store.client.indices.delete(index=name)
        for template in store.client.indices.get_index_template(name=f"{prefix}-*")["index_templates"]:
            store.client.indices.delete_index_template(name=template["name"])
        store.close()


@pytest.mark.slow
def test_s13s_a_job_due_during_downtime_runs_once_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "canhgac.db"
    store = SqliteStore(path)
    store.setup()
    try:
        with relay() as (inbox, port):
            config = write_config(
                tmp_path / "soc.yml", digest_settings(tmp_path, port, {"backend": "sqlite", "sqlite_path": str(path)})
            )
            before = SchedulerProcess(config, tmp_path / "before.log")
            try:
                wait_for(before.started, "the scheduler to start", stall=120)
                wait_for(lambda: finished(digest_runs(store)), "a first digest run", stall=60)
            finally:
                assert before.stop() == 0, before.text()[-2000:]
            next_due = datetime.fromisoformat(store.get_doc(JOBS_KIND, "digest").body["next_run_time"]).astimezone(UTC)
            # down until at least three fire times have passed
            down_until = next_due + timedelta(seconds=2 * INTERVAL_SECONDS + 0.5)
            wait_for(lambda: datetime.now(UTC), "three fire times to pass", until=lambda now: now > down_until)
            assert len(digest_runs(store)) == len(finished(digest_runs(store)))
            restarted = datetime.now(UTC)
            after = SchedulerProcess(config, tmp_path / "after.log")
            try:
                wait_for(after.started, "the scheduler to start again", stall=120)

                def runs_after_restart() -> list[dict[str, Any]]:
                    return [r for r in finished(digest_runs(store)) if r["started_at"] >= restarted.isoformat()[:19]]

                # the catch-up run, then a regular one: the catch-up is over
                wait_for(runs_after_restart, "two runs after the restart", until=lambda found: len(found) >= 2)
            finally:
                assert after.stop() == 0, after.text()[-2000:]
            records = check_one_mail_per_run(store, inbox)
    finally:
        store.close()
    stamp = "%Y-%m-%dT%H:%M:%S.%fZ"
    later = sorted(
        (r for r in records if r["scheduled_for"] >= next_due.strftime(stamp)), key=lambda r: r["scheduled_for"]
    )
    catch_up, regular = later[0], later[1]
    # the fire times missed while down (from next_due on) ran once, as one coalesced run after the restart
    assert catch_up["pid"] == after.process.pid and catch_up["started_at"] >= restarted.isoformat()[:19], catch_up
    assert catch_up["scheduled_for"] >= (down_until - timedelta(seconds=INTERVAL_SECONDS)).strftime(stamp), (
        f"the catch-up run is for {catch_up['scheduled_for']}, before the last fire time missed while down"
    )
    # on the grid of the schedule kept from before the restart (a job written anew would start a new grid)
    offset = datetime.fromisoformat(catch_up["scheduled_for"]) - next_due
    assert offset % timedelta(seconds=INTERVAL_SECONDS) == timedelta(0), f"the schedule was restarted: {offset}"
    gap = datetime.fromisoformat(regular["scheduled_for"]) - datetime.fromisoformat(catch_up["scheduled_for"])
    assert gap == timedelta(seconds=INTERVAL_SECONDS), f"after the catch-up the schedule went on by {gap}"
