"""Item 1 of the actions brief: the ``webhook`` action against real HTTP receivers.

The receivers run in a network namespace of their own, so the test needs no exception for
loopback in the product: the "public" receiver sits on 192.31.196.10 (a globally routable
address, AS112's block, reachable only inside the namespace), and listeners on 127.0.0.1,
[::1], 10.0.0.1 and 169.254.169.254 in the same namespace count every connection they accept.
The action runs with this thread in that namespace; production code is unchanged and refuses
every private, loopback and link-local target by default.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from playbooks.actions.base import ACTIONS, ActionError
from playbooks.actions.notify import Webhook, WebhookParams
from playbooks.actions.outbound import OutboundRefused, check_allowed, parse_target
from soc_core.config import Settings
from soc_core.store import SqliteStore
from tests.playbooks.support import Listener, context, in_netns, listen, namespace, self_signed

PUBLIC = "192.31.196.10"
PORT = 8080
TRAPS = ("127.0.0.1", "::1", "10.0.0.1", "169.254.169.254")


@dataclass
class WebhookNet:
    name: str
    public: Listener
    public_tls: Listener
    traps: dict[str, Listener]
    ca_file: Path

    def accepts_on_traps(self) -> int:
        return sum(len(listener.accepts) for listener in self.traps.values())


@pytest.fixture
def webhook_net(tmp_path: Path) -> Iterator[WebhookNet]:
    with namespace([f"{PUBLIC}/24", "10.0.0.1/8", "169.254.169.254/16"]) as name, in_netns(name):
        cert = self_signed(tmp_path, host=PUBLIC)
        net = WebhookNet(
            name=name,
            public=listen(PUBLIC, PORT),
            public_tls=listen(PUBLIC, 8443, tls=cert),
            traps={address: listen(address, PORT) for address in TRAPS},
            ca_file=cert[0],
        )
        net.public.redirect_to = f"http://127.0.0.1:{PORT}/"
        try:
            yield net
        finally:
            for listener in (net.public, net.public_tls, *net.traps.values()):
                listener.server.shutdown()
                listener.server.server_close()


def settings(tmp_path: Path, **webhook: object) -> Settings:
    allow = [
        PUBLIC,
        "127.0.0.1",
        "[::1]",
        "10.0.0.1",
        "169.254.169.254",
        "localhost",
        "2130706433",
        "::ffff:127.0.0.1",
        "0.0.0.0",
    ]
    return Settings(
        data_dir=tmp_path,
        playbooks={"webhook": {"allow": allow, "allow_plain_http": True, "timeout_seconds": 10, **webhook}},
    )


def post(net: WebhookNet, config: Settings, url: str, *, dry_run: bool = False) -> dict[str, object]:
    store = SqliteStore(config.sqlite_path)
    try:
        with in_netns(net.name):
            result = Webhook().run(
                context(config, store, dry_run=dry_run),
                WebhookParams(url=url, payload={"alert": "a1", "msg": "Tấn công"}),
            )
        return dict(result.output)
    finally:
        store.close()


def test_webhook_is_registered() -> None:
    assert ACTIONS["webhook"] is Webhook
    assert Webhook.idempotent is False


def test_webhook_posts_json_to_an_allowed_public_target(webhook_net: WebhookNet, tmp_path: Path) -> None:
    output = post(webhook_net, settings(tmp_path), f"http://{PUBLIC}:{PORT}/hook?x=1")
    assert output == {"url": f"http://{PUBLIC}:{PORT}/hook?x=1", "address": PUBLIC, "status": 200}
    assert webhook_net.public.posted == [
        {"path": "/hook?x=1", "host": f"{PUBLIC}:{PORT}", "json": {"alert": "a1", "msg": "Tấn công"}}
    ]
    assert webhook_net.accepts_on_traps() == 0


@pytest.mark.parametrize(
    "url",
    [
        f"http://127.0.0.1:{PORT}/",
        f"http://[::1]:{PORT}/",
        f"http://169.254.169.254:{PORT}/latest/meta-data/",
        f"http://10.0.0.1:{PORT}/",
        f"http://0.0.0.0:{PORT}/",  # the unspecified address reaches local listeners on Linux
        f"http://localhost:{PORT}/",  # a name that resolves to loopback
        f"http://2130706433:{PORT}/",  # 127.0.0.1 spelled as one decimal number
        f"http://[::ffff:127.0.0.1]:{PORT}/",  # IPv4-mapped IPv6
    ],
)
def test_webhook_refuses_internal_targets_with_no_connection(webhook_net: WebhookNet, tmp_path: Path, url: str) -> None:
    with pytest.raises(OutboundRefused) as refused:
        post(webhook_net, settings(tmp_path), url)
    assert "resolves to" in refused.value.message
    assert webhook_net.accepts_on_traps() == 0
    assert webhook_net.public.accepts == []


def test_webhook_does_not_follow_a_redirect_to_loopback(webhook_net: WebhookNet, tmp_path: Path) -> None:
    with pytest.raises(ActionError, match=r"302 .*redirects are not followed"):
        post(webhook_net, settings(tmp_path), f"http://{PUBLIC}:{PORT}/redirect")
    assert len(webhook_net.public.accepts) == 1
    assert webhook_net.accepts_on_traps() == 0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"http://203.0.114.9:{PORT}/", "not on the allowlist"),
        ("file:///etc/passwd", r"not http\(s\)"),
        (f"http://user:pw@{PUBLIC}:{PORT}/", "carries credentials"),
    ],
)
def test_webhook_refuses_before_resolving(webhook_net: WebhookNet, tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(OutboundRefused, match=message):
        post(webhook_net, settings(tmp_path), url)
    assert webhook_net.accepts_on_traps() == 0
    assert webhook_net.public.accepts == []


def test_webhook_https_verifies_the_certificate(webhook_net: WebhookNet, tmp_path: Path) -> None:
    url = f"https://{PUBLIC}:8443/hook"
    with pytest.raises(ActionError, match=r"TLS with .* failed"):
        post(webhook_net, settings(tmp_path), url)  # self-signed, not in the system's CAs
    assert webhook_net.public_tls.posted == []
    output = post(webhook_net, settings(tmp_path, ca_file=webhook_net.ca_file), url)
    assert output["status"] == 200
    assert webhook_net.public_tls.posted[0]["json"] == {"alert": "a1", "msg": "Tấn công"}


def test_webhook_plain_http_needs_the_switch(webhook_net: WebhookNet, tmp_path: Path) -> None:
    with pytest.raises(OutboundRefused, match="plain http"):
        post(webhook_net, settings(tmp_path, allow_plain_http=False), f"http://{PUBLIC}:{PORT}/")
    assert webhook_net.public.accepts == []


def test_webhook_dry_run_connects_nowhere(webhook_net: WebhookNet, tmp_path: Path) -> None:
    output = post(webhook_net, settings(tmp_path), f"http://{PUBLIC}:{PORT}/hook", dry_run=True)
    assert output["dry_run"] is True
    assert webhook_net.public.accepts == []


def test_webhook_url_prefix_allowlist(tmp_path: Path) -> None:
    config = Settings(data_dir=tmp_path, playbooks={"webhook": {"allow": ["https://hooks.example.org/soc"]}})
    check_allowed(parse_target("https://hooks.example.org/soc/alerts"), config.playbooks.webhook)
    check_allowed(parse_target("https://hooks.example.org/soc"), config.playbooks.webhook)
    for url in (
        "https://hooks.example.org/soc-other",
        "https://hooks.example.org.evil.test/soc/",
        "https://hooks.example.org:8443/soc/",
    ):
        with pytest.raises(OutboundRefused, match="allowlist"):
            check_allowed(parse_target(url), config.playbooks.webhook)
