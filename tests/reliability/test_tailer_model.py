"""D17 (RELIABILITY.md): a model-based test of the tailer and forwarder into the SQLite store.

Hypothesis drives random writes, rename rotations (logrotate's shifting ``app.log.N``),
copytruncate, in-place truncation, deletion of the oldest rotated file, partial sensor steps
and restarts (clean, and crash-like: no flush, no checkpoint save). The model is the list of
lines written, each tagged with the file identity it was written into.

Invariants: nothing delivered twice, nothing delivered that was not written, the lines of one
file identity delivered in the order written; and after every ``sync`` (run until idle) the
delivered lines are exactly the written ones.

Losses the tailer documents are kept out of the model rather than tolerated: truncation and
deletion are done after a sync (lines deleted before they are read are gone for any tailer),
and the copytruncate copy is matched by the glob (``app.log*``), the case in which the
documented loss window is empty.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sensors.config import SensorConfig
from sensors.pipeline import LogSensor
from soc_core.store import SqliteStore
from tests.reliability.sensor_process import log_line, seq_of

ROTATED_KEPT = 3


class TailerModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="canhgac-d17-"))
        self.logs = self.root / "logs"
        self.logs.mkdir()
        self.store = SqliteStore(self.root / "canhgac.db")
        self.store.setup()
        self.config = SensorConfig.from_dict(
            {
                "tenant": "d17",
                "sensor_id": "d17-sensor",
                "state_dir": str(self.root / "state"),
                "checkpoint_interval": 0,
                "inputs": [{"id": "app", "paths": [str(self.logs / "app.log*")], "from_beginning": True}],
                "forwarder": {"batch_max_events": 7, "batch_max_age": 3600},
            }
        )
        self.sensor = LogSensor(self.config, self.store, max_records=5)
        self.written: list[int] = []  # seqs, in the order written
        self.identity: dict[int, int] = {}  # seq → the file identity it was written into
        self.current = 0  # identity of app.log, when it exists
        self.identities = 0

    # ------------------------------------------------------------------ the files
    @property
    def active(self) -> Path:
        return self.logs / "app.log"

    def rotated(self, n: int) -> Path:
        return self.logs / f"app.log.{n}"

    def shift_rotated(self) -> None:
        for n in range(ROTATED_KEPT, 0, -1):
            if self.rotated(n).exists():
                self.rotated(n).rename(self.rotated(n + 1))

    @rule(count=st.integers(1, 12))
    def write(self, count: int) -> None:
        if not self.active.exists() or self.active.stat().st_size == 0:
            self.identities += 1
            self.current = self.identities
        start = len(self.written)
        with open(self.active, "ab") as handle:
            for seq in range(start, start + count):
                handle.write(log_line(seq))
                self.written.append(seq)
                self.identity[seq] = self.current

    @precondition(lambda self: self.active.exists() and not self.rotated(ROTATED_KEPT + 1).exists())
    @rule()
    def rotate_by_rename(self) -> None:
        self.shift_rotated()
        self.active.rename(self.rotated(1))

    @precondition(lambda self: self.active.exists() and not self.rotated(ROTATED_KEPT + 1).exists())
    @rule()
    def copytruncate(self) -> None:
        self.shift_rotated()
        shutil.copyfile(self.active, self.rotated(1))
        with open(self.active, "r+b") as handle:
            handle.truncate(0)

    @precondition(lambda self: self.active.exists())
    @rule()
    def truncate_in_place(self) -> None:
        self.sync()
        with open(self.active, "r+b") as handle:
            handle.truncate(0)

    @precondition(lambda self: any(self.logs.glob("app.log.*")))
    @rule()
    def delete_oldest_rotated(self) -> None:
        self.sync()
        oldest = max(self.logs.glob("app.log.*"), key=lambda path: int(path.suffix[1:]))
        oldest.unlink()

    # ------------------------------------------------------------------ the sensor
    @rule(rounds=st.integers(1, 3))
    def step(self, rounds: int) -> None:
        for _ in range(rounds):
            self.sensor.step()

    @rule()
    def restart_cleanly(self) -> None:
        self.sensor.close()
        self.sensor = LogSensor(self.config, self.store, max_records=5)

    @rule()
    def restart_after_crash(self) -> None:
        """As after SIGKILL: spooled records stay, checkpoints since the last commit are lost."""
        for source in self.sensor.inputs:
            for tracked in source.tailer._files.values():
                tracked.close()
        self.sensor.forwarder.spool._close_reader()
        self.sensor.forwarder.spool.close()
        self.sensor = LogSensor(self.config, self.store, max_records=5)

    @rule()
    def sync(self) -> None:
        self.sensor.run_until_idle(timeout=30)
        delivered = self.delivered()
        assert sorted(delivered) == self.written, (
            f"missing {sorted(set(self.written) - set(delivered))[:10]}, "
            f"unexpected {sorted(set(delivered) - set(self.written))[:10]}"
        )

    # ------------------------------------------------------------------ invariants
    def delivered(self) -> list[int]:
        events, _ = self.store.read_new_events(None, limit=1_000_000)
        return [seq_of(str(event["message"])) for event in events]

    @invariant()
    def delivered_once_in_order(self) -> None:
        delivered = self.delivered()
        assert len(delivered) == len(set(delivered)), "a line was delivered twice"
        assert set(delivered) <= set(self.written)
        by_identity: dict[int, list[int]] = {}
        for seq in delivered:
            by_identity.setdefault(self.identity[seq], []).append(seq)
        for identity, seqs in by_identity.items():
            assert seqs == sorted(seqs), f"identity {identity} delivered out of order: {seqs}"

    def teardown(self) -> None:
        try:
            self.sync()
        finally:
            self.sensor.close()
            self.store.close()
            shutil.rmtree(self.root, ignore_errors=True)


TailerModel.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_d17_tailer_model = pytest.mark.slow(TailerModel.TestCase)
