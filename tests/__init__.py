"""The test suite.

Set before any ``soc_core`` module is imported (this package is imported before its conftest):
argon2 at its cheapest, so that each sign-in and each seeded user costs microseconds, not ~0.3 s.
Child processes (``soc`` CLI, sensors) inherit it. Production never sets it; test_h5_speed checks
that without it the hasher keeps the production parameters.
"""

import os

os.environ["SOC_TEST_CHEAP_PASSWORD_HASHING"] = "1"
