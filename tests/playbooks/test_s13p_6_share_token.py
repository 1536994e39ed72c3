"""Issue 12 loose end, item 6: ``share_stix`` authenticates to the sharing endpoint with a bearer
token from ``playbooks.share.token_file`` (mode 0600, like every secret file), checked by a real
receiver in a network namespace that answers 401 without the right ``Authorization`` header.
The token is in no run record: not in the step's output, error or params, nor in the audit trail.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from playbooks.actions.share import ShareStix, ShareStixParams
from playbooks.format import Library
from playbooks.runner import Runner
from playbooks.service import start_run
from soc_core.config import Settings
from soc_core.errors import ConfigError
from soc_core.store import Store
from tests.playbooks.conftest import make_alert, playbook
from tests.playbooks.support import context, in_netns
from tests.playbooks.test_notify_webhook import PUBLIC, WebhookNet, webhook_net  # noqa: F401
from workflow import audit
from workflow.cases import create_case
from workflow.principals import Actor, Principal

TOKEN_PORT = 8091
TOKEN = "s13p-Tok3n.with~chars+/=="
SHARE = """\
name: share-case
steps:
  - id: share
    action: share_stix
    with: {case_id: "{{ case.id }}", post: true}
"""


@dataclass
class Endpoint:
    """A TAXII-like collection that takes a bundle only with ``Authorization: Bearer <TOKEN>``."""

    server: ThreadingHTTPServer
    seen: list[str | None] = field(default_factory=list)  # the Authorization header of each POST
    bundles: list[Any] = field(default_factory=list)


class _Server(ThreadingHTTPServer):
    endpoint: Endpoint
    daemon_threads = True


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        endpoint = self.server.endpoint
        endpoint.seen.append(self.headers.get("Authorization"))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.send_response(401)
            self.send_header("WWW-Authenticate", "Bearer")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        endpoint.bundles.append(json.loads(body))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        return


@pytest.fixture
def endpoint(webhook_net: WebhookNet) -> Iterator[Endpoint]:  # noqa: F811
    with in_netns(webhook_net.name):
        server = _Server((PUBLIC, TOKEN_PORT), _Handler)
    found = Endpoint(server)
    server.endpoint = found
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()


def token_file(tmp_path: Path, text: str = TOKEN + "\n", mode: int = 0o600) -> Path:
    path = tmp_path / "share.token"
    path.write_text(text)
    path.chmod(mode)
    return path


def config(tmp_path: Path, token: Path | None) -> Settings:
    share = {"url": f"http://{PUBLIC}:{TOKEN_PORT}/taxii2/collections/c/objects/", "allow_plain_http": True}
    if token is not None:
        share["token_file"] = str(token)
    return Settings(data_dir=tmp_path, playbooks={"share": share, "retry_backoff_seconds": 0.01})


def a_case(store: Store) -> str:
    alert = make_alert(store, tenant="police")
    actor = Actor(Principal(id="analyst1", name="analyst1", kind="user"))
    return create_case(
        store, title="C2", description="", severity="high", alert_ids=[alert], scope=("police",), actor=actor
    ).id


@pytest.fixture
def run_share(sqlite_store: Store, webhook_net: WebhookNet) -> Callable[[Settings], dict[str, Any]]:  # noqa: F811
    """Start the playbook on a new case and drive it with a runner, in the receivers' namespace
    (SQLite: a file, so the store is reachable from inside the namespace)."""

    def run(settings: Settings) -> dict[str, Any]:
        audit.configure(sqlite_store, settings)
        case_id = a_case(sqlite_store)
        book = playbook(SHARE)
        runner = Runner(sqlite_store, settings, Library(playbooks={book.name: book}, sources={book.name: "t.yml"}))
        doc = start_run(sqlite_store, playbook=book, case_id=case_id, scope=None, actor="analyst1", dry_run=False)
        with in_netns(webhook_net.name):
            runner.execute(doc.id)
        return sqlite_store.get_doc("playbook_runs", doc.id).body

    return run


def everything_recorded(store: Store) -> str:
    store.refresh()
    docs = [d.body for kind in ("playbook_runs", "audit", "cases") for d in store.list_docs(kind, size=1000).items]
    return json.dumps(docs, ensure_ascii=False)


def test_s13p_6_bearer_token_sent_and_never_recorded(
    endpoint: Endpoint, run_share: Callable[[Settings], dict[str, Any]], sqlite_store: Store, tmp_path: Path
) -> None:
    body = run_share(config(tmp_path, token_file(tmp_path)))
    [step] = body["steps"]
    assert body["status"] == "succeeded" and step["status"] == "succeeded", step
    assert endpoint.seen == [f"Bearer {TOKEN}"]
    assert len(endpoint.bundles) == 1 and endpoint.bundles[0]["type"] == "bundle"
    assert step["output"]["post"] == {
        "url": f"http://{PUBLIC}:{TOKEN_PORT}/taxii2/collections/c/objects/",
        "status": 202,
        "auth": "bearer (playbooks.share.token_file)",
    }
    assert TOKEN not in everything_recorded(sqlite_store)


def test_s13p_6_without_or_with_a_wrong_token_the_endpoint_refuses(
    endpoint: Endpoint, run_share: Callable[[Settings], dict[str, Any]], sqlite_store: Store, tmp_path: Path
) -> None:
    # before the option: no header at all, and the endpoint's 401 says what to configure
    body = run_share(config(tmp_path, None))
    assert endpoint.seen == [None]
    assert body["steps"][0]["status"] == "failed"
    assert "401: it refused a post without a token" in body["steps"][0]["error"]
    assert "playbooks.share.token_file" in body["steps"][0]["error"]
    wrong = "not-" + TOKEN
    body = run_share(config(tmp_path, token_file(tmp_path, wrong + "\n")))
    assert endpoint.seen[-1] == f"Bearer {wrong}" and endpoint.bundles == []
    assert "401: it refused the token" in body["steps"][0]["error"]
    assert wrong not in everything_recorded(sqlite_store)


@pytest.mark.parametrize(
    ("text", "mode", "message"),
    [
        (TOKEN + "\n", 0o644, "can be read by other users"),
        ("", 0o600, "is empty"),
        ("two words\n", 0o600, "not a bearer token"),
    ],
)
def test_s13p_6_token_file_checked_before_any_connection(
    endpoint: Endpoint,
    webhook_net: WebhookNet,  # noqa: F811
    sqlite_store: Store,
    tmp_path: Path,
    text: str,
    mode: int,
    message: str,
) -> None:
    settings = config(tmp_path, token_file(tmp_path, text, mode))
    case_id = a_case(sqlite_store)
    for dry_run in (True, False):
        with in_netns(webhook_net.name), pytest.raises(ConfigError, match=message) as refused:
            ShareStix().run(
                context(settings, sqlite_store, dry_run=dry_run), ShareStixParams(case_id=case_id, post=True)
            )
        assert "share.token" in refused.value.render() and "two words" not in refused.value.render()
    assert endpoint.seen == [] and webhook_net.public.accepts == []
    with pytest.raises(ConfigError, match="cannot read"):
        ShareStix().run(
            context(config(tmp_path, tmp_path / "missing.token"), sqlite_store),
            ShareStixParams(case_id=case_id, post=True),
        )


def test_s13p_6_share_timeout_bounded_like_the_webhook_guard(sqlite_store: Store, tmp_path: Path) -> None:
    # the post goes through a WebhookSettings guard (timeout at most 120 s): a share timeout above
    # that was accepted at load and then crashed the step when the guard was built
    with pytest.raises(ValidationError, match="timeout_seconds"):
        Settings(data_dir=tmp_path, playbooks={"share": {"timeout_seconds": 200}})
    settings = Settings(
        data_dir=tmp_path, playbooks={"share": {"url": f"https://{PUBLIC}/taxii/", "timeout_seconds": 120}}
    )
    output = (
        ShareStix()
        .run(context(settings, sqlite_store, dry_run=True), ShareStixParams(case_id=a_case(sqlite_store), post=True))
        .output
    )
    assert output["post"]["dry_run"] is True
