"""Item 4 of the scheduler brief: ``/api/jobs`` (province-wide admins only, in the policy table,
"run now" audited) over real HTTP handling on both stores, and ``soc jobs list|runs|run``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from soc_api.main import create_app
from soc_api.policy import POLICY
from soc_api.services import accounts
from soc_core.auth import PROVINCE, Membership
from soc_core.config import Settings
from soc_core.store import SqliteStore, Store
from tests.support.cli import soc

PASSWORD = "a-very-long-password"


@pytest.fixture
def client(store: Store, tmp_path: Path) -> TestClient:
    settings = Settings(data_dir=tmp_path, scheduler={"silence": {"every_minutes": 10}})
    accounts.add_tenant(store, tenant_id="police", name="Police")
    accounts.add_user(store, username="hq", password=PASSWORD, memberships=[Membership(PROVINCE, "admin")])
    accounts.add_user(store, username="police_admin", password=PASSWORD, memberships=[Membership("police", "admin")])
    accounts.add_user(store, username="hq_manager", password=PASSWORD, memberships=[Membership(PROVINCE, "manager")])
    return TestClient(create_app(settings, store))


def auth(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_s13s_jobs_api_lists_runs_and_records_a_manual_run(client: TestClient, store: Store) -> None:
    hq = auth(client, "hq")
    listed = client.get("/api/jobs", headers=hq)
    assert listed.status_code == 200, listed.text
    jobs = {job["id"]: job for job in listed.json()["items"]}
    assert set(jobs) == {"retention", "sensor-silence", "digest", "audit-anchor", "weekly-report", "throttle-purge"}
    assert jobs["sensor-silence"]["schedule"] == "every 10 min" and jobs["sensor-silence"]["last_run"] is None

    ran = client.post("/api/jobs/sensor-silence/run", headers=hq)
    assert ran.status_code == 200, ran.text
    run = ran.json()
    assert run["status"] == "succeeded" and run["kind"] == "manual" and run["actor"] == "hq"
    assert run["output"]["sensors_checked"] == 0 and run["duration_seconds"] is not None

    history = client.get("/api/jobs/sensor-silence/runs", headers=hq).json()["items"]
    assert [item["id"] for item in history] == [run["id"]]
    again = client.get("/api/jobs", headers=hq).json()["items"]
    assert next(job for job in again if job["id"] == "sensor-silence")["last_run"]["id"] == run["id"]
    records = [doc.body for doc in store.list_docs("audit", size=1000).items if doc.body.get("action") == "job.run"]
    assert len(records) == 1 and records[0]["actor"] == "hq" and records[0]["target"] == "jobs/sensor-silence"


def test_s13s_jobs_api_is_for_province_admins_only(client: TestClient) -> None:
    assert {key for key in POLICY if key[1].startswith("/api/jobs")} == {
        ("GET", "/api/jobs"),
        ("GET", "/api/jobs/{job_id}/runs"),
        ("POST", "/api/jobs/{job_id}/run"),
    }
    for username in ("police_admin", "hq_manager"):
        headers = auth(client, username)
        for method, path in (("GET", "/api/jobs"), ("GET", "/api/jobs/digest/runs"), ("POST", "/api/jobs/digest/run")):
            answer = client.request(method, path, headers=headers)
            assert answer.status_code == 403, (username, method, path, answer.text)
    assert client.get("/api/jobs").status_code == 401


def test_s13s_jobs_api_names_an_unknown_job(client: TestClient) -> None:
    hq = auth(client, "hq")
    missing = client.post("/api/jobs/no-such-job/run", headers=hq)
    assert missing.status_code == 404 and "no job 'no-such-job'" in missing.text and "retention" in missing.text
    assert client.get("/api/jobs/Bad..Id/runs", headers=hq).status_code == 422


def test_s13s_cli_lists_runs_and_runs_a_job(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var")  # what `soc` finds from this directory
    store = SqliteStore(settings.sqlite_path)
    store.setup()
    store.close()
    done = soc("jobs", "run", "throttle-purge", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["status"] == "succeeded" and run["kind"] == "manual" and run["output"] == {"removed": 0}
    listed = soc("jobs", "list", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    jobs = {job["id"]: job for job in json.loads(listed.stdout)}
    assert jobs["throttle-purge"]["last_run"]["id"] == run["id"]
    runs = soc("jobs", "runs", "throttle-purge", cwd=tmp_path)
    assert runs.returncode == 0 and "manual" in runs.stdout and "succeeded" in runs.stdout
    unknown = soc("jobs", "run", "nope", cwd=tmp_path)
    assert unknown.returncode == 2 and "no job 'nope'" in " ".join(unknown.stderr.split())
