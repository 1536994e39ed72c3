"""The ``soc`` command as a user runs it: a real process in a directory of the test's choosing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from soc_core.auth import CHEAP_TEST_HASHING_ENV

SOC = [sys.executable, "-c", "from soc_api.cli import main; main()"]


def soc(
    *args: str, cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # the caller's SOC_* settings stay out; the suite's cheap password hashing stays in
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SOC_") or k == CHEAP_TEST_HASHING_ENV}
    environment.update(env or {}, COLUMNS="200")
    return subprocess.run(
        [*SOC, *args], cwd=cwd, input=stdin, capture_output=True, text=True, env=environment, timeout=120, check=False
    )
