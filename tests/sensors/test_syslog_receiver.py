"""The syslog receiver over real sockets on 127.0.0.1 (RELIABILITY.md S1, S4, S5, S6)."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from sensors.sources.syslog import Listener, SyslogReceiver, SyslogRecord, udp_drops
from tests.shared_data import unavailable
from tests.support.waiting import wait_for

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


def collect(receiver: SyslogReceiver, count: int) -> list[SyslogRecord]:
    records: list[SyslogRecord] = []

    def received() -> int:
        records.extend(receiver.get(count - len(records), timeout=0.05))
        return len(records)

    wait_for(received, f"{count} records", until=lambda got: got >= count, stall=10, poll=0)
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
    stream = b"<13>first line\n" + b"10 <13>second" + b"2024-02-05T10:00:00Z h app: third\n" + b"5 <13>f"
    with tcp(receiver) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for index in range(len(stream)):
            conn.send(stream[index : index + 1])
    records = collect(receiver, 4)
    assert [r.raw for r in records] == [
        b"<13>first line",
        b"<13>second",
        b"2024-02-05T10:00:00Z h app: third",
        b"<13>f",
    ]
    assert records[3].truncated is False  # "5 <13>f": 5 octets "<13>f"


def test_s4_bogus_length_closes_the_connection_and_is_counted(receiver: SyslogReceiver) -> None:
    with tcp(receiver) as conn:
        conn.sendall(b"<13>good\n1048577 <13>bad")
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
ATTACKERS = 1000  # RELIABILITY.md S5: 1,000 idle and slowloris connections
LIMIT = 2048  # max_message_bytes here, so a slowloris frame (8,000 bytes) is cut by the framer


@contextlib.contextmanager
def open_files_at_least(count: int) -> Iterator[None]:
    """Raise this process's soft RLIMIT_NOFILE to ``count`` (both ends of every socket live here)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= count:
        yield
        return
    if hard != resource.RLIM_INFINITY and hard < count:
        unavailable(f"S5 needs {count} open files; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (count, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Gauge:
    """Samples the receiver's open connections and buffered bytes from another thread."""

    def __init__(self, receiver: SyslogReceiver) -> None:
        self.receiver = receiver
        self.samples: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.samples.append((self.receiver.open_connections, self.receiver.buffered_bytes()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_s5_a_thousand_idle_and_slow_connections_cannot_lock_senders_out_or_grow_memory() -> None:
    """Invariants only, whatever the machine's speed: the cap is never exceeded, no connection
    holds more than one (cut) frame, every real sender gets through during the attack, and every
    attacker is eventually closed (evicted at the cap or closed for idleness — which of the two
    depends on timing, so the test does not care)."""
    cap, idle_timeout, senders = ATTACKERS, 3.0, 10
    with open_files_at_least(2 * (ATTACKERS + senders) + 256):
        receiver = make_receiver(max_connections=cap, idle_timeout=idle_timeout, max_message_bytes=LIMIT)
        gauge = Gauge(receiver)
        attackers: list[socket.socket] = []
        slow: list[socket.socket] = []
        sent_by_attackers = 0
        try:
            for number in range(ATTACKERS):
                conn = tcp(receiver)
                attackers.append(conn)
                if number % 2:  # slowloris: an unfinished frame far over the limit, then a trickle
                    conn.sendall(b"<13>slowloris never ends " + b"x" * 8000)
                    sent_by_attackers += 8025
                    slow.append(conn)
                if number % (ATTACKERS // senders) == ATTACKERS // senders - 1:
                    with tcp(receiver) as sender:  # a real sender in the middle of the attack
                        sender.sendall(f"<13>legit {number}\n".encode())
                    for conn in slow[-50:]:
                        with contextlib.suppress(OSError):  # evicted already
                            conn.send(b"y")
                            sent_by_attackers += 1
            every = ATTACKERS // senders
            expected = {f"<13>legit {n}".encode() for n in range(every - 1, ATTACKERS, every)}
            received = collect_matching(receiver, expected)
            assert received == expected, f"real senders locked out: {sorted(expected - received)[:5]}"
            accepted = ATTACKERS + senders
            wait_for(
                lambda: receiver.counters()["connections_accepted"],
                "every connection accepted",
                until=lambda n: n == accepted,
            )
            wait_for(lambda: receiver.open_connections, "all connections gone", until=lambda n: n == 0)
        finally:
            gauge.stop()
            for conn in attackers:
                conn.close()
            receiver.stop()
    counters = receiver.counters()
    peak_open = max(open_ for open_, _ in gauge.samples)
    peak_buffered = max(buffered for _, buffered in gauge.samples)
    print(f"S5: peak {peak_open} open, peak {peak_buffered} bytes buffered, {len(gauge.samples)} samples, {counters}")
    assert gauge.samples and peak_open <= cap
    assert peak_buffered <= cap * (LIMIT + 16), "more than one cut frame per allowed connection"
    assert peak_buffered < sent_by_attackers // 2, "the framer kept what it should have cut"
    assert counters["connections_accepted"] == ATTACKERS + senders
    assert counters["truncated"] >= 1 and counters["framing_errors"] == 0


def collect_matching(receiver: SyslogReceiver, wanted: set[bytes]) -> set[bytes]:
    """The wanted messages (others, the attackers' cut frames, skipped), while more keep coming."""
    found: set[bytes] = set()

    def received() -> int:
        found.update(record.raw for record in receiver.get(1000, timeout=0.05) if record.raw in wanted)
        return len(found)

    wait_for(received, f"{len(wanted)} real senders' messages", until=lambda got: got == len(wanted), poll=0)
    return found


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
        wait_for(
            lambda: receiver.counters()["connections_accepted"], "15 connections", until=lambda n: n >= 15, stall=10
        )
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
