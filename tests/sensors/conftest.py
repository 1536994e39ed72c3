"""Fixtures shared by the sensor tests (and the network sensor's, below)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.health_api import Api, sensor_api


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    """The real SOC API on loopback with one registered logs sensor (its key in a file)."""
    with sensor_api(tmp_path) as live:
        yield live
