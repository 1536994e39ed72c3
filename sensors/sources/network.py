"""Packet sources: pcap/pcapng files and live capture on an AF_PACKET socket.

* :class:`PcapFile` reads classic pcap (µs and ns) and pcapng (SHB/IDB/EPB/SPB) with plain
  ``struct`` — no per-packet scapy objects — and reports its byte position for progress bars.
* :class:`LiveCapture` reads an interface through an ``AF_PACKET`` socket, optionally
  promiscuous and with a BPF filter attached in the kernel (compiled by libpcap through
  scapy's ``compile_filter``), and reads the kernel's ``PACKET_STATISTICS`` (received and
  dropped since the last read) so the sensor can account for every packet.

Every packet comes out as a :class:`Frame`. Both sources raise :class:`CaptureError` (a
:class:`~sensors.errors.SensorError`) naming the file or interface when they cannot go on.
"""

from __future__ import annotations

import ctypes
import select
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, NamedTuple

from sensors.errors import SensorError
from sensors.packets.decode import LINKTYPE_ETHERNET, LINKTYPE_RAW

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
ARPHRD_NONE = 65534

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
MAX_PACKET = 256 * 1024


class CaptureError(SensorError):
    """A capture source cannot be opened or read."""


class Frame(NamedTuple):
    timestamp: float
    data: bytes
    wire_len: int
    linktype: int


