"""Item 2 of the actions brief: the ``email`` action against a real SMTP server (aiosmtpd)
with STARTTLS under a certificate made here, and a password it checks."""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from playbooks.actions.base import ACTIONS, ActionError
from playbooks.actions.notify import Email, EmailParams
from soc_core.config import Settings
from soc_core.store import SqliteStore
from tests.playbooks.support import context, self_signed

HOST = "127.0.0.1"
USER, PASSWORD = "soc-relay", "canary-Pw-7f3a9c1e"
ALERT = {
    "id": "a-42",
    "tenant": "police",
    "rule.id": "ssh-brute-force",
    "rule.name": "SSH Brute Force",
    "rule.level": "high",
    "status": "new",
    "first_seen": "2026-12-06T02:00:00Z",
    "entities": {"source.ip": ["203.0.113.45"], "user.name": ["root"]},
}


@dataclass
class Inbox:
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        if ok:
            self.logins.append(USER)
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535 itself


@dataclass
class Relay:
    inbox: Inbox
    port: int
    ca_file: Path


def _free_port() -> int:
    # aiosmtpd's Controller checks it is up by connecting to the port it was given, so not 0
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _start(inbox: Inbox, tmp_path: Path, *, tls: bool) -> tuple[Controller, Path]:
    cert, key = self_signed(tmp_path, host=HOST)
    options: dict[str, Any] = {}
    if tls:
        server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_tls.load_cert_chain(str(cert), str(key))
        options = {"tls_context": server_tls, "require_starttls": True, "auth_require_tls": True}
    controller = Controller(
        inbox, hostname=HOST, port=_free_port(), authenticator=inbox.authenticate, auth_required=True, **options
    )
    controller.start()
    return controller, cert


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    inbox = Inbox()
    controller, cert = _start(inbox, tmp_path, tls=True)
    try:
        yield Relay(inbox, controller.port, cert)
    finally:
        controller.stop()


def settings(tmp_path: Path, relay: Relay, **smtp: object) -> Settings:
    values: dict[str, object] = {
        "host": HOST,
        "port": relay.port,
        "username": USER,
        "password": PASSWORD,
        "sender": "soc@tinh.gov.vn",
        "ca_file": relay.ca_file,
        **smtp,
    }
    return Settings(data_dir=tmp_path, playbooks={"smtp": values})


def send(config: Settings, params: EmailParams, *, language: str = "vi", dry_run: bool = False) -> dict[str, Any]:
    store = SqliteStore(config.sqlite_path)
    try:
        return dict(Email().run(context(config, store, dry_run=dry_run, language=language), params).output)
    finally:
        store.close()


def test_email_is_registered() -> None:
    assert ACTIONS["email"] is Email
    assert Email.idempotent is False


def test_email_arrives_in_vietnamese_by_default(relay: Relay, tmp_path: Path) -> None:
    output = send(settings(tmp_path, relay), EmailParams(to=["soc@congan.gov.vn"], alert=ALERT, note="Chặn IP?"))
    assert relay.inbox.logins == [USER]  # signed in, after STARTTLS (the server requires it)
    [message] = relay.inbox.messages
    assert relay.inbox.envelopes == [("soc@tinh.gov.vn", ["soc@congan.gov.vn"])]
    assert message["Subject"] == "[Canh Gác] Cảnh báo Cao: SSH Brute Force (police)"
    assert message["Content-Language"] == "vi"
    body = message.get_content()
    assert "Kính gửi đơn vị police," in body
    assert "Luật phát hiện: ssh-brute-force" in body
    assert "source.ip: 203.0.113.45" in body
    assert "Ghi chú: Chặn IP?" in body
    assert output["language"] == "vi" and output["subject"] == message["Subject"]
    assert PASSWORD not in repr(output)


