"""The syslog receiver over real sockets on 127.0.0.1 (RELIABILITY.md S1, S4, S5, S6)."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator

import pytest

from sensors.sources.syslog import Listener, SyslogReceiver, SyslogRecord, udp_drops

LOCAL = "127.0.0.1"


def make_receiver(**options: object) -> SyslogReceiver:
    receiver = SyslogReceiver(
        [Listener("udp", LOCAL, 0), Listener("tcp", LOCAL, 0)],
        **options,  # type: ignore[arg-type]
    )
    receiver.start()
    return receiver


@pytest.fixture
def receiver() -> Iterator[SyslogReceiver]:
    running = make_receiver()
    yield running
    running.stop()


def collect(receiver: SyslogReceiver, count: int, timeout: float = 10.0) -> list[SyslogRecord]:
    records: list[SyslogRecord] = []
    deadline = time.monotonic() + timeout
    while len(records) < count and time.monotonic() < deadline:
        records.extend(receiver.get(count - len(records), timeout=0.05))
    return records


def message(size: int, number: int = 0) -> bytes:
    """A syslog message of exactly ``size`` octets, with printable, non-repeating content."""
    head = f"<134>1 2024-02-05T10:00:00.000Z web01 app {number} ID{number} - ".encode()
    body = bytes(33 + (i * 7 + number) % 94 for i in range(size - len(head)))
    return (head + body)[:size]


def tcp(receiver: SyslogReceiver) -> socket.socket:
    return socket.create_connection((LOCAL, receiver.port("tcp")))


# ---------------------------------------------------------------------------------- S1
@pytest.mark.parametrize("size", [480, 2048, 8192])
def test_s1_sizes_arrive_byte_identical_over_udp_and_both_tcp_framings(receiver: SyslogReceiver, size: int) -> None:
    sent = [message(size, n) for n in range(3)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(sent[0], (LOCAL, receiver.port("udp")))
    with tcp(receiver) as conn:
        conn.sendall(sent[1] + b"\n" + str(size).encode() + b" " + sent[2])
    records = collect(receiver, 3)
    by_data = {record.raw: record for record in records}
    assert set(by_data) == set(sent)
    assert not any(record.truncated for record in records)
    assert by_data[sent[0]].protocol == "udp" and by_data[sent[1]].protocol == "tcp"
    assert receiver.stats["truncated"] == 0


def test_s1_over_the_limit_is_truncated_flagged_and_counted(receiver: SyslogReceiver) -> None:
    big = message(9000, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(big, (LOCAL, receiver.port("udp")))
    with tcp(receiver) as conn:
        conn.sendall(big + b"\n" + b"9000 " + big + b"<13>after\n")
    records = collect(receiver, 4)
    assert [r.truncated for r in records] == [True, True, True, False]
    assert all(r.raw == big[:8192] for r in records[:3])
    assert records[3].raw == b"<13>after"
    assert receiver.stats["truncated"] == 3


def test_limit_is_configurable_up_to_64_kib() -> None:
    receiver = make_receiver(max_message_bytes=65536)
    try:
        big = message(60000, 2)
        with tcp(receiver) as conn:
            conn.sendall(b"60000 " + big)
        assert [r.raw for r in collect(receiver, 1)] == [big]
    finally:
        receiver.stop()


# ---------------------------------------------------------------------------------- S4
def test_s4_one_byte_writes_in_both_framings(receiver: SyslogReceiver) -> None:
    stream = b"<13>first line\n" + b"10 <13>second" + b"2024-02-05T10:00:00Z h app: third\n" + b"5 fourt"
    with tcp(receiver) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for index in range(len(stream)):
            conn.send(stream[index : index + 1])
    records = collect(receiver, 4)
    assert [r.raw for r in records] == [
        b"<13>first line",
        b"<13>second",
        b"2024-02-05T10:00:00Z h app: third",
        b"fourt",
    ]
    assert records[3].truncated is False  # "5 fourt": 5 octets "fourt"


def test_s4_bogus_length_closes_the_connection_and_is_counted(receiver: SyslogReceiver) -> None:
    with tcp(receiver) as conn:
        conn.sendall(b"<13>good\n0 bad")
        conn.settimeout(5)
        assert conn.recv(10) == b""  # closed by the receiver
    with tcp(receiver) as conn:
        conn.sendall(b"9999999 " + b"x" * 100)
        conn.settimeout(5)
        assert conn.recv(10) == b""
    assert [r.raw for r in collect(receiver, 1)] == [b"<13>good"]
    assert receiver.stats["framing_errors"] == 2
    with tcp(receiver) as conn:  # the service goes on
        conn.sendall(b"<13>still here\n")
    assert [r.raw for r in collect(receiver, 1)] == [b"<13>still here"]


def test_unterminated_last_message_is_kept_when_the_sender_closes(receiver: SyslogReceiver) -> None:
    with tcp(receiver) as conn:
        conn.sendall(b"<13>no newline at the end")
    assert [r.raw for r in collect(receiver, 1)] == [b"<13>no newline at the end"]


# ---------------------------------------------------------------------------------- S5
def test_s5_idle_and_slow_connections_cannot_lock_senders_out() -> None:
    receiver = make_receiver(max_connections=100, idle_timeout=1.0)
    attackers: list[socket.socket] = []
    try:
        for number in range(200):
            conn = tcp(receiver)
            if number % 2:
                conn.sendall(b"<13>slowloris never ends " + b"x" * 4000)  # an unfinished frame
            attackers.append(conn)
        time.sleep(0.3)
        assert receiver.open_connections <= 100
        assert receiver.buffered_bytes() <= 100 * (8192 + 16)
        for round_ in range(3):  # real senders keep getting through while the attack goes on
            with tcp(receiver) as conn:
                conn.sendall(f"<13>legit {round_}\n".encode())
            for attacker in attackers[-20:]:
                with contextlib.suppress(OSError):
                    attacker.send(b"y")
            time.sleep(0.2)
        legit = [r.raw for r in collect(receiver, 200, timeout=3) if r.raw.startswith(b"<13>legit")]
        assert legit == [b"<13>legit 0", b"<13>legit 1", b"<13>legit 2"]
        time.sleep(2.5)
        assert receiver.open_connections <= 20  # the silent ones were closed after idle_timeout
        counters = receiver.counters()
        # 203 connections came in and at most 20 are left: every other one was evicted at the cap or
        # closed for idleness (which of the two depends on how fast this machine opened them)
        assert counters["connections_evicted"] + counters["connections_idle_closed"] >= 200 - 20
        assert counters["connections_idle_closed"] >= 1
    finally:
        for attacker in attackers:
            attacker.close()
        receiver.stop()


def test_s5_connection_cap_evicts_the_one_longest_without_a_message() -> None:
    receiver = make_receiver(max_connections=10, idle_timeout=600.0)
    conns: list[socket.socket] = []
    try:
        talker = tcp(receiver)
        conns.append(talker)
        for _ in range(9):
            conns.append(tcp(receiver))
        talker.sendall(b"<13>still here\n")
        assert [r.raw for r in collect(receiver, 1)] == [b"<13>still here"]
        for _ in range(5):  # 5 over the cap of 10: the oldest silent ones go, not the talker
            conns.append(tcp(receiver))
        deadline = time.monotonic() + 10
        while receiver.counters()["connections_accepted"] < 15 and time.monotonic() < deadline:
            time.sleep(0.02)
        counters = receiver.counters()
        assert counters["connections_accepted"] == 15
        assert counters["connections_evicted"] == 5
        assert counters["connections_idle_closed"] == 0
        assert receiver.open_connections == 10
        talker.sendall(b"<13>the talker was kept\n")
        assert [r.raw for r in collect(receiver, 1)] == [b"<13>the talker was kept"]
    finally:
        for conn in conns:
            conn.close()
        receiver.stop()


# ---------------------------------------------------------------------------------- S6
def test_s6_udp_burst_received_plus_kernel_drops_equals_sent() -> None:
    receiver = make_receiver(udp_receive_buffer=8192, queue_size=100)
    sent = 5000
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            target = (LOCAL, receiver.port("udp"))
            for number in range(sent):
                udp.sendto(b"<13>burst %06d " % number + b"z" * 200, target)
        received: list[SyslogRecord] = []
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 1.0:
            batch = receiver.get(1000, timeout=0.05)
            received.extend(batch)
            if batch:
                idle_since = time.monotonic()
        drops = receiver.udp_kernel_drops()
        counters = receiver.counters()
    finally:
        receiver.stop()
    assert len(received) == counters["udp_datagrams"]
    assert len(received) + drops == sent
    assert drops > 0  # an 8 KiB buffer and a 100-record queue cannot take 5000 datagrams at once
    if counters["udp_rxq_ovfl"]:
        # SO_RXQ_OVFL is reported with the next datagram received, so it can lag behind /proc.
        assert counters["udp_rxq_ovfl"] <= drops


def test_udp_drops_reads_the_drops_column_of_our_socket_inode() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOCAL, 0))
        inode = os.fstat(sock.fileno()).st_ino
        assert udp_drops({inode}) == {inode: 0}
