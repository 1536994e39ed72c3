"""Issue 12 loose end, item 5: the webhook's timeout and DNS rebinding, against real receivers in
a network namespace (``webhook_net``: a "public" address 192.31.196.10 and traps on loopback,
10/8 and the metadata address that count every connection).

- The timeout is one deadline for the whole request: a receiver that reads the request, then
  answers one byte a second, is cut at the deadline — a per-operation timeout would wait for it
  as long as it keeps dripping. The receiver sees the cut (end of stream) after a few bytes.
- Rebinding: a host name whose first resolution is public and whose second is loopback. The
  guard resolves once, checks, and connects to the address it checked: the public receiver gets
  the POST, the loopback trap gets no connection, and the name was resolved once.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from playbooks.actions.base import ActionError
from playbooks.actions.notify import Webhook, WebhookParams
from playbooks.actions.share import ShareStix, ShareStixParams
from soc_core.config import Settings
from soc_core.store import SqliteStore
from tests.playbooks.support import context, in_netns, self_signed
from tests.playbooks.test_notify_webhook import PORT, PUBLIC, WebhookNet, webhook_net  # noqa: F401
from tests.support.waiting import wait_for

DRIP_PORT = 8090
DEADLINE = 2.0
BUDGET = 60  # bytes the drip sends at most (a minute): past it, it gives up and closes


class Drip:
    """A receiver that reads one request, then sends an answer that never completes, one byte a
    second, until the client cuts the connection (``cut``) or ``BUDGET`` bytes are sent."""

    def __init__(self, address: str, port: int, tls: tuple[Path, Path] | None = None) -> None:
        self.listener = socket.create_server((address, port))
        self.tls: ssl.SSLContext | None = None
        if tls is not None:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(str(tls[0]), str(tls[1]))
        self.sent = 0
        self.cut = False
        self.done = threading.Event()
        self.stop = threading.Event()
        self.problem = ""
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            raw, _ = self.listener.accept()
            conn = self.tls.wrap_socket(raw, server_side=True) if self.tls else raw
            with conn:
                request = b""
                while not self._whole(request):
                    chunk = conn.recv(65536)
                    if not chunk:
                        self.problem = "the client closed before sending its request"
                        return
                    request += chunk
                answer = b"HTTP/1.1 200 OK\r\nX-Drip: " + b"a" * BUDGET
                for byte in answer[:BUDGET]:
                    conn.sendall(bytes([byte]))
                    self.sent += 1
                    # the pause is also the watch: the client's cut makes the socket readable (EOF)
                    readable, _, _ = select.select([conn], [], [], 1.0)
                    if self.stop.is_set():
                        return
                    if readable:
                        try:
                            data = conn.recv(1)
                        except (OSError, ssl.SSLError):
                            data = b""
                        if not data:
                            self.cut = True
                            return
        except (OSError, ssl.SSLError) as exc:
            self.cut = True  # a reset while sending: the client is gone
            self.problem = repr(exc)
        finally:
            self.done.set()

    @staticmethod
    def _whole(request: bytes) -> bool:
        """Headers and as many body bytes as Content-Length says (then the drip may start)."""
        head, found, body = request.partition(b"\r\n\r\n")
        if not found:
            return False
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        return len(body) >= length

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


@pytest.fixture
def drip(webhook_net: WebhookNet, tmp_path: Path) -> Iterator[Callable[..., Drip]]:  # noqa: F811
    made: list[Drip] = []

    def make(tls: bool = False) -> Drip:
        (tmp_path / "drip").mkdir(exist_ok=True)
        with in_netns(webhook_net.name):
            server = Drip(PUBLIC, DRIP_PORT, self_signed(tmp_path / "drip", host=PUBLIC) if tls else None)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


def settings(tmp_path: Path, **webhook: Any) -> Settings:
    allow = [PUBLIC, "rebind.example"]
    return Settings(
        data_dir=tmp_path,
        playbooks={
            "webhook": {"allow": allow, "allow_plain_http": True, "timeout_seconds": DEADLINE, **webhook},
        },
    )


def run_webhook(net: WebhookNet, config: Settings, url: str) -> dict[str, object]:
    store = SqliteStore(config.sqlite_path)
    try:
        with in_netns(net.name):
            result = Webhook().run(context(config, store), WebhookParams(url=url, payload={"alert": "a1"}))
        return dict(result.output)
    finally:
        store.close()


def wait_done(server: Drip) -> None:
    wait_for(lambda: (server.done.is_set(), server.sent), "the drip receiver to end", until=lambda seen: seen[0])


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_s13p_5_slow_drip_is_cut_at_the_deadline(
    webhook_net: WebhookNet,  # noqa: F811
    drip: Callable[..., Drip],
    tmp_path: Path,
    scheme: str,
) -> None:
    server = drip(tls=scheme == "https")
    config = settings(tmp_path, ca_file=str(tmp_path / "drip" / f"{PUBLIC}.crt") if scheme == "https" else None)
    with pytest.raises(ActionError) as failed:
        run_webhook(webhook_net, config, f"{scheme}://{PUBLIC}:{DRIP_PORT}/hook")
    assert f"within {DEADLINE:g} s" in failed.value.render(), failed.value.render()
    wait_done(server)
    # cut by the client near the deadline (1 byte a second): far from the budget it would drip
    assert server.cut, f"the receiver was not cut: it sent {server.sent} bytes ({server.problem})"
    assert 1 <= server.sent < BUDGET // 3, f"{server.sent} bytes dripped before the cut"
    assert webhook_net.accepts_on_traps() == 0


def test_s13p_5_share_stix_post_has_the_same_deadline(
    webhook_net: WebhookNet,  # noqa: F811
    drip: Callable[..., Drip],
    tmp_path: Path,
) -> None:
    server = drip()
    config = Settings(
        data_dir=tmp_path,
        playbooks={
            "share": {
                "url": f"http://{PUBLIC}:{DRIP_PORT}/taxii",
                "allow_plain_http": True,
                "timeout_seconds": DEADLINE,
            }
        },
    )
    store = SqliteStore(config.sqlite_path)
    store.setup()
    try:
        store.create_doc("cases", {"tenant": "police", "title": "c", "observables": [], "alert_ids": []}, doc_id="c1")
        with in_netns(webhook_net.name), pytest.raises(ActionError) as failed:
            ShareStix().run(context(config, store), ShareStixParams(case_id="c1", post=True))
    finally:
        store.close()
    assert f"within {DEADLINE:g} s" in failed.value.render(), failed.value.render()
    wait_done(server)
    assert server.cut and server.sent < BUDGET // 3, (server.sent, server.problem)


def test_s13p_5_rebinding_name_never_reaches_loopback(
    webhook_net: WebhookNet,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = socket.getaddrinfo
    asked: list[str] = []

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        """The attacker's DNS: public the first time the name is asked, loopback after."""
        asked.append(str(host))
        if host == "rebind.example":
            host = PUBLIC if asked.count("rebind.example") == 1 else "127.0.0.1"
        return real(host, port, *args, **kwargs)

    # every resolution in the process goes through the stub (socket.create_connection's too)
    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    output = run_webhook(webhook_net, settings(tmp_path), f"http://rebind.example:{PORT}/hook")
    assert output == {"url": f"http://rebind.example:{PORT}/hook", "address": PUBLIC, "status": 200}
    assert webhook_net.public.posted == [{"path": "/hook", "host": f"rebind.example:{PORT}", "json": {"alert": "a1"}}]
    assert asked.count("rebind.example") == 1, asked
    assert webhook_net.accepts_on_traps() == 0
    # the control: a client that resolves the name again is steered to the loopback trap, which counts it
    with in_netns(webhook_net.name), socket.create_connection(("rebind.example", PORT), timeout=10):
        pass
    wait_for(lambda: len(webhook_net.traps["127.0.0.1"].accepts), "the trap to count the naive client", until=bool)
    assert len(webhook_net.public.accepts) == 1
