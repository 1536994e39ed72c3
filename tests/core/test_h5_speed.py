"""Issue 10 item 5: the suite's speed-ups never reach production."""

from __future__ import annotations

import os
import subprocess
import sys

from soc_core.auth import CHEAP_TEST_HASHING_ENV, hash_password, verify_password

PRODUCTION_PREFIX = "$argon2id$v=19$m=65536,t=3,p=4$"


def test_h5_production_password_hashing_keeps_argon2_defaults() -> None:
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


def test_h5_tests_hash_passwords_cheaply() -> None:
    assert os.environ.get(CHEAP_TEST_HASHING_ENV) == "1"
    assert hash_password("y" * 16).startswith("$argon2id$v=19$m=8,t=1,p=1$")
