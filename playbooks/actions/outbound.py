"""Outbound HTTP for webhooks, safe against server-side request forgery.

A target must be on the configured allowlist, and every address its host resolves to must be a
public unicast address: private, loopback, link-local, multicast, unspecified, CGNAT, reserved,
and IPv6 forms that carry an IPv4 address (mapped, 6to4, Teredo, NAT64) are refused. The check
runs after DNS resolution and before connecting, and the connection goes to the vetted address
itself — the host is never resolved a second time, so a DNS answer that changes between the
check and the connect (rebinding) cannot steer it. Redirects are never followed (``http.client``
does not follow them, and a 3xx answer is an error); TLS certificates are verified against the
URL's host name.

The timeout is one deadline for the whole request — connect, TLS handshake, send and read — not a
limit per socket operation, which a receiver dripping its answer a byte at a time would never
reach: at the deadline the connection is shut down under whatever operation is waiting.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from playbooks.actions.base import ActionError
from soc_core.config import WebhookSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NAT64 = ipaddress.ip_network("64:ff9b::/96")
MAX_ANSWER_BYTES = 64 * 1024  # read (and keep) no more of an answer than this


class OutboundRefused(ActionError):
    """An outbound request was refused before any connection was made."""


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line


@dataclass(frozen=True)
class Answer:
    status: int
    address: str  # the address actually connected to
    body: bytes


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` may not be a webhook target, or None if it may."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6 address"
        if address.sixtofour is not None or address.teredo is not None or address in NAT64:
            return "an IPv6 address that embeds an IPv4 address (6to4, Teredo or NAT64)"
    checks = (
        (address.is_unspecified, "the unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address (shared/CGNAT or special-purpose)"),
    )
    return next((why for bad, why in checks if bad), None)


def parse_target(url: str) -> Target:
    """``url`` split into what a request needs; refuses other schemes, credentials in the URL
    and malformed ports."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        raise OutboundRefused(f"webhook URL {url!r} is not http(s)", hint="use an https:// URL")
    if parts.username is not None or parts.password is not None:
        raise OutboundRefused(
            f"webhook URL {url!r} carries credentials", hint="put secrets in configuration, not in the URL"
        )
    if not parts.hostname:
        raise OutboundRefused(f"webhook URL {url!r} names no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise OutboundRefused(f"webhook URL {url!r} has a bad port: {exc}") from exc
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if any(ch in path for ch in "\r\n "):
        raise OutboundRefused(f"webhook URL {url!r} has spaces or line breaks in its path")
    return Target(url=url, scheme=parts.scheme, host=parts.hostname.lower(), port=port, path=path)


def _prefix_allows(prefix: str, target: Target) -> bool:
    parts: SplitResult = urlsplit(prefix)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return False
    if (parts.scheme, (parts.hostname or "").lower(), port) != (target.scheme, target.host, target.port):
        return False
    base = parts.path or "/"
    # a prefix ``/soc`` allows ``/soc`` and ``/soc/…``, never ``/soc-other``
    return target.path == base or target.path.startswith(base if base.endswith("/") else base + "/")


def check_allowed(target: Target, settings: WebhookSettings) -> None:
    """The configured allowlist and scheme policy, before any name is resolved."""
    if target.scheme == "http" and not settings.allow_plain_http:
        raise OutboundRefused(
            f"webhook URL {target.url!r} is plain http",
            hint="use https, or set playbooks.webhook.allow_plain_http: true",
        )
    for entry in settings.allow:
        if ("://" in entry and _prefix_allows(entry, target)) or entry.lower().strip("[]") == target.host:
            return
    raise OutboundRefused(
        f"webhook target {target.host!r} is not on the allowlist",
        where="playbooks.webhook.allow",
        hint="add the host or a URL prefix there",
    )


def resolve_public(target: Target) -> IPAddress:
    """Resolve the host once; refuse it if ANY of its addresses is not public (a name that
    also points inside is not trusted), else the first address to connect to."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundRefused(f"webhook host {target.host!r} does not resolve: {exc}") from exc
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        why = refusal(address)
        if why is not None:
            raise OutboundRefused(
                f"webhook host {target.host!r} resolves to {address}, {why}",
                hint="webhooks go only to public addresses",
            )
        addresses.append(address)
    if not addresses:
        raise OutboundRefused(f"webhook host {target.host!r} has no address")
    return addresses[0]


class Deadline:
    """One time limit for a whole request. The connection is opened with what is left of it, then
    watched: when it runs out, a timer shuts the connection down, so the read or write waiting on
    it returns at once, and :meth:`check` turns whatever that returned into a timeout."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._watched: socket.socket | None = None
        self._timer: threading.Timer | None = None
        self.expired = False

    def remaining(self) -> float:
        left = self._end - time.monotonic()
        if left <= 0:
            self.expired = True
            self.check()
        return left

    def connect(self, address: str, port: int) -> socket.socket:
        """A connection to (address, port), opened within the time left and watched from then on."""
        sock = socket.create_connection((address, port), self.remaining())
        # a duplicate of the descriptor: TLS takes the socket object over (detach), the duplicate
        # still names the same connection, and shutting it down reaches every reader of it
        with self._lock:
            self._watched = sock.dup()
            self._timer = threading.Timer(max(self._end - time.monotonic(), 0.0), self._cut)
            self._timer.daemon = True
            self._timer.start()
        return sock

    def _cut(self) -> None:
        with self._lock:
            self.expired = True
            if self._watched is not None:
                with contextlib.suppress(OSError):  # closed by the other end already: nothing to cut
                    self._watched.shutdown(socket.SHUT_RDWR)

    def check(self) -> None:
        if self.expired:
            raise TimeoutError(f"no complete answer within {self.seconds:g} s (connect, send and read together)")

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            if self._watched is not None:
                self._watched.close()
                self._watched = None


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to a vetted address; the URL's host only names it (Host header)."""

    def __init__(self, target: Target, address: IPAddress, deadline: Deadline) -> None:
        super().__init__(target.host, target.port, timeout=deadline.seconds)
        self._address = str(address)
        self._deadline = deadline

    def connect(self) -> None:
        self.sock = self._deadline.connect(self._address, self.port)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """Connects to a vetted address and verifies the certificate against the URL's host."""

    def __init__(self, target: Target, address: IPAddress, deadline: Deadline, context: ssl.SSLContext) -> None:
        super().__init__(target.host, target.port, timeout=deadline.seconds, context=context)
        self._address = str(address)
        self._deadline = deadline
        self._tls = context

    def connect(self) -> None:
        raw = self._deadline.connect(self._address, self.port)
        try:
            self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)
        except OSError:  # ssl.SSLError included: a refused certificate closes the socket
            raw.close()
            raise


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def post_json(
    target: Target,
    address: IPAddress,
    body: bytes,
    settings: WebhookSettings,
    *,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """POST ``body`` to the pinned ``address``, all of it within ``settings.timeout_seconds``
    (a :class:`TimeoutError` past it), with ``headers`` added; no redirect is followed."""
    deadline = Deadline(settings.timeout_seconds)
    connection: http.client.HTTPConnection
    if target.scheme == "https":
        connection = _PinnedHTTPS(target, address, deadline, tls_context(settings.ca_file))
    else:
        connection = _PinnedHTTP(target, address, deadline)
    try:
        connection.request(
            "POST",
            target.path,
            body=body,
            headers={"Content-Type": "application/json", "User-Agent": "canhgac-playbooks", **(headers or {})},
        )
        response = connection.getresponse()
        answer = Answer(status=response.status, address=str(address), body=response.read(MAX_ANSWER_BYTES))
    except (OSError, http.client.HTTPException):
        deadline.check()  # cut at the deadline: say so, not what the cut connection looked like
        raise
    finally:
        connection.close()
        deadline.close()
    deadline.check()  # an answer that ended only because the connection was cut is not an answer
    return answer


__all__ = [
    "Answer",
    "Deadline",
    "OutboundRefused",
    "Target",
    "check_allowed",
    "parse_target",
    "post_json",
    "refusal",
    "resolve_public",
]
