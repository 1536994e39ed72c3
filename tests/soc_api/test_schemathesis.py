"""Property-based API tests (A13): schemathesis (its CLI, against the API served on a real
socket) drives every operation of the OpenAPI schema as an analyst, a manager and an admin,
and once without credentials. Passing means: no 5xx, responses conform to the schema, and
authentication is never ignored.

The seed is fixed, so a run is repeatable and CI does not fail on a case no one has seen:
``SOC_FUZZ_SEED=random`` explores (each run prints its seed; `st replay` reproduces a case)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from soc_api.main import create_app
from soc_api.services import accounts
from soc_core.auth import PROVINCE, Membership
from soc_core.config import Settings, ThrottleSettings
from soc_core.store import SqliteStore
from tests.support.servers import serve

PASSWORD = "a-very-long-password"
ROLES = {"analyst": "police", "manager": "police", "admin": PROVINCE}


pytestmark = pytest.mark.slow  # property-based: hundreds of generated requests per role


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = SqliteStore(Path(tmp_path_factory.mktemp("schemathesis")) / "canhgac.db")
    store.setup()
    accounts.add_tenant(store, tenant_id="police", name="Police")
    for role, tenant in ROLES.items():
        accounts.add_user(store, username=role, password=PASSWORD, memberships=[Membership(tenant, role)])  # type: ignore[arg-type]
    store.create_doc(
        "alerts", {"tenant": "police", "status": "new", "last_seen": "2026-11-20T00:00:00.000Z"}, doc_id="a1"
    )
    app = create_app(Settings(), store)
    # generated sign-ins would trip the throttle; throttling has its own tests
    app.state.login_throttle.settings = ThrottleSettings(free_failures=10**6, address_failures=10**6)
    with serve(app) as url:
        yield url


FUZZ_SEED = os.environ.get("SOC_FUZZ_SEED", "20261206")


def schemathesis(base_url: str, workdir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    seed = [] if FUZZ_SEED == "random" else ["--seed", FUZZ_SEED]
    return subprocess.run(
        [
            binary,
            "run",
            f"{base_url}/openapi.json",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            "10",
            "--exclude-path",
            "/api/auth/logout",  # would end the session the other operations use
            "--suppress-health-check",
            "all",
            *seed,
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false", "NO_COLOR": "1"},
        cwd=workdir,
    )


@pytest.mark.parametrize("role", sorted(ROLES))
def test_every_operation_as_role(base_url: str, role: str, tmp_path: Path) -> None:
    token = httpx.post(f"{base_url}/api/auth/login", json={"username": role, "password": PASSWORD}).json()
    done = schemathesis(base_url, tmp_path, "--header", f"Authorization: Bearer {token['access_token']}")
    assert done.returncode == 0, done.stdout[-30000:] + done.stderr[-2000:]


def test_every_operation_without_credentials_is_refused(base_url: str) -> None:
    openapi = httpx.get(f"{base_url}/openapi.json").json()
    for path, operations in openapi["paths"].items():
        if path in ("/api/health", "/api/auth/login", "/api/auth/totp", "/api/auth/reset"):  # public by design
            continue
        for method in operations:
            url = base_url + path.replace("{", "").replace("}", "")
            assert httpx.request(method.upper(), url, json={}).status_code == 401, (method, path)
