"""Engine start with every SigmaHQ rule: without the compiled-rule cache, cold, and warm.

    .venv/bin/python bench/bench_rule_cache.py [--rounds N]

Each figure is a fresh process, timed from its start (interpreter and imports included) to the
first alert: `soc up`'s engine (:func:`soc_api.runtime.build_engine`, rules from
``detection.rules_dirs``) over a SQLite store holding one event that a SigmaHQ rule matches,
run until that alert is written. "none" is the path before the cache (``load_rules`` +
compile); "cold" starts from an empty ``<data_dir>/rule-cache``; "warm" from the one the cold
run left. Rounds alternate the three. Results go to BENCHMARKS.md by hand.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIGMAHQ = ROOT.parent / "shared" / "data" / "sigmahq"

CHILD = r"""
import sys, time
started = float(sys.argv[1])
from pathlib import Path
from soc_core.config import Settings
from soc_core.store.sqlite import SqliteStore
import soc_api.runtime as runtime
from detections.engine import DetectionEngine
from detections.loader import load_rules

mode, data, rules = sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
settings = Settings(data_dir=data, detection={"rules_dirs": [rules]})
store = SqliteStore(data / "db.sqlite")
store.setup()
if mode == "none":  # the start before the cache: parse and compile every rule
    engine = DetectionEngine(load_rules([rules]), store)
else:
    engine = runtime.build_engine(settings, store)
loaded = time.time()
result = engine.run_until_idle()
assert result.alerts_created >= 1, result
print(f"{loaded - started:.2f} {time.time() - started:.2f} {len(engine.compiled.rules)}")
store.close()
"""


def seed(data: Path) -> None:
    """One Security 1102 (log cleared) event: "Security Eventlog Cleared" fires on it."""
    from soc_core.events import make_event  # noqa: PLC0415
    from soc_core.store.sqlite import SqliteStore  # noqa: PLC0415

    store = SqliteStore(data / "db.sqlite")
    store.setup()
    event = make_event(
        tenant="t1",
        dataset="windows.security",
        sensor_id="bench",
        source="bench",
        position=1,
        raw=b"",
        timestamp=None,
        fields={
            "event.code": "1102",
            "winlog.channel": "Security",
            "winlog.provider_name": "Microsoft-Windows-Eventlog",
            "winlog.event_id": 1102,
        },
    )
    store.add_events([event])
    store.close()


def run(mode: str, data: Path) -> tuple[float, float, int]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(time.time()), mode, str(data), str(SIGMAHQ)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.split()
    return float(out[0]), float(out[1]), int(out[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    print(f"machine: nproc {os.cpu_count()}, Python {platform.python_version()}, load {os.getloadavg()[0]:.1f}")
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp)
            for mode in ("none", "cold", "warm"):
                (data / "db.sqlite").unlink(missing_ok=True)
                seed(data)
                if mode == "cold":
                    shutil.rmtree(data / "rule-cache", ignore_errors=True)
                loaded, alert, rules = run(mode, data)
                print(
                    f"round {round_ + 1} {mode:>4}: rules ready {loaded:6.1f}s, first alert {alert:6.1f}s",
                    f"({rules} rules)",
                )


if __name__ == "__main__":
    main()
