"""Item 2 of the library brief — the restart scenario in real processes: ``soc up --role engine``
(run inside a network namespace, where a real HTTP receiver stands for the agency's webhook)
is killed with SIGKILL while its playbook's webhook step is posting. Another ``soc up --role
engine`` takes the run over once the dead one's lease runs out: the webhook step is marked
``interrupted`` and never posted again (the receiver saw exactly one request), and the gated
step after it, whose approval nobody gives, is cancelled when the approval expires."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from playbooks.records import auto_run_id, get_run
from soc_core.store import SqliteStore
from tests.playbooks.conftest import make_alert
from tests.playbooks.support import in_netns, namespace
from tests.soc_api.test_h4_roles import SOC
from tests.support.waiting import wait_for

# whole `soc` processes killed and restarted: the full suite runs them, `make check` does not
pytestmark = pytest.mark.slow

PUBLIC, PORT = "192.31.196.10", 8080
BOOK = f"""\
name: notify-then-block
trigger: {{type: alert, levels: [high]}}
steps:
  - id: tell
    action: webhook
    timeout: 5s
    on_error: continue
    with: {{url: "http://{PUBLIC}:{PORT}/hook", payload: {{alert: "{{{{ alert.id }}}}"}}}}
  - id: block
    action: block_ip
    approval: {{roles: [analyst], agency: own, expires: 3s}}
    with: {{address: "{{{{ alert.entities['source.ip'][0] }}}}"}}
"""


@dataclass
class Receiver:
    """Counts the POSTs it gets and answers none of them until ``release`` is set."""

    hits: list[Any] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


def _receiver_handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver.hits.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0))))
            receiver.release.wait(30)
            try:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:  # the poster was killed meanwhile
                pass

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@pytest.fixture
def hook_net() -> Iterator[tuple[str, Receiver]]:
    receiver = Receiver()
    with namespace([f"{PUBLIC}/32"]) as name:
        with in_netns(name):
            server = ThreadingHTTPServer((PUBLIC, PORT), _receiver_handler(receiver))
            server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield name, receiver
        finally:
            receiver.release.set()
            server.shutdown()
            server.server_close()


def _engine(netns: str, config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOC_")}
    with open(log, "ab") as err:
        return subprocess.Popen(
            ["ip", "netns", "exec", netns, str(SOC), "--config", str(config), "up", "--role", "engine"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )


def test_pblib_2_engine_killed_mid_webhook_posts_once_and_an_expired_approval_cancels(
    hook_net: tuple[str, Receiver], tmp_path: Path
) -> None:
    netns, receiver = hook_net
    books = tmp_path / "playbooks"
    books.mkdir()
    (books / "book.yml").write_text(BOOK)
    config = tmp_path / "soc.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp_path),
                "detection": {"enabled": False},
                "log": {"json_format": True},
                "playbooks": {
                    "dirs": [str(books)],
                    "library": False,
                    "poll_seconds": 0.1,
                    "webhook": {"allow": [PUBLIC], "allow_plain_http": True},
                },
            }
        )
    )
    store = SqliteStore(tmp_path / "canhgac.db")
    store.setup()
    log = tmp_path / "engine.log"
    first = _engine(netns, config, log)
    try:
        alert_id = make_alert(store)
        run_id = auto_run_id("notify-then-block", alert_id)
        wait_for(lambda: len(receiver.hits), "the webhook to reach the receiver", until=lambda n: n == 1)
        assert get_run(store, run_id).body["steps"][0]["status"] == "running"
    finally:
        first.send_signal(signal.SIGKILL)  # mid-POST: the receiver has not answered yet
        first.wait()
    receiver.release.set()
    second = _engine(netns, config, log)
    try:
        body = wait_for(
            lambda: get_run(store, run_id).body,
            "the restarted engine to finish the run (after the dead one's lease)",
            until=lambda b: b["status"] in ("succeeded", "failed", "cancelled", "interrupted"),
            stall=120,
        )
    finally:
        second.send_signal(signal.SIGTERM)
        code = second.wait(timeout=30)
    steps = {step["id"]: step for step in body["steps"]}
    assert steps["tell"]["status"] == "interrupted" and "not repeated" in steps["tell"]["error"]
    assert steps["block"]["status"] == "cancelled" and "approval expired" in steps["block"]["error"]
    assert body["status"] == "cancelled"
    assert receiver.hits == [{"alert": alert_id}]  # posted once, never again after the restart
    assert code == 0, log.read_text(errors="replace")[-3000:]
    store.close()
