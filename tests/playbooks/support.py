"""Helpers for the action tests: a run context, a self-signed certificate, a network namespace
with public-looking and private addresses, and HTTP listeners that count every connection they
accept (so a refused webhook can be shown to have made none)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from playbooks.actions.base import ActionContext
from soc_core.config import Settings
from soc_core.store import Store
from tests.support.netns import in_netns, ip


def context(
    settings: Settings, store: Store, *, dry_run: bool = False, tenant: str = "police", language: str = "vi"
) -> ActionContext:
    return ActionContext(
        run_id="run-" + uuid.uuid4().hex[:8],
        step_id="step1",
        tenant=tenant,
        dry_run=dry_run,
        settings=settings,
        store=store,
        language=language,
    )


def self_signed(directory: Path, *, host: str) -> tuple[Path, Path]:
    """A certificate for ``host`` (a name or an address) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{host}.crt", directory / f"{host}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@dataclass
class Listener:
    """An HTTP server counting accepted connections and keeping the JSON bodies posted to it.
    ``/redirect`` answers 302 to ``redirect_to``."""

    server: ThreadingHTTPServer
    accepts: list[str] = field(default_factory=list)
    posted: list[Any] = field(default_factory=list)
    redirect_to: str = ""


class _CountingServer(ThreadingHTTPServer):
    listener: Listener
    daemon_threads = True

    def get_request(self) -> Any:
        request = super().get_request()
        self.listener.accepts.append(str(request[1][0]))
        return request


class _Handler(BaseHTTPRequestHandler):
    server: _CountingServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        listener = self.server.listener
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", listener.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        listener.posted.append({"path": self.path, "host": self.headers.get("Host"), "json": json.loads(body)})
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        return


class _CountingServer6(_CountingServer):
    address_family = socket.AF_INET6


def listen(address: str, port: int, *, tls: tuple[Path, Path] | None = None) -> Listener:
    """Start a listener (in the calling thread's network namespace)."""
    server_class = _CountingServer6 if ":" in address else _CountingServer
    server = server_class((address, port), _Handler)
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        # the handshake happens when the handler starts reading, in the handler's thread
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    listener = Listener(server)
    server.listener = listener
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return listener


@contextmanager
def namespace(addresses: list[str]) -> Iterator[str]:
    """A fresh network namespace with ``lo`` up holding ``addresses`` too (CIDR forms; on ``lo``
    because containers often lack the dummy link type). Yields its name; everything made in it
    disappears with it."""
    name = "cgpb" + uuid.uuid4().hex[:8]
    try:
        ip("netns", "add", name)
        ip("-n", name, "link", "set", "lo", "up")
        for address in addresses:
            ip("-n", name, "addr", "add", address, "dev", "lo")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


__all__ = ["Listener", "context", "in_netns", "listen", "namespace", "self_signed"]
