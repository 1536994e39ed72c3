"""FortiGate-style ``key=value`` firewall logs → ``fortinet.firewall`` events.

A line is a run of ``key=value`` pairs (values bare or in double quotes, ``\\"`` escaped),
optionally after a syslog header, as FortiGate (and FortiOS-like devices) send them::

    <189>date=2024-02-05 time=10:00:00 devname="FGT60E" devid="FGT60E0000000001" logid="0000000013"
    type="traffic" subtype="forward" level="notice" vd="root" tz="+0700" srcip=10.0.0.5
    srcport=52344 srcintf="port1" dstip=8.8.8.8 dstport=53 dstintf="wan1" policyid=1
    policyname="LAN-to-WAN" action="accept" proto=17 service="DNS" sentbyte=60 rcvdbyte=120

Known keys become ECS fields (``source.ip/port``, ``destination.ip/port``,
``network.transport``, ``event.action``, ``rule.name``, ``observer.*`` …); every pair is also
kept as ``fortinet.firewall.<key>``. A line needs ``date``/``time`` or ``logid`` or ``devname``
to count as a firewall log.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from sensors.parsers.context import Fields, ParseContext
from sensors.parsers.syslog import escape_control
from soc_core.errors import ParseError

DATASET = "fortinet.firewall"

_PAIR = re.compile(r'([A-Za-z_][\w.-]{0,63})=("(?:[^"\\]|\\.)*"|[^\s"]*)')
_UNESCAPE = re.compile(r"\\(.)")
_PRI = re.compile(r"^<\d{1,3}>(?:\d )?")
_TZ = re.compile(r"^([+-])(\d{2}):?(\d{2})$")
_REQUIRED = ("logid", "devname", "date")
TRANSPORTS = {"1": "icmp", "6": "tcp", "17": "udp", "58": "ipv6-icmp", "47": "gre", "50": "esp", "132": "sctp"}
DENIED = frozenset({"deny", "block", "blocked", "drop", "dropped", "reject", "close-deny", "server-rst", "client-rst"})
_STRINGS = {
    "srcip": "source.ip",
    "dstip": "destination.ip",
    "srcmac": "source.mac",
    "dstmac": "destination.mac",
    "transip": "source.nat.ip",
    "policyname": "rule.name",
    "policyid": "rule.id",
    "devname": "observer.hostname",
    "devid": "observer.serial_number",
    "srcintf": "observer.ingress.interface.name",
    "dstintf": "observer.egress.interface.name",
    "service": "network.protocol",
    "user": "source.user.name",
    "srcname": "source.domain",
    "hostname": "url.domain",
    "url": "url.original",
    "msg": "message",
    "logid": "event.code",
    "level": "log.level",
    "sessionid": "network.session_id",
    "attack": "rule.description",
    "virus": "file.name",
}
_NUMBERS = {
    "srcport": "source.port",
    "dstport": "destination.port",
    "transport": "source.nat.port",
    "sentbyte": "source.bytes",
    "rcvdbyte": "destination.bytes",
    "sentpkt": "source.packets",
    "rcvdpkt": "destination.packets",
    "duration": "event.duration_seconds",
}


def pairs(text: str) -> dict[str, str]:
    """The ``key=value`` pairs of a line, unquoted; later keys win."""
    found: dict[str, str] = {}
    for key, raw in _PAIR.findall(text):
        found[key] = _UNESCAPE.sub(r"\1", raw[1:-1]) if raw.startswith('"') else raw
    return found


def parse(line: str, ctx: ParseContext) -> Fields:
    text = _PRI.sub("", line.rstrip("\r\n"), count=1)
    values = pairs(text)
    if not any(key in values for key in _REQUIRED):
        raise ParseError("not a key=value firewall log (no logid, devname or date)")
    fields: Fields = {
        "event.dataset": DATASET,
        "event.module": "fortinet",
        "event.category": ["network"],
        "observer.vendor": "Fortinet",
        "observer.product": "FortiGate",
        "observer.type": "firewall",
    }
    for key, value in values.items():
        fields[f"fortinet.firewall.{key}"] = escape_control(value)
    for key, target in _STRINGS.items():
        if values.get(key) not in (None, "", "N/A"):
            fields[target] = escape_control(values[key])
    for key, target in _NUMBERS.items():
        if values.get(key, "").isdigit():
            fields[target] = int(values[key])
    if "event.duration_seconds" in fields:
        fields["event.duration"] = fields.pop("event.duration_seconds") * 1_000_000_000
    proto = values.get("proto", "")
    if proto.isdigit():
        fields["network.iana_number"] = proto
        fields["network.transport"] = TRANSPORTS.get(proto, proto)
    if "network.protocol" in fields:
        fields["network.protocol"] = fields["network.protocol"].lower()
    action = values.get("action")
    if action:
        fields["event.action"] = escape_control(action)
        denied = action.lower() in DENIED
        fields["event.outcome"] = "failure" if denied else "success"
        fields["event.type"] = ["connection", "denied" if denied else "allowed"]
    if values.get("type"):
        fields["event.kind"] = "alert" if values["type"] in ("utm", "anomaly", "ips") else "event"
    stamp = _timestamp(values, ctx)
    if stamp is not None:
        fields["@timestamp"] = stamp
    return fields


def _timestamp(values: dict[str, str], ctx: ParseContext) -> datetime | None:
    date, clock = values.get("date"), values.get("time")
    if not date or not clock:
        return None
    try:
        moment = datetime.fromisoformat(f"{date}T{clock}")
    except ValueError as exc:
        raise ParseError(f"bad date/time {date!r} {clock!r}: {exc}") from exc
    zone = _TZ.match(values.get("tz", ""))
    if zone:
        sign = -1 if zone.group(1) == "-" else 1
        offset = timedelta(hours=int(zone.group(2)), minutes=int(zone.group(3)))
        if offset < timedelta(hours=24):
            return moment.replace(tzinfo=timezone(sign * offset))
    return moment.replace(tzinfo=ctx.tz)


__all__ = ["DATASET", "pairs", "parse"]
