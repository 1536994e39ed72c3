"""Issue 10 item 5: a fast, steady suite (cheap hashing in tests only, markers, waiting on progress)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from soc_core.auth import CHEAP_TEST_HASHING_ENV, hash_password, verify_password
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
        "tests/ui", "tests/sensors/network", "tests/contract", "tests/reliability/test_log_rotation.py"
    )
    assert chosen, "nothing selected"
    assert not [node for node in chosen if "elasticsearch" in node], chosen  # the es variants of the store suite
    assert not [node for node in chosen if "test_log_rotation" in node]  # slow
    assert not [node for node in chosen if "test_net_live" in node]  # netns: every test there uses the veth pair
    assert not [node for node in chosen if "test_loss_above_threshold_shows_degraded" in node]  # netns
    assert [node for node in chosen if "test_pcap_cli_reports_its_counters" in node]  # no pair: stays
    assert not [node for node in chosen if "test_browser.py" in node or "test_h6_browser" in node]  # browser
    assert [node for node in chosen if "test_store_contract.py" in node and "[sqlite]" in node]
    assert [node for node in chosen if "tests/ui/test_pages.py" in node]  # the TestClient UI tests stay
