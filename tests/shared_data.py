"""What the tests need from outside the repository, and what happens when it is missing.

* the public data sets: shared/data beside the repository (as in CI), or ``CANHGAC_SHARED_DATA``;
* Elasticsearch nodes of their own, started from the Maven Central distribution;
* tools such as Chromium.

Missing pieces skip a test on a developer's machine, but under ``CI=true`` they fail the run
instead of silently testing less.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest

from soc_core.devnode import DevNode
from soc_core.errors import SocError

IN_CI = os.environ.get("CI", "").lower() == "true"
SHARED_DATA = Path(os.environ.get("CANHGAC_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def unavailable(reason: str) -> NoReturn:
    """Fail under CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


def shared_data(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.exists():
        unavailable(f"shared data not present: {path}")
    return path


@contextmanager
def dev_node(purpose: str, **options: Any) -> Iterator[DevNode]:
    """A started Elasticsearch node in a fresh work dir, stopped and removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix=f"canhgac-es-{purpose}-"))
    node = DevNode(workdir, **options)
    try:
        node.start(timeout=180)
    except (SocError, OSError) as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        unavailable(f"cannot start the {purpose} Elasticsearch node: {exc}")
    try:
        yield node
    finally:
        node.stop()
        shutil.rmtree(workdir, ignore_errors=True)
