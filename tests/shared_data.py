"""Where the public data sets are: shared/data beside the repository (as in CI), or
``CANHGAC_SHARED_DATA``. Tests that need them skip when absent — except under ``CI=true``,
where a missing data set fails the run instead of silently testing less."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
SHARED_DATA = Path(os.environ.get("CANHGAC_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def shared_data(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.exists():
        if IN_CI:
            pytest.fail(f"shared data missing in CI: {path}")
        pytest.skip(f"shared data not present: {path}")
    return path
