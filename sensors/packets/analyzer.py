"""The pure core of the network sensor: frames in, event records and counters out.

:class:`PacketAnalyzer` takes ``(timestamp, frame, wire length, link type, position)`` and
keeps flows, ARP bindings and pending HTTP/TLS state. It does no I/O: what it finds is appended
to ``records`` for the sensor to turn into events (see :mod:`sensors.netsensor`).

Every frame ends in exactly one of the counters ``decoded``, ``unsupported`` (well-formed, a
protocol we do not analyse) or ``decode_errors`` (malformed). The first few malformed frames of
each reporting interval are also kept as records (dataset ``network.packet`` with the reason),
so failures are stored without letting a flood of garbage flood the store.
"""

from __future__ import annotations

import logging
import socket
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sensors.packets.arp import ArpBindings, mac_text
from sensors.packets.community_id import community_id, icmp_ports
from sensors.packets.decode import (
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_TCP,
    PROTO_UDP,
    TRANSPORT_NAMES,
    DecodeError,
    Packet,
    Unsupported,
    decode_frame,
)
from sensors.packets.dns import parse_dns
from sensors.packets.flows import Flow, FlowRecord, FlowTable, flag_names
from sensors.packets.http import looks_like_head
from sensors.packets.httpstream import HttpStream
from sensors.packets.tls import MAX_HELLO, parse_client_hello, parse_server_hello, record_length

log = logging.getLogger(__name__)

DNS_PORTS = frozenset({53, 5353, 5355})
MAX_PENDING_HTTP = 256  # requests awaiting their responses on one connection (pipelining)
COUNTERS = ("packets", "bytes", "decoded", "unsupported", "decode_errors", "fragments", "dns_messages",
            "dns_errors", "http_messages", "http_errors", "http_resyncs", "tls_hellos", "tls_errors",
            "analyzer_errors")  # fmt: skip


@dataclass(frozen=True)
class AnalyzerOptions:
    max_flows: int = 100_000
    idle_timeout: float = 60.0
    active_timeout: float = 300.0
    closed_timeout: float = 5.0
    max_arp_bindings: int = 65_536
    error_records_per_interval: int = 10


class Record(NamedTuple):
    """What becomes one event: dataset, packet time, ECS fields, and identity for the id."""

    dataset: str
    timestamp: float
    fields: dict[str, Any]
    raw: bytes
    position: str


def _strip_dns_length(payload: bytes) -> bytes:
    """DNS over TCP prefixes each message with its length, sometimes in a segment of its own."""
    if ((payload[0] << 8) | payload[1]) == len(payload) - 2:
        return payload[2:]
    return payload


def _client_side(fields: dict[str, Any]) -> dict[str, Any]:
    """Fields of a server's packet turned to the client's side: ``source`` is the client."""
    swapped = dict(fields)
    for name in ("ip", "port"):
        if f"source.{name}" in fields:
            swapped[f"source.{name}"], swapped[f"destination.{name}"] = (
                fields[f"destination.{name}"],
                fields[f"source.{name}"],
            )
    return swapped


def ip_text(address: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(address) == 4 else socket.AF_INET6, address)


