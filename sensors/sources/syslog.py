"""Receive syslog over UDP and TCP (RFC 5426, RFC 6587) into bounded memory.

:class:`SyslogFramer` is the pure core: bytes of one TCP connection in, whole messages out.
Per message it detects the framing RFC 6587 allows:

* **octet counting** — ``MSG-LEN SP SYSLOG-MSG``: a frame that starts with a digit run ended by
  a space. A count of 0 is an empty frame, skipped (counted in ``empty_frames``); a count above
  :data:`MAX_OCTET_COUNT` is bogus: :class:`FramingError`, and the receiver closes the connection
  and counts it (the rest of the stream cannot be framed);
* **non-transparent (LF) framing** — everything up to the next ``LF``; a frame that starts with
  digits not followed by a space (an ISO timestamp without ``<PRI>``) is LF-framed too. Once a
  connection has sent an LF-framed message, digits and a space start an octet frame only when
  a syslog message (``<PRI>``) follows them: a line such as "12 users logged in" inside an
  LF-framed stream is a line, not a count.

A message longer than ``max_message_bytes`` is cut there and flagged ``truncated``; the rest of
it is skipped without being buffered, so a connection never holds more than
``max_message_bytes`` plus a few header bytes.

:class:`SyslogReceiver` is the thin I/O shell: one thread with a ``selectors`` loop over the
listening sockets and connections, feeding a bounded queue of :class:`SyslogRecord`. When the
queue is full it stops reading — TCP senders are slowed down by their full windows, UDP
datagrams are dropped by the kernel and show up in ``udp_kernel_drops``. Connections beyond
``max_connections`` evict the one that has gone longest without a complete message, and a
connection silent for ``idle_timeout`` seconds is closed, so idle and slowloris connections
cannot lock senders out or grow memory.

Delivery guarantee: none before the spool. Syslog over UDP cannot be re-read and plain TCP
syslog has no application acknowledgement, so a message is safe once the sensor has spooled
it; what the kernel dropped is counted. Each record carries the run id and a per-run sequence
number, which become part of the event id: a sender that retransmits produces new events (the
network is not idempotent), but the forwarder replaying its spool rewrites the same ids.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sensors.errors import SensorError
from soc_core.errors import ConfigError

log = logging.getLogger(__name__)

Protocol = Literal["udp", "tcp"]
DEFAULT_MAX_MESSAGE_BYTES = 8192
LIMIT_MAX_MESSAGE_BYTES = 64 * 1024
MAX_OCTET_COUNT = 1024 * 1024
MAX_COUNT_DIGITS = 7  # enough for MAX_OCTET_COUNT; a longer digit run is not a count
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)
_READ_BYTES = 64 * 1024
_UDP_MAX = 65535


class FramingError(SensorError):
    """A TCP stream that cannot be framed (a bogus octet count); the connection is closed.

    ``frames`` are the messages completed before the bogus count, in the same ``feed``.
    """

    def __init__(self, message: str, frames: list[Frame]) -> None:
        super().__init__(message)
        self.frames = frames


@dataclass(frozen=True)
class Frame:
    data: bytes
    truncated: bool = False


class SyslogFramer:
    """RFC 6587 framing with per-message auto-detection; see the module docstring."""

    def __init__(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        if not 1 <= max_message_bytes <= LIMIT_MAX_MESSAGE_BYTES:
            raise ConfigError(f"max_message_bytes must be 1..{LIMIT_MAX_MESSAGE_BYTES}")
        self.max_message_bytes = max_message_bytes
        self._mode: Literal["start", "count", "space", "octets", "lf"] = "start"
        self._digits = bytearray()
        self._buffer = bytearray()
        self._remaining = 0
        self._truncated = False
        self._lf_stream = False  # the connection has sent an LF-framed message: no counts any more
        self.empty_frames = 0

    @property
    def buffered(self) -> int:
        """Bytes held for the frame in progress (bounded by ``max_message_bytes`` + 7)."""
        return len(self._buffer) + len(self._digits)

    def feed(self, data: bytes) -> list[Frame]:
        """The frames completed by ``data``; :class:`FramingError` on a bogus octet count."""
        frames: list[Frame] = []
        view = memoryview(data)
        pos, end = 0, len(data)
        while pos < end:
            mode = self._mode
            if mode == "start":
                byte = view[pos]
                if byte in b"\n\r\0":  # stray trailers between frames
                    pos += 1
                elif 0x30 <= byte <= 0x39:
                    self._mode = "count"
                else:
                    self._mode = "lf"
            elif mode == "count":
                byte = view[pos]
                if 0x30 <= byte <= 0x39 and len(self._digits) < MAX_COUNT_DIGITS:
                    self._digits.append(byte)
                    pos += 1
                elif byte == 0x20:
                    pos += 1
                    if self._lf_stream:
                        self._mode = "space"  # a count only if a syslog message ("<PRI>") follows
                    else:
                        self._count(frames)
                else:  # digits that are not a count: the start of an LF-framed message
                    self._keep(bytes(self._digits))
                    self._digits.clear()
                    self._mode = "lf"
            elif mode == "space":
                if view[pos] == 0x3C:
                    self._count(frames)
                else:  # "12 users logged in": a line of an LF-framed stream
                    self._keep(bytes(self._digits) + b" ")
                    self._digits.clear()
                    self._mode = "lf"
            elif mode == "octets":
                take = min(self._remaining, end - pos)
                self._keep(view[pos : pos + take])
                self._remaining -= take
                pos += take
                if self._remaining == 0:
                    frames.append(self._emit())
            else:
                newline = data.find(b"\n", pos)
                if newline < 0:
                    self._keep(view[pos:end])
                    pos = end
                else:
                    self._keep(view[pos:newline])
                    pos = newline + 1
                    self._lf_stream = True
                    frames.append(self._emit())
        return frames

    def _count(self, frames: list[Frame]) -> None:
        """The octet count in ``_digits`` (its space read): an empty frame, or a frame to read."""
        count = int(self._digits)
        if count > MAX_OCTET_COUNT:
            raise FramingError(f"bogus octet count {count} (allowed 0..{MAX_OCTET_COUNT})", frames)
        self._digits.clear()
        if count == 0:  # an empty frame: nothing to deliver, the stream goes on
            self.empty_frames += 1
            self._mode = "start"
        else:
            self._remaining = count
            self._mode = "octets"

    def finish(self) -> list[Frame]:
        """At end of stream: the frame in progress, if any (an unfinished octet frame is flagged)."""
        if self._mode == "start":
            return []
        if self._mode in ("count", "space"):
            self._keep(bytes(self._digits) + (b" " if self._mode == "space" else b""))
            self._digits.clear()
        elif self._mode == "octets":
            self._truncated = True
        return [self._emit()]

    def _keep(self, chunk: bytes | memoryview) -> None:
        room = self.max_message_bytes - len(self._buffer)
        if len(chunk) > room:
            self._truncated = True
            chunk = chunk[: max(room, 0)]
        self._buffer += chunk

    def _emit(self) -> Frame:
        frame = Frame(bytes(self._buffer), self._truncated)
        self._buffer.clear()
        self._truncated = False
        self._mode = "start"
        return frame


@dataclass(frozen=True)
class SyslogRecord:
    """One received message: its bytes and where it came from."""

    raw: bytes
    protocol: Protocol
    peer_ip: str
    peer_port: int
    local_port: int
    sequence: int
    truncated: bool = False

    @property
    def peer(self) -> str:
        return f"[{self.peer_ip}]:{self.peer_port}" if ":" in self.peer_ip else f"{self.peer_ip}:{self.peer_port}"


@dataclass(frozen=True)
class Listener:
    protocol: Protocol
    host: str
    port: int

    @classmethod
    def parse(cls, protocol: Protocol, address: str) -> Listener:
        """``host:port``, ``[v6]:port`` or ``port`` (all addresses)."""
        host, sep, port = address.rpartition(":")
        if not sep:
            host, port = "0.0.0.0", address  # noqa: S104 - explicit choice of the operator
        host = host.strip("[]")
        try:
            number = int(port)
        except ValueError:
            raise ConfigError(f"bad {protocol} listen address {address!r}", hint="use host:port") from None
        if not 0 <= number <= 65535:
            raise ConfigError(f"port out of range in {address!r}")
        return cls(protocol, host, number)


@dataclass
class _Connection:
    sock: socket.socket
    peer_ip: str
    peer_port: int
    local_port: int
    framer: SyslogFramer
    last_byte: float
    last_frame: float


@dataclass
class _Udp:
    sock: socket.socket
    local_port: int
    inode: int
    rxq_ovfl: int = 0


COUNTERS = (
    "udp_datagrams",
    "tcp_messages",
    "truncated",
    "framing_errors",
    "empty_frames",
    "connections_accepted",
    "connections_evicted",
    "connections_idle_closed",
    "receive_errors",
    "queue_full_pauses",
)


@dataclass
class _Queue:
    items: deque[SyslogRecord] = field(default_factory=deque)
    lock: threading.Condition = field(default_factory=threading.Condition)


class SyslogReceiver:
    """Listen on ``listeners`` and queue :class:`SyslogRecord` s; see the module docstring.

    ``start()`` binds every socket (so :attr:`bound` knows the real ports) and starts the
    thread; ``get()`` takes records; ``stop()`` closes everything and queues the partial
    frames of open connections.
    """

    def __init__(
        self,
        listeners: Sequence[Listener],
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_connections: int = 1000,
        idle_timeout: float = 60.0,
        queue_size: int = 20_000,
        udp_receive_buffer: int | None = None,
    ) -> None:
        if not listeners:
            raise ConfigError("a syslog receiver needs at least one UDP or TCP listen address")
        SyslogFramer(max_message_bytes)  # validates the limit
        if max_connections < 1 or idle_timeout <= 0 or queue_size < 1:
            raise ConfigError("max_connections, idle_timeout and queue_size must be positive")
        self.listeners = list(listeners)
        self.max_message_bytes = max_message_bytes
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.queue_size = queue_size
        self.udp_receive_buffer = udp_receive_buffer
        self.run_id = secrets.token_hex(8)
        self.stats = dict.fromkeys(COUNTERS, 0)
        self.bound: list[Listener] = []
        self._selector = selectors.DefaultSelector()
        self._udp: list[_Udp] = []
        self._servers: list[socket.socket] = []
        self._connections: dict[int, _Connection] = {}
        self._queue = _Queue()
        self._sequence = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._final_udp = (0, 0)  # kernel drops and SO_RXQ_OVFL when the sockets were closed

    # ------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        try:
            for listener in self.listeners:
                self._bind(listener)
        except OSError as exc:
            self._close_sockets()
            raise SensorError(f"cannot listen for syslog: {exc}", hint="check the address and port") from exc
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._loop, name="syslog-receiver", daemon=True)
        self._thread.start()

    def _bind(self, listener: Listener) -> None:
        family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
        if listener.protocol == "udp":
            sock = socket.socket(family, socket.SOCK_DGRAM)
            if self.udp_receive_buffer:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.udp_receive_buffer)
            with contextlib.suppress(OSError):  # not on every kernel; /proc/net/udp still works
                sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
            sock.bind((listener.host, listener.port))
            sock.setblocking(False)
            port = sock.getsockname()[1]
            self._udp.append(_Udp(sock, port, os.fstat(sock.fileno()).st_ino))
            self._selector.register(sock, selectors.EVENT_READ, self._udp[-1])
        else:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((listener.host, listener.port))
            sock.listen(min(self.max_connections, 4096))
            sock.setblocking(False)
            port = sock.getsockname()[1]
            self._servers.append(sock)
            self._selector.register(sock, selectors.EVENT_READ, "accept")
        self.bound.append(Listener(listener.protocol, listener.host, port))

    def port(self, protocol: Protocol) -> int:
        """The first bound port of ``protocol`` (useful with port 0 in tests)."""
        return next(item.port for item in self.bound if item.protocol == protocol)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(timeout)
        for conn in list(self._connections.values()):
            self._close(conn, finish=True)
        self._close_sockets()

    def _close_sockets(self) -> None:
        self._final_udp = (self.udp_kernel_drops(), sum(udp.rxq_ovfl for udp in self._udp))
        for sock in [u.sock for u in self._udp] + self._servers + [self._wake_r, self._wake_w]:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
            sock.close()
        self._udp.clear()
        self._servers.clear()

    # ---------------------------------------------------------------------- the queue
    def get(self, max_items: int = 1000, timeout: float = 0.0) -> list[SyslogRecord]:
        """Up to ``max_items`` records, waiting at most ``timeout`` seconds for the first."""
        queue = self._queue
        with queue.lock:
            if not queue.items and timeout > 0:
                queue.lock.wait(timeout)
            count = min(max_items, len(queue.items))
            taken = [queue.items.popleft() for _ in range(count)]
            if taken:
                queue.lock.notify_all()
        return taken

    @property
    def queued(self) -> int:
        return len(self._queue.items)

    def _put(self, frame: Frame, protocol: Protocol, peer_ip: str, peer_port: int, local_port: int) -> None:
        self._sequence += 1
        if frame.truncated:
            self.stats["truncated"] += 1
        record = SyslogRecord(frame.data, protocol, peer_ip, peer_port, local_port, self._sequence, frame.truncated)
        with self._queue.lock:
            self._queue.items.append(record)
            self._queue.lock.notify_all()

    def _wait_for_room(self) -> None:
        queue = self._queue
        with queue.lock:
            if len(queue.items) < self.queue_size:
                return
            self.stats["queue_full_pauses"] += 1
            while len(queue.items) >= self.queue_size and not self._stop.is_set():
                queue.lock.wait(0.1)

    # ----------------------------------------------------------------------- the loop
    def _loop(self) -> None:
        last_sweep = time.monotonic()
        while not self._stop.is_set():
            self._wait_for_room()
            for key, _ in self._selector.select(timeout=0.2):
                data = key.data
                try:
                    if data == "wake":
                        with contextlib.suppress(BlockingIOError):
                            self._wake_r.recv(64)
                    elif data == "accept":
                        self._accept(key.fileobj)  # type: ignore[arg-type]
                    elif isinstance(data, _Udp):
                        self._read_udp(data)
                    else:
                        self._read_tcp(data)
                except OSError as exc:  # one socket's trouble must not stop the receiver
                    self.stats["receive_errors"] += 1
                    log.warning("syslog receive error: %s", exc)
            now = time.monotonic()
            if now - last_sweep >= min(1.0, self.idle_timeout / 4):
                self._sweep_idle(now)
                last_sweep = now

    def _read_udp(self, udp: _Udp) -> None:
        # Bounded per wake-up, so one flooded socket cannot starve the others.
        for _ in range(256):
            try:
                data, ancillary, _flags, address = udp.sock.recvmsg(_UDP_MAX, socket.CMSG_SPACE(4))
            except BlockingIOError:
                return
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(value) >= 4:
                    udp.rxq_ovfl = struct.unpack("=I", value[:4])[0]
            self.stats["udp_datagrams"] += 1
            truncated = len(data) > self.max_message_bytes
            frame = Frame(data[: self.max_message_bytes], truncated)
            self._put(frame, "udp", address[0], address[1], udp.local_port)
            if len(self._queue.items) >= self.queue_size:
                return

    def _accept(self, server: socket.socket) -> None:
        for _ in range(64):
            try:
                sock, address = server.accept()
            except BlockingIOError:
                return
            if len(self._connections) >= self.max_connections:
                oldest = min(self._connections.values(), key=lambda c: c.last_frame)
                self.stats["connections_evicted"] += 1
                self._close(oldest, finish=True)
            sock.setblocking(False)
            now = time.monotonic()
            conn = _Connection(
                sock, address[0], address[1], server.getsockname()[1], SyslogFramer(self.max_message_bytes), now, now
            )
            self._connections[sock.fileno()] = conn
            self._selector.register(sock, selectors.EVENT_READ, conn)
            self.stats["connections_accepted"] += 1

    def _read_tcp(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(_READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            self._close(conn, finish=True)
            return
        if not data:
            self._close(conn, finish=True)
            return
        now = time.monotonic()
        conn.last_byte = now
        broken = None
        empty = conn.framer.empty_frames
        try:
            frames = conn.framer.feed(data)
        except FramingError as exc:
            frames, broken = exc.frames, exc
        self.stats["empty_frames"] += conn.framer.empty_frames - empty
        if frames:
            conn.last_frame = now
        for frame in frames:
            self.stats["tcp_messages"] += 1
            self._put(frame, "tcp", conn.peer_ip, conn.peer_port, conn.local_port)
        if broken is not None:
            self.stats["framing_errors"] += 1
            log.warning("syslog from %s:%d: %s; closing the connection", conn.peer_ip, conn.peer_port, broken.message)
            self._close(conn, finish=False)

    def _sweep_idle(self, now: float) -> None:
        for conn in list(self._connections.values()):
            if now - conn.last_byte > self.idle_timeout:
                self.stats["connections_idle_closed"] += 1
                self._close(conn, finish=True)

    def _close(self, conn: _Connection, *, finish: bool) -> None:
        self._connections.pop(conn.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        conn.sock.close()
        if finish:
            for frame in conn.framer.finish():
                self.stats["tcp_messages"] += 1
                self._put(frame, "tcp", conn.peer_ip, conn.peer_port, conn.local_port)

    # ------------------------------------------------------------------------ health
    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def buffered_bytes(self) -> int:
        """Bytes held by partial frames over all connections (bounded, see the docstring)."""
        return sum(conn.framer.buffered for conn in list(self._connections.values()))

    def udp_kernel_drops(self) -> int:
        """Datagrams the kernel dropped on our UDP sockets (``drops`` column of /proc/net/udp*)."""
        inodes = {udp.inode for udp in self._udp}
        return sum(udp_drops(inodes).values())

    def counters(self) -> dict[str, int]:
        counters = dict(self.stats)
        if self._udp:
            counters["udp_kernel_drops"] = self.udp_kernel_drops()
            counters["udp_rxq_ovfl"] = sum(udp.rxq_ovfl for udp in self._udp)
        else:
            counters["udp_kernel_drops"], counters["udp_rxq_ovfl"] = self._final_udp
        counters["open_connections"] = self.open_connections
        counters["queued"] = self.queued
        return counters


def udp_drops(inodes: set[int], proc: Path = Path("/proc/net")) -> dict[int, int]:
    """``{inode: drops}`` for the given UDP socket inodes, from ``/proc/net/udp`` and ``udp6``."""
    found: dict[int, int] = {}
    for name in ("udp", "udp6"):
        try:
            lines = (proc / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            columns = line.split()
            if len(columns) >= 13 and columns[9].isdigit() and int(columns[9]) in inodes:
                found[int(columns[9])] = int(columns[12])
    return found


__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "LIMIT_MAX_MESSAGE_BYTES",
    "MAX_OCTET_COUNT",
    "Frame",
    "FramingError",
    "Listener",
    "SyslogFramer",
    "SyslogReceiver",
    "SyslogRecord",
    "udp_drops",
]
