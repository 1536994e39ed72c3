"""The indicator model and the normalisation every parser and every lookup share.

An indicator is one (type, value) with where it came from and how sure the source is. Values are
normalised once, on the way in, so the lookup compares plain strings:

* ``ip`` — an address or a network, parsed strictly (``ipaddress``: no leading zeros, no host
  bits set in a network); written in its canonical form (``2001:db8::1``, ``10.0.0.0/8``). A /32
  (/128) network is the address itself.
* ``domain`` — lower case, IDNA (``xn--``) form, no trailing dot; letters, digits, ``-`` and
  ``_`` labels of at most 63 characters.
* ``url`` — an http(s)/ftp URL with a host; scheme and host lower-cased, the rest kept.
* ``md5`` / ``sha1`` / ``sha256`` — lower hex of 32 / 40 / 64 digits; a ``hash`` of unknown
  kind takes its type from its length.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from soc_core.errors import ParseError
from soc_core.events import check_tenant_id, format_timestamp, parse_timestamp

IndicatorType = Literal["ip", "domain", "url", "md5", "sha1", "sha256"]
INDICATOR_TYPES: tuple[IndicatorType, ...] = ("ip", "domain", "url", "md5", "sha1", "sha256")
HASH_BY_LENGTH: dict[int, IndicatorType] = {32: "md5", 40: "sha1", 64: "sha256"}
HEX = re.compile(r"^[0-9a-f]+$")
LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
LIST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PROVINCE_WIDE = "*"
DEFAULT_CONFIDENCE = 50
MAX_VALUE_LENGTH = 2048


@dataclass(frozen=True)
class Indicator:
    """One normalised indicator of a list. ``first_seen``/``last_seen`` are ECS timestamps (the
    source's when it gives them, else the import time)."""

    type: IndicatorType
    value: str
    confidence: int = DEFAULT_CONFIDENCE
    first_seen: str | None = None
    last_seen: str | None = None
    source: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.type, self.value)

    def to_dict(self) -> dict[str, object]:
        return {
            "type": self.type,
            "value": self.value,
            "confidence": self.confidence,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Indicator:
        kind = next((known for known in INDICATOR_TYPES if known == data["type"]), None)
        if kind is None:
            raise ValueError(f"unknown indicator type {data['type']!r}")
        confidence = data.get("confidence")
        return cls(
            type=kind,
            value=str(data["value"]),
            confidence=int(confidence) if isinstance(confidence, int | str) else DEFAULT_CONFIDENCE,
            first_seen=_text_or_none(data.get("first_seen")),
            last_seen=_text_or_none(data.get("last_seen")),
            source=_text_or_none(data.get("source")),
        )

    def stamped(self, now: str) -> Indicator:
        """With the import time where the source gave no dates."""
        first = self.first_seen or now
        return replace(self, first_seen=first, last_seen=self.last_seen or first)


def _text_or_none(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def normalise(kind: str, value: str) -> tuple[IndicatorType, str]:
    """``(type, value)`` in canonical form; ``ValueError`` says what is wrong with it."""
    text = value.strip()
    if not text:
        raise ValueError("empty value")
    if len(text) > MAX_VALUE_LENGTH:
        raise ValueError(f"value longer than {MAX_VALUE_LENGTH} characters")
    kind = kind.strip().lower()
    if kind == "ip":
        return "ip", normalise_ip(text)
    if kind == "domain":
        return "domain", normalise_domain(text)
    if kind == "url":
        return "url", normalise_url(text)
    if kind in ("hash", "md5", "sha1", "sha256"):
        digest = text.lower()
        if not HEX.match(digest) or len(digest) not in HASH_BY_LENGTH:
            raise ValueError(f"{text!r} is not a hex MD5, SHA-1 or SHA-256 digest")
        found = HASH_BY_LENGTH[len(digest)]
        if kind not in ("hash", found):
            raise ValueError(f"{text!r} has {len(digest)} hex digits, which is {found}, not {kind}")
        return found, digest
    raise ValueError(f"unknown indicator type {kind!r} (use one of ip, domain, url, md5, sha1, sha256, hash)")


def normalise_ip(text: str) -> str:
    try:
        if "/" in text:
            network = ipaddress.ip_network(text, strict=True)
            if network.prefixlen == network.max_prefixlen:
                return str(network.network_address)
            return str(network)
        return str(ipaddress.ip_address(text))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an IP address or network: {exc}") from exc


def normalise_domain(text: str) -> str:
    name = text.strip().rstrip(".").lower()
    if not name or "." not in name:
        raise ValueError(f"{text!r} is not a domain name (it needs a dot)")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        raise ValueError(f"{text!r} is an IP address, not a domain name")
    try:
        ascii_name = name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError as exc:
        raise ValueError(f"{text!r} is not a valid internationalised domain name: {exc}") from exc
    if len(ascii_name) > 253 or not all(LABEL.match(label) for label in ascii_name.split(".")):
        raise ValueError(f"{text!r} is not a domain name (labels of letters, digits, - and _, 63 at most)")
    return ascii_name


def normalise_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https", "ftp") or not parts.hostname:
        raise ValueError(f"{text!r} is not an http(s) or ftp URL with a host")
    if any(ch.isspace() for ch in text):
        raise ValueError(f"{text!r} has spaces in it")
    host = parts.hostname
    try:
        host = normalise_ip(host.strip("[]"))
        host = f"[{host}]" if ":" in host else host
    except ValueError:
        host = normalise_domain(host) if "." in host else host.lower()
    netloc = host + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))


def url_domain(url: str) -> str | None:
    """The host of a normalised URL when it is a name (for matching URL events by domain)."""
    host = urlsplit(url).hostname
    if not host:
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host
    return None


def normalise_time(value: object) -> str | None:
    """An ECS timestamp from an ISO-8601 string or epoch seconds (MISP), or None if absent;
    ``ValueError`` if present and unreadable."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) or (isinstance(value, str) and value.strip().isdigit()):
        return format_timestamp(datetime.fromtimestamp(int(value), tz=UTC))
    text = str(value).strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        text += "T00:00:00Z"
    try:
        return format_timestamp(parse_timestamp(text))
    except ParseError as exc:
        raise ValueError(f"{value!r} is not a timestamp (ISO 8601 or epoch seconds)") from exc


def normalise_confidence(value: object) -> int:
    """0–100; ``ValueError`` outside that."""
    if value is None or value == "":
        return DEFAULT_CONFIDENCE
    try:
        number = int(str(value).strip())
    except ValueError as exc:
        raise ValueError(f"confidence {value!r} is not a whole number 0-100") from exc
    if not 0 <= number <= 100:
        raise ValueError(f"confidence {number} is outside 0-100")
    return number


def check_list_name(name: str) -> str:
    if not LIST_NAME.match(name):
        raise ValueError(
            f"list name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def check_scope(tenant: str) -> str:
    """An agency id, or ``*`` for a province-wide list."""
    return tenant if tenant == PROVINCE_WIDE else check_tenant_id(tenant)


def level_for(confidence: int) -> str:
    """The alert level an indicator of this confidence raises."""
    if confidence >= 90:
        return "critical"
    if confidence >= 70:
        return "high"
    if confidence >= 40:
        return "medium"
    return "low"


__all__ = [
    "DEFAULT_CONFIDENCE",
    "INDICATOR_TYPES",
    "PROVINCE_WIDE",
    "Indicator",
    "IndicatorType",
    "check_list_name",
    "check_scope",
    "level_for",
    "normalise",
    "normalise_confidence",
    "normalise_domain",
    "normalise_ip",
    "normalise_time",
    "normalise_url",
    "url_domain",
]
