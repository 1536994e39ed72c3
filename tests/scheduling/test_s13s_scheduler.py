"""Item 1 of the scheduler brief: APScheduler 3 with a persistent job store in the configured
store (SQLite and Elasticsearch alike), kept as JSON and loaded only for registered functions;
started by ``soc up`` (all, engine) unless ``scheduler.enabled`` is false, and alone by
``soc up --role scheduler``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from scheduling.jobstore import KIND, StoreJobStore
from scheduling.registry import JobRegistry, RunContext
from scheduling.scheduler import JobScheduler
from soc_core.config import JobTrigger, Settings
from soc_core.store import SqliteStore, Store
from tests.scheduling.support import SchedulerProcess, write_config
from tests.support.waiting import wait_for


def hourly(store: Store, settings: Settings, context: RunContext) -> dict[str, Any]:
    return {}


def daily(store: Store, settings: Settings, context: RunContext) -> dict[str, Any]:
    return {}


def registry_of(**triggers: JobTrigger) -> JobRegistry:
    registry = JobRegistry()
    for job_id, trigger in triggers.items():
        registry.add(job_id, trigger, hourly if job_id == "hourly" else daily, job_id)
    return registry


def started(store: Store, settings: Settings, registry: JobRegistry) -> dict[str, dict[str, Any]]:
    """Start and stop a scheduler; the job documents it left."""
    scheduler = JobScheduler(store, settings, registry)
    scheduler.start()
    scheduler.shutdown()
    return {doc.id: doc.body for doc in store.list_docs(KIND).items}


def test_s13s_jobs_persist_in_the_store_and_survive_a_restart(store: Store, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    registry = registry_of(hourly=JobTrigger(every_minutes=60), daily=JobTrigger(cron="0 7 * * *"))
    first = started(store, settings, registry)
    assert set(first) == {"hourly", "daily"}
    assert first["daily"]["schedule"] == "cron 0 7 * * *" and first["daily"]["timezone"] == "Asia/Ho_Chi_Minh"
    assert first["hourly"]["function"] == f"{__name__}:hourly"
    assert "pickle" not in str(first) and first["hourly"]["next_run_time"]
    # a restart keeps every unchanged job as it was, next run time included
    reopened = store.reopened()
    try:
        assert started(reopened, settings, registry) == first
        jobs = StoreJobStore(reopened, registry, settings.scheduler.timezone).get_all_jobs()
        assert {job.id: job.next_run_time for job in jobs} == {
            job_id: datetime.fromisoformat(body["next_run_time"]) for job_id, body in first.items()
        }
    finally:
        reopened.close()
    # a changed schedule is written anew; a job left out of the configuration is removed
    changed = started(store, settings, registry_of(hourly=JobTrigger(every_minutes=30)))
    assert set(changed) == {"hourly"} and changed["hourly"]["schedule"] == "every 30 min"
    assert changed["hourly"]["next_run_time"] != first["hourly"]["next_run_time"]


def test_s13s_a_stored_job_naming_another_function_is_never_loaded(store: Store, tmp_path: Path) -> None:
    """Someone who can write the store cannot make the scheduler call a function of their choosing."""
    settings = Settings(data_dir=tmp_path)
    registry = registry_of(hourly=JobTrigger(every_minutes=60))
    body = started(store, settings, registry)["hourly"]
    store.put_doc(KIND, "hourly", {**body, "function": "os:system"})
    assert StoreJobStore(store, registry, settings.scheduler.timezone).get_all_jobs() == []


def test_s13s_a_job_trigger_needs_one_schedule() -> None:
    with pytest.raises(ValueError, match=r"cron \(a crontab line\) or every_minutes, not both"):
        Settings(scheduler={"retention": {"cron": "0 1 * * *", "every_minutes": 5}})
    with pytest.raises(ValueError, match="cron '61 \\* \\* \\* \\*'"):
        Settings(scheduler={"digest": {"cron": "61 * * * *"}})
    assert Settings(scheduler={"retention": {"enabled": False}}).scheduler.retention.enabled is False
    assert Settings(scheduler={"retention": {"every_minutes": 5}}).scheduler.retention.cron is None


# --- roles, as real processes --------------------------------------------------------------------


def role_parts(tmp_path: Path, role: str, scheduler: dict[str, Any]) -> list[str]:
    store = SqliteStore(tmp_path / "canhgac.db")
    store.setup()
    store.close()
    config = write_config(
        tmp_path / f"{role}.yml",
        {"data_dir": str(tmp_path), "log": {"json_format": True}, "scheduler": scheduler},
    )
    process = SchedulerProcess(config, tmp_path / f"{role}.log", role=role)
    try:

        def started_record() -> list[dict[str, Any]]:
            assert process.process.poll() is None, process.text()[-3000:]
            return [r for r in process.records() if r["message"] == "started"]

        (record,) = wait_for(started_record, f"the {role} process to start", stall=120)
    finally:
        assert process.stop() == 0, process.text()[-3000:]
    parts: list[str] = record["parts"]
    return parts


@pytest.mark.slow  # two `soc up` processes
def test_s13s_the_scheduler_role_runs_alone_and_engine_can_leave_it_out(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert role_parts(tmp_path / "a", "scheduler", {}) == ["scheduler"]
    assert role_parts(tmp_path / "b", "engine", {"enabled": False}) == ["engine", "playbooks"]
    store = SqliteStore(tmp_path / "a" / "canhgac.db")
    try:  # the scheduler process wrote its jobs to the store
        assert {doc.id for doc in store.list_docs(KIND).items} >= {"retention", "sensor-silence", "digest"}
    finally:
        store.close()
