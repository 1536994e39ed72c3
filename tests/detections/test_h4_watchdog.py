"""H4: the engine's watchdog. A batch over ``slow_batch_seconds`` is logged with the rules that
took the time; a batch under it costs three clock reads and nothing per event or rule."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from detections.engine import DetectionEngine
from detections.loader import load_rules
from soc_core.events import make_event
from soc_core.store import Store

SLOW_ID = "5b0c1f0e-1111-4a2b-9c3d-000000000001"
FAST_ID = "5b0c1f0e-1111-4a2b-9c3d-000000000002"
RULES = {
    "slow.yml": f"""title: Slow But Linear
id: {SLOW_ID}
status: test
logsource:
    product: canhgac
    service: test.slow
detection:
    selection:
        message|re: '(alpha|beta|gamma|delta)[0-9]{{2,4}}(omega|sigma)$'
    condition: selection
level: low
""",
    "fast.yml": f"""title: Fast Equality
id: {FAST_ID}
status: test
logsource:
    product: canhgac
    service: test.slow
detection:
    selection:
        event.action: login
    condition: selection
level: low
""",
}


def rules_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    for name, text in RULES.items():
        (folder / name).write_text(text)
    return folder


def events(count: int, message_bytes: int) -> list[dict[str, object]]:
    return [
        make_event(
            tenant="police",
            dataset="test.slow",
            sensor_id="watchdog",
            source="test",
            position=i,
            raw=str(i).encode(),
            # neither rule matches (no alert to write): the batch's time is matching time
            fields={"message": "x" * message_bytes + f" alpha{i:03d}zeta", "event.action": "login-failed"},
        )
        for i in range(count)
    ]


def test_h4_a_slow_batch_is_logged_with_the_rule_that_took_the_time(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store.add_events(events(40, 256 * 1024))
    store.refresh()
    engine = DetectionEngine(load_rules([rules_dir(tmp_path)]), store, slow_batch_seconds=0.001)
    assert not engine.errors
    with caplog.at_level(logging.WARNING, logger="canhgac.detections.watchdog"):
        result = engine.run_until_idle(limit=1000)
    assert result.events == 40
    slow = [r for r in caplog.records if r.getMessage() == "slow detection batch"]
    assert len(slow) == 1
    record = slow[0].__dict__
    assert record["events"] == 40 and record["seconds"] > 0.001
    assert record["match_seconds"] + record["write_seconds"] == pytest.approx(record["seconds"], abs=0.002)
    top = record["slowest_rules"]
    assert top[0]["rule"] == SLOW_ID and top[0]["title"] == "Slow But Linear"
    assert top[0]["seconds"] > 0
    assert [entry["rule"] for entry in top] == [SLOW_ID, FAST_ID]  # both were run; the regex took the time
    assert top[0]["seconds"] > top[1]["seconds"]
    assert 1 <= record["timed_events"] <= 40


class Clock:
    """Injected time: the scripted readings first, then 1 ms more at every reading."""

    def __init__(self, *script: float) -> None:
        self.script = list(script)
        self.calls = 0
        self.now = 0.0

    def __call__(self) -> float:
        self.calls += 1
        self.now = self.script.pop(0) if self.script else self.now + 0.001
        return self.now


def test_h4_a_batch_under_the_threshold_costs_three_clock_reads(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store.add_events(events(50, 10))
    store.refresh()
    clock = Clock()
    engine = DetectionEngine(load_rules([rules_dir(tmp_path)]), store, slow_batch_seconds=10, timer=clock)
    with caplog.at_level(logging.WARNING, logger="canhgac.detections.watchdog"):
        assert engine.run_batch(limit=1000).events == 50
    assert clock.calls == 3  # batch start, matching done, batch end: nothing per event or rule
    assert not [r for r in caplog.records if r.getMessage() == "slow detection batch"]


def test_h4_a_batch_slow_in_injected_time_is_reported_with_the_budgeted_retiming(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store.add_events(events(50, 10))
    store.refresh()
    clock = Clock(100.0, 112.0, 112.5)  # matching took 12 s, writing 0.5 s; then 1 ms per reading
    engine = DetectionEngine(load_rules([rules_dir(tmp_path)]), store, slow_batch_seconds=0.01, timer=clock)
    with caplog.at_level(logging.WARNING, logger="canhgac.detections.watchdog"):
        engine.run_batch(limit=1000)
    (record,) = [r.__dict__ for r in caplog.records if r.getMessage() == "slow detection batch"]
    assert (record["events"], record["seconds"], record["match_seconds"], record["write_seconds"]) == (
        50,
        12.5,
        12,
        0.5,
    )
    assert 1 <= record["timed_events"] < 50  # the re-timing stopped at its 10 ms budget
    assert {entry["rule"] for entry in record["slowest_rules"]} == {SLOW_ID, FAST_ID}
