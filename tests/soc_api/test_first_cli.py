"""First hour with the `soc` CLI (issue 14 item 14, issue 15 item 12): bad commands and values
are one line and exit 2, never a traceback; `soc up` says "running" only once it listens;
agencies and people are listed. Real processes, real files, real sockets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

from soc_core.auth import CHEAP_TEST_HASHING_ENV
from soc_core.devnode import free_port
from tests.support.cli import SOC, soc


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_first_3_unknown_commands_and_bad_ports_are_one_line_and_exit_2(tmp_path: Path) -> None:
    cases = {
        ("foo",): "No such command 'foo'",
        ("up", "--port", "abc"): "'--port'",
        ("up", "--port", "99999"): "65535",
        ("up", "--port", "180125"): "65535",
        ("tenant", "add"): "Missing argument",
    }
    with ThreadPoolExecutor(4) as pool:  # each is a process start: side by side
        done = dict(zip(cases, pool.map(lambda args: soc(*args, cwd=tmp_path), cases), strict=True))
    for args, expected in cases.items():
        line = _one_error_line(done[args])
        assert expected in line, (args, line)
    assert not (tmp_path / "var").exists()  # refused before any store was opened


def test_first_3_a_port_in_use_is_one_line_naming_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_error_line(soc("up", "--port", str(port), cwd=tmp_path))
    assert f"127.0.0.1:{port}" in line and "in use" in line and "--port" in line


@contextmanager
def _soc_up(tmp_path: Path, port: int) -> Iterator[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOC_") or k == CHEAP_TEST_HASHING_ENV}
    with subprocess.Popen(
        [*SOC, "up", "--port", str(port)],
        cwd=tmp_path,
        env={**env, "COLUMNS": "200", "SOC_SCHEDULER__ENABLED": "false", "SOC_DETECTION__ENABLED": "false"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        try:
            yield process
        finally:
            process.terminate()
            process.wait(timeout=60)


def test_first_3_up_says_running_only_once_it_listens(tmp_path: Path) -> None:
    port = free_port()
    with _soc_up(tmp_path, port) as process:
        assert process.stdout is not None
        printed = []
        for line in process.stdout:  # blocks until soc prints; ends if it dies
            printed.append(line)
            if "is running" in line:
                break
        assert any("is running" in line for line in printed), printed
        # the moment it says so, it answers: no connection refused, no waiting
        answer = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=30)
        assert answer.status_code == 200, answer.text


def test_first_3_tenant_and_user_list(tmp_path: Path) -> None:
    assert soc("tenant", "add", "so_y_te", "Sở Y tế", cwd=tmp_path).returncode == 0
    assert soc("tenant", "add", "police", "Công an", cwd=tmp_path).returncode == 0
    added = soc(
        "user", "add", "lan", "-m", "so_y_te:analyst", "-m", "police:manager", "--password-stdin",
        cwd=tmp_path, stdin="long-password-123\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert soc("user", "disable", "lan", cwd=tmp_path).returncode == 0
    tenants = soc("tenant", "list", "--json", cwd=tmp_path)
    assert tenants.returncode == 0, tenants.stderr
    listed = json.loads(tenants.stdout)
    assert [(t["id"], t["name"]) for t in listed] == [("police", "Công an"), ("so_y_te", "Sở Y tế")]
    assert all(t["created_at"] for t in listed)
    table = soc("tenant", "list", cwd=tmp_path).stdout
    assert "police" in table and "Sở Y tế" in table
    users = json.loads(soc("user", "list", "--json", cwd=tmp_path).stdout)
    (lan,) = users
    assert lan["username"] == "lan" and lan["disabled"] is True
    assert {(m["tenant"], m["role"]) for m in lan["memberships"]} == {("so_y_te", "analyst"), ("police", "manager")}
    assert not any("password" in key and key != "must_change_password" for key in lan)
    table = soc("user", "list", cwd=tmp_path).stdout
    assert "lan" in table and "so_y_te:analyst" in table and "disabled" in table
