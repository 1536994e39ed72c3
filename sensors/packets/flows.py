"""A bounded table of bidirectional flows with idle, active and close timeouts.

A flow is keyed by (src, dst, sport, dport, proto) in the direction of its first packet; a
packet of the other direction finds it by the reversed key. Flows are kept in last-seen order
(an ``OrderedDict``), so idle expiry and eviction both pop from the front in O(1).

A flow ends, and becomes a record, when

* it saw no packet for ``idle_timeout`` seconds (``end_reason`` ``idle``),
* it has lasted ``active_timeout`` seconds — the record is exported and counting restarts in a
  fresh flow, as NetFlow does, so long connections show up while they run (``active``),
* TCP saw a RST or a FIN from both sides, ``closed_timeout`` seconds ago — long enough to
  absorb the last ACK and retransmissions (``closed``),
* the table is full and it is the least recently seen flow (``evicted``, counted), or
* the sensor stops (``flush``).

A closed connection is remembered for ``idle_timeout`` seconds more: a FIN or ACK retransmitted
after it ended is counted (``late_packets``) on it instead of opening a reversed flow.

Time is packet time (capture timestamps), so a pcap expires flows the way live traffic would.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sensors.packets.decode import PROTO_TCP

FlowKey = tuple[bytes, bytes, int, int, int]

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
TCP_FLAG_NAMES = ((FIN, "FIN"), (SYN, "SYN"), (RST, "RST"), (PSH, "PSH"), (ACK, "ACK"), (URG, "URG"),
                  (ECE, "ECE"), (CWR, "CWR"))  # fmt: skip


def flag_names(flags: int) -> list[str]:
    return [name for bit, name in TCP_FLAG_NAMES if flags & bit]


class Flow:
    """Counters of one flow; ``orig`` is the side that sent the first packet seen."""

    __slots__ = (
        "app",
        "closed",
        "end",
        "fins",
        "icmp",
        "key",
        "orig_bytes",
        "orig_flags",
        "orig_packets",
        "position",
        "resp_bytes",
        "resp_flags",
        "resp_packets",
        "start",
        "vlan",
    )

    def __init__(self, key: FlowKey, start: float, position: int = 0) -> None:
        self.key = key
        self.start = start
        self.position = position  # index of the flow's first packet in its capture
        self.end = start
        self.orig_packets = self.orig_bytes = self.resp_packets = self.resp_bytes = 0
        self.orig_flags = self.resp_flags = 0
        self.fins = 0  # bit 1: originator sent FIN, bit 2: responder sent FIN
        self.closed = False
        self.icmp: tuple[int, int] | None = None
        self.vlan: int | None = None
        # Per-flow application state: a protocol name once detected, TLS reassembly buffer …
        self.app: dict[str, Any] | None = None


@dataclass(frozen=True)
class FlowRecord:
    flow: Flow
    reason: str


class FlowTable:
    """Bidirectional flows, at most ``max_flows`` at a time; see the module docstring."""

    def __init__(
        self,
        *,
        max_flows: int = 100_000,
        idle_timeout: float = 60.0,
        active_timeout: float = 300.0,
        closed_timeout: float = 5.0,
        on_end: Callable[[FlowRecord], None],
    ) -> None:
        self.max_flows = max_flows
        self.idle_timeout = idle_timeout
        self.active_timeout = active_timeout
        self.closed_timeout = closed_timeout
        self.on_end = on_end
        self.flows: OrderedDict[FlowKey, Flow] = OrderedDict()
        self._closed: deque[tuple[float, Flow]] = deque()
        self._ended: OrderedDict[FlowKey, Flow] = OrderedDict()  # closed recently: late packets
        self._next_sweep = 0.0
        self.stats = {"flows_started": 0, "flows_ended": 0, "flows_evicted": 0, "late_packets": 0}

    def update(  # noqa: PLR0917 - once per packet: a positional call is the fast one
        self,
        now: float,
        src: bytes,
        dst: bytes,
        sport: int,
        dport: int,
        proto: int,
        size: int,
        flags: int,
        position: int = 0,
    ) -> tuple[Flow, bool]:
        """Count one packet; returns its flow and whether it came from the originator."""
        flows = self.flows
        key = (src, dst, sport, dport, proto)
        flow = flows.get(key)
        forward = True
        if flow is None:
            flow = flows.get((dst, src, dport, sport, proto))
            forward = False
            if flow is None:
                late = self._late(key, flags) if proto == PROTO_TCP else None
                if late is not None:  # a FIN or ACK retransmitted after its connection ended
                    self.stats["late_packets"] += 1
                    return late, late.key == key
                forward = True
                flow = self._start(key, now, position)
            elif flow.closed and flags & SYN and not flags & ACK:
                # A new connection on the 4-tuple of a closed one (port reuse).
                self._end(flow, "closed")
                flow, forward = self._start(key, now, position), True
        elif flow.closed and flags & SYN and not flags & ACK:
            self._end(flow, "closed")
            flow = self._start(key, now, position)
        if now - flow.start >= self.active_timeout:
            self._end(flow, "active")
            flow = self._start(flow.key, now, position)
            forward = flow.key == key
        flows.move_to_end(flow.key)
        flow.end = max(flow.end, now)
        if forward:
            flow.orig_packets += 1
            flow.orig_bytes += size
            flow.orig_flags |= flags
        else:
            flow.resp_packets += 1
            flow.resp_bytes += size
            flow.resp_flags |= flags
        if proto == PROTO_TCP and flags & (FIN | RST) and not flow.closed:
            if flags & RST:
                flow.closed = True
            else:
                flow.fins |= 1 if forward else 2
                flow.closed = flow.fins == 3
            if flow.closed:
                self._closed.append((now, flow))
        if now >= self._next_sweep:
            self.expire(now)
        return flow, forward

    def _late(self, key: FlowKey, flags: int) -> Flow | None:
        """The ended connection a packet without SYN belongs to, if it closed recently."""
        if flags & SYN:
            return None
        src, dst, sport, dport, proto = key
        return self._ended.get(key) or self._ended.get((dst, src, dport, sport, proto))

    def _start(self, key: FlowKey, now: float, position: int) -> Flow:
        if len(self.flows) >= self.max_flows:
            _, oldest = self.flows.popitem(last=False)
            self.stats["flows_evicted"] += 1
            self._emit(oldest, "evicted")
        flow = Flow(key, now, position)
        self.flows[key] = flow
        self.stats["flows_started"] += 1
        return flow

    def _end(self, flow: Flow, reason: str) -> None:
        if self.flows.get(flow.key) is flow:
            del self.flows[flow.key]
            self._emit(flow, reason)
            if reason == "closed":
                # Remembered for an idle timeout, so its late FINs and ACKs do not open a
                # reversed flow of their own (bounded like the table itself).
                self._ended[flow.key] = flow
                self._ended.move_to_end(flow.key)
                if len(self._ended) > self.max_flows:
                    self._ended.popitem(last=False)

    def _emit(self, flow: Flow, reason: str) -> None:
        self.stats["flows_ended"] += 1
        self.on_end(FlowRecord(flow, reason))

    def expire(self, now: float) -> None:
        """End flows whose idle or close timeout has passed at packet time ``now``."""
        self._next_sweep = now + 1.0
        closed = self._closed
        while closed and now - closed[0][0] >= self.closed_timeout:
            self._end(closed.popleft()[1], "closed")
        flows = self.flows
        while flows:
            flow = next(iter(flows.values()))
            if now - flow.end < self.idle_timeout:
                break
            self._end(flow, "idle")
        ended = self._ended
        while ended and now - next(iter(ended.values())).end >= self.idle_timeout:
            ended.popitem(last=False)

    def flush(self) -> None:
        """End every flow (the sensor stops or a pcap import finished)."""
        for flow in list(self.flows.values()):
            self._end(flow, "flush")
        self._closed.clear()

    def __len__(self) -> int:
        return len(self.flows)


__all__ = ["ACK", "FIN", "RST", "SYN", "Flow", "FlowKey", "FlowRecord", "FlowTable", "flag_names"]