def test_email_arrives_in_the_recipients_language(relay: Relay, tmp_path: Path) -> None:
    case = {"id": "c-7", "tenant": "health", "title": "Ransomware on HIS server", "severity": "critical"}
    send(settings(tmp_path, relay), EmailParams(to=["it@syt.gov.vn"], language="en", case=case))
    [message] = relay.inbox.messages
    assert message["Subject"] == "[Canh Gác] Critical case: Ransomware on HIS server (health)"
    assert message["Content-Language"] == "en"
    body = message.get_content()
    assert "Dear health team," in body and "Id: c-7" in body
    assert "Kính gửi" not in body


def test_email_run_language_is_used_when_the_step_names_none(relay: Relay, tmp_path: Path) -> None:
    send(settings(tmp_path, relay), EmailParams(to=["a@b.vn"], alert=ALERT), language="en")
    assert relay.inbox.messages[0]["Subject"] == "[Canh Gác] High alert: SSH Brute Force (police)"


def test_email_subject_cannot_inject_headers(relay: Relay, tmp_path: Path) -> None:
    hostile = {**ALERT, "rule.name": "x\r\nBcc: victim@evil.test"}
    send(settings(tmp_path, relay), EmailParams(to=["a@b.vn"], alert=hostile))
    [message] = relay.inbox.messages
    assert message["Bcc"] is None
    assert relay.inbox.envelopes[0][1] == ["a@b.vn"]


def test_s13_long_vietnamese_subject_keeps_every_space(relay: Relay, tmp_path: Path) -> None:
    """Python's own header folding dropped the space between two words where it folded a long
    subject ("3 cảnh báo mới" arrived as "3 cảnh báomới")."""
    title = (
        "Đăng nhập SSH thất bại liên tiếp từ 203.0.113.7 — Công an tỉnh Bình Định, 3 cảnh báo mới trong ngày hôm nay"
    )
    send(settings(tmp_path, relay), EmailParams(to=["a@b.vn"], alert={**ALERT, "rule.name": title}))
    [message] = relay.inbox.messages
    assert message["Subject"] == f"[Canh Gác] Cảnh báo Cao: {title} (police)"


def test_email_requires_starttls(tmp_path: Path) -> None:
    inbox = Inbox()
    controller, cert = _start(inbox, tmp_path, tls=False)
    try:
        relay = Relay(inbox, controller.port, cert)
        with pytest.raises(ActionError, match="does not offer STARTTLS"):
            send(settings(tmp_path, relay), EmailParams(to=["a@b.vn"], alert=ALERT))
    finally:
        controller.stop()
    assert inbox.messages == [] and inbox.logins == []


def test_email_verifies_the_relay_certificate(relay: Relay, tmp_path: Path) -> None:
    with pytest.raises(ActionError, match="TLS with the mail relay failed") as failed:
        send(settings(tmp_path, relay, ca_file=None), EmailParams(to=["a@b.vn"], alert=ALERT))
    assert relay.inbox.messages == [] and relay.inbox.logins == []
    assert PASSWORD not in str(failed.value)


def test_email_wrong_password_never_shows_the_password(relay: Relay, tmp_path: Path) -> None:
    wrong = "canary-Wrong-55aa"
    with pytest.raises(ActionError, match="refused the sign-in") as failed:
        send(settings(tmp_path, relay, password=wrong), EmailParams(to=["a@b.vn"], alert=ALERT))
    assert wrong not in str(failed.value) and wrong not in repr(failed.value.__dict__)
    assert relay.inbox.messages == []


def test_email_dry_run_sends_nothing(relay: Relay, tmp_path: Path) -> None:
    output = send(settings(tmp_path, relay), EmailParams(to=["a@b.vn"], alert=ALERT), dry_run=True)
    assert output["dry_run"] is True and output["subject"].startswith("[Canh Gác] Cảnh báo")
    assert relay.inbox.messages == [] and relay.inbox.logins == []


def test_email_bad_recipient_is_a_parameter_error() -> None:
    with pytest.raises(ValueError, match="not e-mail addresses"):
        EmailParams(to=["a@b.vn", "x\r\nBcc: y@z"])
