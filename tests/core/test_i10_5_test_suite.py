"""Issue 10 item 5: a fast, steady suite (cheap hashing in tests only, markers, waiting on progress)."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from soc_api.main import create_app, route_inventory
from soc_core.auth import CHEAP_TEST_HASHING_ENV, hash_password, verify_password
from soc_core.config import Settings
from soc_core.store import Store
from tests.shared_data import SHARED_DATA
from tests.support import tshark as peer
from tests.support.waiting import wait_for

PRODUCTION_PREFIX = "$argon2id$v=19$m=65536,t=3,p=4$"
ROOT = Path(__file__).resolve().parents[2]
FAST = "not slow and not elasticsearch and not browser and not netns"


def test_i10_5_production_password_hashing_keeps_argon2_defaults() -> None:
    environment = {name: value for name, value in os.environ.items() if name != CHEAP_TEST_HASHING_ENV}
    produced = subprocess.run(
        [sys.executable, "-c", "from soc_core.auth import hash_password; print(hash_password('x' * 16))"],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    assert produced.startswith(PRODUCTION_PREFIX), produced
    # a production hash still verifies in the cheap test process: the parameters travel in the hash
    assert verify_password(produced, "x" * 16)


def test_i10_5_tests_hash_passwords_cheaply() -> None:
    assert os.environ.get(CHEAP_TEST_HASHING_ENV) == "1"
    assert hash_password("y" * 16).startswith("$argon2id$v=19$m=8,t=1,p=1$")


def test_i10_5_wait_for_keeps_waiting_while_the_value_moves() -> None:
    calls = itertools.count()
    started = time.monotonic()
    # each call is progress: it outlasts many stall windows and still succeeds
    seen = wait_for(lambda: next(calls), "forty calls", until=lambda n: n >= 40, stall=0.05, poll=0.01)
    assert seen == 40
    assert time.monotonic() - started > 0.05


def test_i10_5_wait_for_fails_after_no_progress_saying_what_and_what_was_seen() -> None:
    with pytest.raises(AssertionError) as failed:
        wait_for(lambda: 7, "eight events stored", until=lambda n: n == 8, stall=0.1, poll=0.01)
    message = str(failed.value)
    assert "eight events stored" in message and "no progress for 0.1 s" in message and "last seen: 7" in message


def test_i10_5_wait_for_counts_ignored_errors_as_not_yet() -> None:
    refusals = iter([ConnectionRefusedError("refused"), ConnectionRefusedError("refused")])

    def probe() -> str:
        refusal = next(refusals, None)
        if refusal is not None:
            raise refusal
        return "up"

    assert wait_for(probe, "the server", ignore=(OSError,), poll=0) == "up"
    with pytest.raises(ConnectionRefusedError):  # not ignored: the test fails at once with the real error
        wait_for(probe_refusing, "the server", poll=0)


def probe_refusing() -> bool:
    raise ConnectionRefusedError("refused")


def fast_selection(*arguments: str) -> list[str]:
    """Node ids ``make check`` would run (collection only)."""
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", "-m", FAST, *arguments],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).stdout
    return [line for line in collected.splitlines() if "::" in line]


def test_i10_5_make_check_leaves_out_elasticsearch_browser_netns_and_slow_tests() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert f'-m "{FAST}"' in makefile
    chosen = fast_selection(
        "tests/ui",
        "tests/sensors/network",
        "tests/contract",
        "tests/reliability/test_log_rotation.py",
        "tests/reliability/test_real_sshd.py",
    )
    assert chosen, "nothing selected"
    assert not [node for node in chosen if "elasticsearch" in node], chosen  # the es variants of the store suite
    assert not [node for node in chosen if "test_log_rotation" in node]  # slow
    assert not [node for node in chosen if "test_real_sshd" in node]  # netns: root, namespaces, sshd
    assert not [node for node in chosen if "test_net_live" in node]  # netns: every test there uses the veth pair
    assert not [node for node in chosen if "test_loss_above_threshold_shows_degraded" in node]  # netns
    assert [node for node in chosen if "test_pcap_cli_reports_its_counters" in node]  # no pair: stays
    assert not [node for node in chosen if "test_browser.py" in node or "test_h6_browser" in node]  # browser
    assert [node for node in chosen if "test_store_contract.py" in node and "[sqlite]" in node]
    assert [node for node in chosen if "tests/ui/test_pages.py" in node]  # the TestClient UI tests stay


def test_i10_5_mypy_is_strict_for_every_package_the_tests_and_the_benchmarks() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["strict"] is True
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    assert {"soc_core", "sensors", "detections", "soc_api", "tests"} <= packages
    checked = set(config["files"])
    assert packages | {"bench"} <= checked, f"not type-checked: {sorted((packages | {'bench'}) - checked)}"
    assert {f"scripts/{path.name}" for path in (ROOT / "scripts").iterdir() if is_python(path)} <= checked
    # nothing loosens it again for some modules
    loosening = {"strict", "ignore_errors", "check_untyped_defs", "disallow_untyped_defs", "disallow_any_generics"}
    assert not [override for override in config.get("overrides", []) if loosening & set(override)], config


def is_python(path: Path) -> bool:
    return path.suffix == ".py" or path.read_bytes().startswith(b"#!/usr/bin/env python3")


def test_i10_5_an_app_is_built_without_its_openapi_document(sqlite_store: Store) -> None:
    """Building the document cost ~0.5 s per app (most of an API test's set-up); the policy
    check reads the routes instead, and the document is built on the first request for it."""
    app = create_app(Settings(), sqlite_store)
    assert app.openapi_schema is None
    inventory = route_inventory(app)
    assert app.openapi_schema is None
    document = TestClient(app).get("/openapi.json").json()
    from_document = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert inventory == from_document and len(inventory) > 30


def test_i10_5_cpu_hog_runs_a_command_next_to_busy_processes_and_stops_them() -> None:
    check = (
        "import os, pathlib\n"
        "pids = os.environ['CPU_HOG_PIDS'].split(',')\n"
        "assert len(pids) == 2, pids\n"
        "assert all(pathlib.Path(f'/proc/{pid}').exists() for pid in pids)\n"
        "raise SystemExit(7)\n"
    )
    started = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cpu-hog"), "--procs", "2", "--", sys.executable, "-c", check],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert started.returncode == 7, started.stderr  # the command's own exit status
    pids = started.stderr.split("(")[1].split(")")[0].split(",")
    assert len(pids) == 2, started.stderr
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()], "busy processes left behind"


def test_i10_5_cpu_hog_killed_outright_leaves_nothing_spinning() -> None:
    hog = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "cpu-hog"), "--procs", "2"], stderr=subprocess.PIPE, text=True
    )
    assert hog.stderr is not None
    line = hog.stderr.readline()
    pids = line.split("(")[1].split(")")[0].split(",")
    assert all(cpu_seconds(pid) is not None for pid in pids), line
    wait_for(lambda: min(cpu_seconds(pid) or 0 for pid in pids), "the hogs to burn CPU", until=lambda t: t > 0)
    hog.kill()
    hog.wait()
    hog.stderr.close()
    wait_for(lambda: [pid for pid in pids if cpu_seconds(pid) is not None], "the hogs to stop", until=lambda a: not a)


def cpu_seconds(pid: str) -> float | None:
    """User+system CPU time of a live process, None once it is gone (or a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return None
    if fields[0] == "Z":
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (Debian package: tshark)")
def test_i10_5_tshark_answers_are_kept_by_version_pcap_bytes_and_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pcap = SHARED_DATA / "pcaps" / "zeek" / "dns-edns-cookie.pcap"
    assert pcap.is_file(), pcap
    monkeypatch.setattr(peer, "CACHE", tmp_path / "cache")
    asked = peer.tshark(pcap, "dns", "dns.qry.name")
    assert asked and len(list((tmp_path / "cache").iterdir())) == 1

    def no_tshark(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"tshark run although its answer is kept: {args}")

    monkeypatch.setattr(subprocess, "run", no_tshark)
    copy = tmp_path / "copy.pcap"
    copy.write_bytes(pcap.read_bytes())
    assert peer.tshark(copy, "dns", "dns.qry.name") == asked  # the same bytes elsewhere: kept
    with pytest.raises(AssertionError, match="tshark run"):
        peer.tshark(pcap, "dns", "dns.qry.name", options=("-o", "ip.defragment:FALSE"))
    copy.write_bytes(pcap.read_bytes() + b"\0")
    with pytest.raises(AssertionError, match="tshark run"):
        peer.tshark(copy, "dns", "dns.qry.name")


def test_i10_5_make_check_runs_on_two_pinned_xdist_workers() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "CHECK_WORKERS ?= 2" in makefile and "-n $(CHECK_WORKERS)" in makefile
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    assert [pin for pin in dev if pin.startswith("pytest-xdist==")], dev
