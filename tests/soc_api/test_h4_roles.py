"""H4: ``soc up --role api`` and ``--role engine`` as real processes on one SQLite store: events
ingested through the API process become an alert in the engine process, which the API process
serves; the API process runs no engine or scheduler thread, the engine process no HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from detections.loader import shipped_rules_dir
from soc_api.services import accounts
from soc_core.auth import PROVINCE, Membership
from soc_core.devnode import free_port
from soc_core.events import format_timestamp, utcnow
from soc_core.store import SqliteStore
from tests.support.waiting import wait_for

SOC = Path(sys.executable).with_name("soc")
PASSWORD = "a-very-long-password"
SAMPLES = shipped_rules_dir() / "linux" / "samples" / "74d45926-2b16-4397-acdf-3728c2a10647" / "match.jsonl"
STACK_FRAME = re.compile(r'File "([^"]+)", line \d+ in (\w+)')


class Soc:
    """``soc --config … up --role …`` as a child process; stderr (the JSON log) to a file."""

    def __init__(self, config: Path, role: str, log: Path) -> None:
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOC_")}
        with open(log, "wb") as err:
            self.process = subprocess.Popen(
                [str(SOC), "--config", str(config), "up", "--role", role],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def records(self) -> list[dict[str, Any]]:
        lines = (line for line in self.text().splitlines() if line.startswith("{"))
        return [json.loads(line) for line in lines]

    def stack_dump(self) -> set[tuple[str, str]]:
        """(file path, function) of every frame of every thread, from faulthandler on SIGUSR1."""
        before = self.text().count("most recent call first")
        self.process.send_signal(signal.SIGUSR1)
        seen = [""]

        def whole_dump(text: str) -> bool:
            # faulthandler writes one thread after another: the dump is whole once a new one has
            # begun and the log stopped growing between two looks
            settled = text == seen[0]
            seen[0] = text
            return settled and text.count("most recent call first") > before

        text = wait_for(self.text, "a whole stack dump", until=whole_dump, stall=10, poll=0.3)
        return set(STACK_FRAME.findall(text))

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


@pytest.fixture
def config(tmp_path: Path) -> Path:
    store = SqliteStore(tmp_path / "canhgac.db")
    store.setup()
    accounts.add_tenant(store, tenant_id="police", name="Police")
    accounts.add_user(store, username="ana", password=PASSWORD, memberships=[Membership("police", "analyst")])
    accounts.add_user(store, username="boss", password=PASSWORD, memberships=[Membership(PROVINCE, "admin")])
    store.close()
    path = tmp_path / "soc.yml"
    settings = {
        "data_dir": str(tmp_path),
        "api": {"host": "127.0.0.1", "port": free_port()},
        "auth": {"totp_required_roles": []},  # the admin here signs in with a password alone
        "detection": {"interval_seconds": 0.1, "slow_batch_seconds": 0.000001},
        "log": {"json_format": True},
    }
    path.write_text(yaml.safe_dump(settings))
    return path


@pytest.fixture
def processes(config: Path, tmp_path: Path) -> Iterator[tuple[Soc, Soc, str]]:
    port = yaml.safe_load(config.read_text())["api"]["port"]
    api = Soc(config, "api", tmp_path / "api.log")
    engine: Soc | None = None
    try:
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            assert api.process.poll() is None, api.text()
            try:
                return httpx.get(f"{url}/api/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, "the api process to answer")
        engine = Soc(config, "engine", tmp_path / "engine.log")
        wait_for(lambda: any(r["message"] == "started" for r in engine.records()), "the engine process to start")
        yield api, engine, url
    finally:
        # uvicorn ends on SIGTERM by raising the signal again once it has shut down
        codes = [process.stop() for process in (engine, api) if process is not None]
        assert codes in ([0, -signal.SIGTERM], [-signal.SIGTERM]), (codes, api.text(), engine.text() if engine else "")


def brute_force_events() -> list[dict[str, Any]]:
    start = utcnow() - timedelta(minutes=3)
    events = []
    for i, line in enumerate(SAMPLES.read_text().splitlines()):
        event = json.loads(line)
        for name in ("event.id", "organization.id"):
            event.pop(name)
        event["@timestamp"] = format_timestamp(start + timedelta(seconds=15 * i))
        events.append(event)
    return events


def test_h4_api_and_engine_roles_run_apart_on_one_store(config: Path, processes: tuple[Soc, Soc, str]) -> None:
    api, engine, url = processes
    with httpx.Client(base_url=url, timeout=10) as client:

        def login(username: str) -> dict[str, str]:
            answer = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
            return {"Authorization": f"Bearer {answer.json()['access_token']}"}

        sensor = client.post("/api/sensors", json={"name": "web01", "tenant": "police"}, headers=login("boss"))
        assert sensor.status_code == 201, sensor.text
        sensor_key = sensor.json()["api_key"]
        ingested = client.post(
            "/api/ingest", json={"events": brute_force_events()}, headers={"Authorization": f"Bearer {sensor_key}"}
        )
        assert ingested.status_code == 200 and ingested.json()["created"] >= 5, ingested.text
        analyst = login("ana")

        def brute_force_alert() -> list[dict[str, Any]]:
            items = client.get("/api/alerts", headers=analyst).json()["items"]
            return [alert for alert in items if alert["rule_name"] == "SSH Brute Force"]

        (alert,) = wait_for(brute_force_alert, "the engine's alert, served by the api process")
        assert alert["tenant"] == "police" and alert["count"] >= 5

    started = {r["role"]: r["parts"] for r in api.records() + engine.records() if r["message"] == "started"}
    assert started == {"api": ["api"], "engine": ["engine", "playbooks", "scheduler"]}
    assert any(r["message"] == "detection pass" for r in engine.records())
    assert not any(r["message"] == "detection pass" for r in api.records())
    # the tiny slow_batch_seconds makes every batch "slow": the watchdog names rules
    slow = [r for r in engine.records() if r["message"] == "slow detection batch"]
    assert slow and all(r["seconds"] > r["threshold_seconds"] and r["events"] > 0 for r in slow)

    api_frames = api.stack_dump()
    engine_frames = engine.stack_dump()

    def ran(frames: set[tuple[str, str]], module: str, function: str | None = None) -> bool:
        return any(module in path and function in (None, name) for path, name in frames)

    assert ran(engine_frames, "soc_api/runtime.py", "_poll")  # the EngineThread's loop
    assert ran(engine_frames, "apscheduler/")  # the scheduler's thread
    assert not ran(engine_frames, "uvicorn/")  # no HTTP server
    assert ran(api_frames, "uvicorn/")
    assert not ran(api_frames, "soc_api/runtime.py", "_poll")
    assert not ran(api_frames, "apscheduler/")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["up", "--role", "workers"], "unknown role 'workers'"),
        (["up", "--role", "engine", "--demo"], "--demo runs everything in one process"),
    ],
)
def test_h4_a_bad_role_exits_2_and_says_why(args: list[str], message: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOC_")} | {"SOC_DATA_DIR": str(tmp_path)}
    done = subprocess.run([str(SOC), *args], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert message in " ".join(done.stderr.split())