def iso(moment: float) -> str:
    stamp = datetime.fromtimestamp(moment, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class PacketAnalyzer:
    """Decode frames, track flows, extract DNS/HTTP/TLS/ARP; see the module docstring."""

    def __init__(self, options: AnalyzerOptions | None = None) -> None:
        self.options = options or AnalyzerOptions()
        opts = self.options
        self.records: list[Record] = []
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.flows = FlowTable(
            max_flows=opts.max_flows,
            idle_timeout=opts.idle_timeout,
            active_timeout=opts.active_timeout,
            closed_timeout=opts.closed_timeout,
            on_end=self._flow_ended,
        )
        self.arp = ArpBindings(max_entries=opts.max_arp_bindings)
        self._error_budget = opts.error_records_per_interval
        self.last_time = 0.0

    # ------------------------------------------------------------------------ intake
    def feed(self, moment: float, frame: bytes, wire_len: int, linktype: int, position: int) -> None:
        """Account for one captured frame (never raises for bad input)."""
        counters = self.counters
        counters["packets"] += 1
        counters["bytes"] += wire_len
        self.last_time = max(self.last_time, moment)
        try:
            packet = decode_frame(frame, linktype)
        except DecodeError as exc:
            counters["decode_errors"] += 1
            self._error_record(moment, frame, position, exc.message)
            return
        except Unsupported:
            counters["unsupported"] += 1
            return
        counters["decoded"] += 1
        try:
            if packet.kind == "arp":
                self._arp(moment, packet, frame, position)
            else:
                self._ip(moment, packet, frame, wire_len, position)
        except Exception as exc:  # an analyser bug must cost one packet, not the sensor
            counters["analyzer_errors"] += 1
            log.exception("analysing packet %d failed", position)
            self._error_record(moment, frame, position, f"analyser failed: {exc!r}")

    def _ip(self, moment: float, packet: Packet, frame: bytes, wire_len: int, position: int) -> None:
        proto = packet.proto
        if packet.fragment:
            self.counters["fragments"] += 1
            if packet.fragment == 2:
                return  # a later fragment: no ports to tell which flow it belongs to
        sport, dport = packet.sport, packet.dport
        if proto in (PROTO_ICMP, PROTO_ICMPV6):
            sport, dport, _ = icmp_ports(proto, packet.icmp_type, packet.icmp_code)
        flow, forward = self.flows.update(
            moment, packet.src, packet.dst, sport, dport, proto, wire_len, packet.tcp_flags, position
        )
        if packet.vlan is not None:
            flow.vlan = packet.vlan
        if packet.icmp_type >= 0 and flow.icmp is None:
            flow.icmp = (packet.icmp_type, packet.icmp_code)
        start, end = packet.payload_offset, packet.payload_end
        if start >= end:
            return
        if proto == PROTO_UDP:
            if sport in DNS_PORTS or dport in DNS_PORTS:
                self._dns(moment, packet, flow, frame[start:end], position)
        elif proto == PROTO_TCP:
            if sport == 53 or dport == 53:
                if end - start >= 12:
                    self._dns(moment, packet, flow, _strip_dns_length(frame[start:end]), position)
                return
            first = frame[start]
            if flow.app is None and first != 0x16 and not 0x41 <= first <= 0x5A:
                return  # neither a TLS record nor an HTTP head, and nothing pending
            self._tcp_payload(moment, packet, flow, forward, frame[start:end], position)

    # ----------------------------------------------------------------------- protocols
    def _app(self, flow: Flow) -> dict[str, Any]:
        if flow.app is None:
            flow.app = {}
        return flow.app

    def _base(self, packet: Packet, flow: Flow) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "source.ip": ip_text(packet.src),
            "destination.ip": ip_text(packet.dst),
            "network.transport": TRANSPORT_NAMES.get(packet.proto, str(packet.proto)),
            "network.type": "ipv4" if len(packet.src) == 4 else "ipv6",
            "network.community_id": self._community_id(flow),
            "event.category": ["network"],
            "event.type": ["protocol"],
        }
        if packet.proto in (PROTO_TCP, PROTO_UDP):
            fields["source.port"] = packet.sport
            fields["destination.port"] = packet.dport
        if flow.vlan is not None:
            fields["network.vlan.id"] = str(flow.vlan)
        return fields

    def _dns(self, moment: float, packet: Packet, flow: Flow, payload: bytes, position: int) -> None:
        self._app(flow)["protocol"] = "dns"
        try:
            dns = parse_dns(payload)
        except DecodeError as exc:
            self.counters["dns_errors"] += 1
            self._error_record(moment, payload, position, f"DNS: {exc.message}")
            return
        self.counters["dns_messages"] += 1
        fields = self._base(packet, flow)
        fields.update(dns)
        fields["network.protocol"] = "dns"
        fields["event.action"] = "dns-" + dns["dns.type"]
        self.records.append(Record("network.dns", moment, fields, payload, f"dns:{position}"))

    def _tcp_payload(  # noqa: PLR0917 - private, once per payload segment
        self, moment: float, packet: Packet, flow: Flow, forward: bool, payload: bytes, position: int
    ) -> None:
        app = self._app(flow)
        protocol = app.get("protocol")
        if protocol != "http":
            buffered = app.get("tls_buffer")
            if forward and isinstance(buffered, bytes):
                expected = app["tls_next"]
                if packet.seq != expected:  # a retransmission, or a gap the hello cannot bridge
                    if (packet.seq - expected) & 0xFFFF_FFFF < 0x8000_0000:
                        app.pop("tls_buffer")
                    return
                payload = buffered + payload
            if payload[0] == 0x16 or isinstance(buffered, bytes):
                app["tls_next"] = (packet.seq + len(payload) - len(buffered or b"")) & 0xFFFF_FFFF
                self._tls(moment, packet, flow, app, forward, payload, position)
                return
            if protocol == "tls" or not looks_like_head(payload):
                return
            app["protocol"] = "http"
        self._http(moment, packet, flow, app, forward, payload, position)

    def _http(  # noqa: PLR0917 - private, once per HTTP segment
        self, moment: float, packet: Packet, flow: Flow, app: dict[str, Any], forward: bool, payload: bytes,
        position: int,
    ) -> None:  # fmt: skip
        streams: dict[bool, HttpStream] = app.setdefault("http_streams", {})
        stream = streams.get(forward)
        if stream is None:
            stream = streams[forward] = HttpStream()
        pending: deque[tuple[float, dict[str, Any], str]] = app.setdefault("http", deque())
        resyncs = stream.resyncs
        heads = stream.feed(packet.seq, payload, lambda: pending[0][1].get("http.request.method") if pending else None)
        self.counters["http_resyncs"] += stream.resyncs - resyncs
        for index, http in enumerate(heads):
            self.counters["http_messages"] += 1
            # Several messages in one segment (pipelining): the first keeps the packet's own key.
            key = str(position) if index == 0 else f"{position}.{index}"
            if "http.request.method" in http:
                fields = self._base(packet, flow)
                fields.update(http)
                if len(pending) >= MAX_PENDING_HTTP:
                    self._emit_http(*pending.popleft())
                pending.append((moment, fields, key))
            elif pending:  # responses answer the requests in the order they were sent
                request_time, fields, request_key = pending.popleft()
                fields.update(http)
                self._emit_http(request_time, fields, request_key)
            else:  # a response whose request we did not see (capture started mid-connection)
                fields = _client_side(self._base(packet, flow))
                fields.update(http)
                self._emit_http(moment, fields, key, action="http-response")

    def _emit_http(self, moment: float, fields: dict[str, Any], key: str, *, action: str = "http-request") -> None:
        fields["network.protocol"] = "http"
        fields["event.action"] = action
        raw = repr(sorted(fields.items())).encode()
        self.records.append(Record("network.http", moment, fields, raw, f"http:{key}"))

    def _tls(  # noqa: PLR0917 - private, once per TLS record
        self, moment: float, packet: Packet, flow: Flow, app: dict[str, Any], forward: bool, data: bytes, position: int
    ) -> None:
        needed = record_length(data)
        if needed is None or len(data) < 6:
            app.pop("tls_buffer", None)
            return
        kind = data[5]
        if forward and kind == 1 and "tls" not in app:
            if len(data) < needed and len(data) < MAX_HELLO:
                app["tls_buffer"] = data  # the rest of the ClientHello is in the next segment(s)
                return
            app.pop("tls_buffer", None)
            app["protocol"] = "tls"
            try:
                hello = parse_client_hello(data)
            except (DecodeError, IndexError) as exc:
                self.counters["tls_errors"] += 1
                self._error_record(moment, data, position, f"TLS ClientHello: {exc}")
                app["tls"] = None
                return
            self.counters["tls_hellos"] += 1
            fields = self._base(packet, flow)
            fields.update(hello)
            app["tls"] = (moment, fields, position)
        elif not forward and kind == 2 and app.get("tls"):
            try:
                server = parse_server_hello(data)
            except (DecodeError, IndexError) as exc:
                self.counters["tls_errors"] += 1
                self._error_record(moment, data, position, f"TLS ServerHello: {exc}")
                server = {}
            hello_time, fields, hello_position = app["tls"]
            fields.update(server)
            self._emit_tls(hello_time, fields, hello_position)
            app["tls"] = None

    def _emit_tls(self, moment: float, fields: dict[str, Any], position: int) -> None:
        fields["network.protocol"] = "tls"
        fields["event.action"] = "tls-client-hello"
        raw = repr(sorted(fields.items())).encode()
        self.records.append(Record("network.tls", moment, fields, raw, f"tls:{position}"))

    def _arp(self, moment: float, packet: Packet, frame: bytes, position: int) -> None:
        change = self.arp.observe(packet.src, packet.eth_src)
        if change is None:
            return
        fields: dict[str, Any] = {
            "source.ip": ip_text(packet.src),
            "source.mac": mac_text(packet.eth_src),
            "destination.ip": ip_text(packet.dst),
            "network.type": "ipv4",
            "network.protocol": "arp",
            "network.arp.operation": {1: "request", 2: "reply"}.get(packet.arp_op, str(packet.arp_op)),
            "event.category": ["network"],
        }
        fields.update(change)
        self.records.append(Record("network.arp", moment, fields, frame, f"arp:{position}"))

    # --------------------------------------------------------------------------- flows
    def _community_id(self, flow: Flow) -> str:
        src, dst, sport, dport, proto = flow.key
        if flow.icmp is not None:
            sport, dport, one_way = icmp_ports(proto, *flow.icmp)
            return community_id(src, dst, proto, sport, dport, one_way=one_way)
        return community_id(src, dst, proto, sport, dport)

    def _flow_ended(self, record: FlowRecord) -> None:
        flow = record.flow
        src, dst, sport, dport, proto = flow.key
        app = flow.app
        if app:
            tls = app.get("tls")
            if tls:  # a ClientHello the server never answered
                self._emit_tls(*tls)
            for pending in app.get("http", ()):
                self._emit_http(*pending)
        fields: dict[str, Any] = {
            "source.ip": ip_text(src),
            "destination.ip": ip_text(dst),
            "source.packets": flow.orig_packets,
            "source.bytes": flow.orig_bytes,
            "destination.packets": flow.resp_packets,
            "destination.bytes": flow.resp_bytes,
            "network.packets": flow.orig_packets + flow.resp_packets,
            "network.bytes": flow.orig_bytes + flow.resp_bytes,
            "network.transport": TRANSPORT_NAMES.get(proto, str(proto)),
            "network.iana_number": str(proto),
            "network.type": "ipv4" if len(src) == 4 else "ipv6",
            "network.community_id": self._community_id(flow),
            "event.start": iso(flow.start),
            "event.end": iso(flow.end),
            "event.duration": round((flow.end - flow.start) * 1e9),
            "event.category": ["network"],
            "event.type": ["connection", "end"],
            "event.action": "network-flow",
            "event.reason": record.reason,
        }
        if flow.icmp is not None:
            fields["icmp.type"], fields["icmp.code"] = flow.icmp
        elif proto in (PROTO_TCP, PROTO_UDP, 132):
            fields["source.port"] = sport
            fields["destination.port"] = dport
        if proto == PROTO_TCP:
            fields["source.tcp_flags"] = flag_names(flow.orig_flags)
            fields["destination.tcp_flags"] = flag_names(flow.resp_flags)
        if app and app.get("protocol"):
            fields["network.protocol"] = app["protocol"]
        if flow.vlan is not None:
            fields["network.vlan.id"] = str(flow.vlan)
        raw = src + dst + f"{sport}:{dport}:{proto}:{flow.start!r}".encode()
        self.records.append(Record("network.flow", flow.end, fields, raw, f"flow:{flow.position}"))

    # ------------------------------------------------------------------------ failures
    def _error_record(self, moment: float, data: bytes, position: int, reason: str) -> None:
        if self._error_budget <= 0:
            return
        self._error_budget -= 1
        fields = {
            "event.original": data[:2048].hex(),
            "error.message": reason,
            "tags": ["parse_failure"],
            "event.category": ["network"],
        }
        self.records.append(Record("network.packet", moment, fields, data, f"error:{position}"))

    # ------------------------------------------------------------------------- control
    def new_interval(self) -> None:
        """Start a reporting interval: refill the budget of stored decode failures."""
        self._error_budget = self.options.error_records_per_interval

    def expire(self, moment: float) -> None:
        """Let flow timeouts pass when no packet moves the clock (live capture idling)."""
        self.flows.expire(moment)

    def flush(self) -> None:
        """End every flow and emit every pending record (stop, or end of a pcap)."""
        self.flows.flush()

    def drain(self) -> list[Record]:
        records, self.records = self.records, []
        return records

    def stats(self) -> dict[str, int]:
        stats = dict(self.counters)
        stats.update(self.flows.stats)
        stats.update(self.arp.stats)
        stats["flows_active"] = len(self.flows)
        return stats


__all__ = ["COUNTERS", "AnalyzerOptions", "PacketAnalyzer", "Record", "ip_text", "iso"]
