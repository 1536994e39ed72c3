"""The veth ``pair`` fixture: live capture between two network namespaces (marked ``netns``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.support.netns import Pair, veth_pair


@pytest.fixture
def pair() -> Iterator[Pair]:
    if os.geteuid() != 0:
        pytest.skip("live capture and network namespaces need root")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (ip) is not installed")
    with veth_pair() as made:
        yield made