class PcapFile:
    """Iterate the frames of a pcap or pcapng file; ``position`` is the bytes read so far.

    A truncated last record ends the iteration and is counted in ``truncated``; a record with
    an impossible length raises :class:`CaptureError` (the rest of the file cannot be framed).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._handle: BinaryIO = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise CaptureError(f"cannot open {self.path}: {exc.strerror}") from exc
        self.size = self.path.stat().st_size
        self.truncated = 0
        magic = self._handle.read(4)
        self._handle.seek(0)
        if magic in PCAP_MAGICS:
            self.format = "pcap"
        elif magic == PCAPNG_SHB:
            self.format = "pcapng"
        else:
            self._handle.close()
            raise CaptureError(f"{self.path} is not a pcap or pcapng file (magic {magic.hex()})")

    @property
    def position(self) -> int:
        return self._handle.tell()

    def __iter__(self) -> Iterator[Frame]:
        return self._pcap() if self.format == "pcap" else self._pcapng()

    def _pcap(self) -> Iterator[Frame]:
        read = self._handle.read
        header = read(24)
        if len(header) < 24:
            raise CaptureError(f"{self.path}: pcap header truncated")
        order, resolution = PCAP_MAGICS[header[:4]]
        linktype = struct.unpack(order + "I", header[20:24])[0] & 0x0FFFFFFF
        record = struct.Struct(order + "IIII")
        while True:
            head = read(16)
            if len(head) < 16:
                if head:
                    self.truncated += 1
                return
            seconds, fraction, captured, wire = record.unpack(head)
            if captured > MAX_PACKET:
                raise CaptureError(f"{self.path}:{self.position - 16}: record length {captured} is impossible")
            data = read(captured)
            if len(data) < captured:
                self.truncated += 1
                return
            yield Frame(seconds + fraction * resolution, data, wire, linktype)

    def _pcapng(self) -> Iterator[Frame]:
        read = self._handle.read
        order = "<"
        interfaces: list[tuple[int, float]] = []
        while True:
            head = read(8)
            if len(head) < 8:
                if head:
                    self.truncated += 1
                return
            if head[:4] == PCAPNG_SHB:
                magic = read(4)
                order = "<" if magic == b"\x4d\x3c\x2b\x1a" else ">"
                length = struct.unpack(order + "I", head[4:])[0]
                body = magic + read(length - 12)
                interfaces = []
            else:
                kind, length = struct.unpack(order + "II", head)
                if length < 12 or length > MAX_PACKET + 64:
                    raise CaptureError(f"{self.path}:{self.position - 8}: pcapng block length {length} is impossible")
                body = read(length - 8)
                if len(body) < length - 8:
                    self.truncated += 1
                    return
                if kind == 1:
                    interfaces.append(self._interface(body, order))
                elif kind in (6, 2) and interfaces:
                    if kind == 6:
                        iface, high, low, captured, wire = struct.unpack_from(order + "IIIII", body)
                        start = 20
                    else:
                        iface, _drops, high, low, captured, wire = struct.unpack_from(order + "HHIIII", body)
                        start = 20
                    if iface >= len(interfaces):
                        continue
                    linktype, resolution = interfaces[iface]
                    stamp = ((high << 32) | low) * resolution
                    yield Frame(stamp, body[start : start + captured], wire, linktype)
                elif kind == 3 and interfaces:
                    wire = struct.unpack_from(order + "I", body)[0]
                    linktype, _ = interfaces[0]
                    yield Frame(0.0, body[4 : 4 + min(wire, len(body) - 8)], wire, linktype)

    @staticmethod
    def _interface(body: bytes, order: str) -> tuple[int, float]:
        linktype = struct.unpack_from(order + "H", body)[0]
        resolution = 1e-6
        offset = 8
        while offset + 4 <= len(body) - 4:
            code, size = struct.unpack_from(order + "HH", body, offset)
            if code == 0:
                break
            if code == 9 and size >= 1:  # if_tsresol
                value = body[offset + 4]
                resolution = 2.0 ** -(value & 0x7F) if value & 0x80 else 10.0**-value
            offset += 4 + ((size + 3) & ~3)
        return linktype, resolution

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> PcapFile:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def compile_bpf(expression: str, linktype: int = LINKTYPE_ETHERNET) -> list[tuple[int, int, int, int]]:
    """Compile a tcpdump filter expression into classic BPF (code, jt, jf, k) instructions."""
    # Loaded on demand: scapy and libpcap cost ~1 s to import and only filters need them.
    from scapy.arch.common import compile_filter  # noqa: PLC0415
    from scapy.error import Scapy_Exception  # noqa: PLC0415

    try:
        program = compile_filter(expression, linktype=linktype)
    except (Scapy_Exception, OSError) as exc:
        raise CaptureError(f"bad BPF filter {expression!r}: {exc}", hint="use tcpdump filter syntax") from exc
    return [
        (program.bf_insns[i].code, program.bf_insns[i].jt, program.bf_insns[i].jf, program.bf_insns[i].k)
        for i in range(program.bf_len)
    ]


class KernelStats(NamedTuple):
    received: int  # packets the socket saw, including the dropped ones
    dropped: int  # packets the kernel dropped because the socket buffer was full


class LiveCapture:
    """Frames from one interface through an ``AF_PACKET`` socket; see the module docstring.

    On a loopback interface each packet passes twice (out and in); only the incoming copy is
    kept. Timestamps are taken when the frame is read, not by the kernel.
    """

    def __init__(
        self,
        interface: str,
        *,
        bpf: str | None = None,
        promiscuous: bool = False,
        snaplen: int = 65535,
        buffer_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self.interface = interface
        self.snaplen = snaplen
        try:
            kind = int(Path(f"/sys/class/net/{interface}/type").read_text().strip())
        except (OSError, ValueError):
            kind = 1
        self.linktype = LINKTYPE_RAW if kind == ARPHRD_NONE else LINKTYPE_ETHERNET
        self._skip_outgoing = kind == 772  # ARPHRD_LOOPBACK
        try:
            # Protocol 0 receives nothing until bind(), so no unfiltered packet slips in before
            # the filter is attached.
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except OSError as exc:
            raise CaptureError(
                f"cannot open a packet socket: {exc.strerror}", hint="run as root or with CAP_NET_RAW"
            ) from exc
        try:
            if bpf:
                self._attach(compile_bpf(bpf, self.linktype))
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, buffer_bytes)
            except OSError:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)
            self.sock.bind((interface, ETH_P_ALL))
            if promiscuous:
                index = socket.if_nametoindex(interface)
                request = struct.pack("iHH8s", index, PACKET_MR_PROMISC, 0, b"")
                self.sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, request)
        except OSError as exc:
            self.sock.close()
            raise CaptureError(f"cannot capture on {interface}: {exc.strerror}") from exc
        self.sock.setblocking(False)
        self._buffer = bytearray(snaplen)
        # A new socket's counters start at zero. No reset here: packets queued since bind()
        # are read and decoded in this run, so they must stay counted (a reset lost them:
        # decoded came out one above received under traffic).
        self.stats_total = KernelStats(0, 0)

    def _attach(self, program: list[tuple[int, int, int, int]]) -> None:
        code = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
        buffer = ctypes.create_string_buffer(code)
        fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)

    def close_intake(self) -> None:
        """Let no new packet in; those already queued can still be read, and stats stay exact.

        A filter that rejects everything replaces the BPF filter: the kernel neither queues nor
        counts the packets that arrive after this, so draining the queue ends even under
        traffic, and received = read + dropped still holds for the whole run.
        """
        self._attach([(0x06, 0, 0, 0)])  # BPF_RET | BPF_K, accept 0 bytes

    def read(self, max_frames: int = 256, timeout: float = 0.2) -> list[Frame]:
        """Frames waiting now (up to ``max_frames``), after waiting up to ``timeout`` for one."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        frames: list[Frame] = []
        if not ready:
            return frames
        recv = self.sock.recvfrom_into
        buffer = self._buffer
        snaplen = self.snaplen
        now = time.time
        skip_outgoing = self._skip_outgoing
        for _ in range(max_frames):
            try:
                size, address = recv(buffer, snaplen, socket.MSG_TRUNC)
            except BlockingIOError:
                break
            except OSError as exc:
                raise CaptureError(f"reading {self.interface} failed: {exc.strerror}") from exc
            if skip_outgoing and address[2] == PACKET_OUTGOING:
                continue
            frames.append(Frame(now(), bytes(buffer[: min(size, snaplen)]), size, self.linktype))
        return frames

    def kernel_stats(self) -> KernelStats:
        """Received and dropped since the previous call (the kernel resets them on read)."""
        raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        received, dropped = struct.unpack("II", raw)
        self.stats_total = KernelStats(self.stats_total.received + received, self.stats_total.dropped + dropped)
        return KernelStats(received, dropped)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> LiveCapture:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


__all__ = ["CaptureError", "Frame", "KernelStats", "LiveCapture", "PcapFile", "compile_bpf"]
