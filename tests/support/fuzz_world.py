"""A small world for API fuzzing: one agency, an analyst, a manager and an admin, and an alert,
on either store. The schemathesis test serves it; ``python -m tests.support.fuzz_world sqlite|es``
serves it by hand for longer runs (it prints the URL and a bearer token per role, then serves
until Ctrl-C)."""

from __future__ import annotations

import contextlib
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from soc_api.main import create_app
from soc_api.services import accounts
from soc_core.auth import PROVINCE, Membership, Role
from soc_core.config import Settings, ThrottleSettings
from soc_core.store import ElasticsearchStore, SqliteStore, Store
from tests.support.servers import serve

PASSWORD = "a-very-long-password"
ROLES: dict[Role, str] = {"analyst": "police", "manager": "police", "admin": PROVINCE}


def populate(store: Store) -> None:
    store.setup()
    accounts.add_tenant(store, tenant_id="police", name="Police")
    for role, tenant in ROLES.items():
        accounts.add_user(store, username=role, password=PASSWORD, memberships=[Membership(tenant, role)])
    store.create_doc(
        "alerts", {"tenant": "police", "status": "new", "last_seen": "2026-11-20T00:00:00.000Z"}, doc_id="a1"
    )


@contextmanager
def served(store: Store) -> Iterator[str]:
    """The app on ``store`` (populated here) on a loopback port; yields its base URL."""
    populate(store)
    app = create_app(Settings(), store)
    # generated sign-ins would trip the throttle; throttling has its own tests
    app.state.login_throttle.settings = ThrottleSettings(free_failures=10**6, address_failures=10**6)
    with serve(app) as url:
        yield url


def token(url: str, role: str) -> str:
    answer = httpx.post(f"{url}/api/auth/login", json={"username": role, "password": PASSWORD}, timeout=30)
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def drop_es(store: ElasticsearchStore) -> None:
    """Delete the indices and templates of a throw-away prefix."""
    for name in store.client.indices.get(index=f"{store.prefix}-*", allow_no_indices=True):
        store.client.indices.delete(index=name)
    for template in ("events", "docs", "docs-checkpoints"):
        store.client.indices.delete_index_template(name=f"{store.prefix}-{template}")


def _main(kind: str, es_url: str = "http://127.0.0.1:9250") -> None:
    es: ElasticsearchStore | None = None
    store: Store
    if kind == "sqlite":
        store = SqliteStore(Path(tempfile.mkdtemp(prefix="fuzz-")) / "canhgac.db")
    else:
        store = es = ElasticsearchStore(es_url, prefix="fuzz" + uuid.uuid4().hex[:10], request_timeout=60)
    try:
        with served(store) as url:
            print(url, flush=True)
            for role in ROLES:
                print(role, token(url, role), flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                sys.stdin.read()  # serve until stdin closes or Ctrl-C
    finally:
        if es is not None:
            drop_es(es)
        store.close()


if __name__ == "__main__":
    _main(*sys.argv[1:])
