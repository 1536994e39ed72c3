"""A real OpenSSH server in a network namespace, attacked over a veth pair; its log goes
through the real log sensor process into the SQLite store and the detection engine.

sshd runs as ``sshd -D -e``: its log lines arrive on stderr without a syslog header, so the
test writes each one with the header a syslog daemon's file output (rsyslog's traditional
format) gives it — ``Mon dd HH:MM:SS host sshd[pid]: message`` — to the file the sensor
tails. The messages themselves are sshd's own, byte for byte.

Needs root, ``ip`` (iproute2) and ``openssh-server``; skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from detections.engine import DetectionEngine
from detections.loader import load_rules, shipped_rules_dir
from soc_core.store import SqliteStore
from tests.reliability.sensor_process import SensorProcess, sqlite_env, write_sensor_config
from tests.support.waiting import wait_for

paramiko = pytest.importorskip("paramiko")

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
HOST_NAME = "bastion-ns"
FAILURES = 6


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, a test user, sshd)"
    if not Path(SSHD).exists():
        return "openssh-server is not installed (apt-get install openssh-server)"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    return None


# root and network namespaces, like the capture tests (make check leaves netns out)
pytestmark = [pytest.mark.netns, pytest.mark.skipif(_missing() is not None, reason=_missing() or "")]


def run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


@dataclass
class SshServer:
    address: str  # sshd's, inside the namespace
    client_address: str  # ours, on the root-namespace end of the veth
    user: str
    password: str
    log: Path


@pytest.fixture
def ssh_server(tmp_path: Path) -> Iterator[SshServer]:
    tag = secrets.token_hex(3)
    namespace, outside, inside = f"cgssh{tag}", f"cgh{tag}", f"cgn{tag}"
    octet = 16 + int(tag, 16) % 200
    client_address, server_address = f"10.203.{octet}.1", f"10.203.{octet}.2"
    user, password = f"cgt{tag}", secrets.token_urlsafe(12)
    log = tmp_path / "auth.log"
    process: subprocess.Popen[bytes] | None = None
    relay: threading.Thread | None = None
    try:
        run("ip", "netns", "add", namespace)
        run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
        run("ip", "link", "set", inside, "netns", namespace)
        run("ip", "addr", "add", f"{client_address}/30", "dev", outside)
        run("ip", "link", "set", outside, "up")
        run("ip", "-n", namespace, "addr", "add", f"{server_address}/30", "dev", inside)
        run("ip", "-n", namespace, "link", "set", inside, "up")
        run("ip", "-n", namespace, "link", "set", "lo", "up")
        run("useradd", "--no-create-home", "--shell", "/bin/sh", user)
        subprocess.run(["chpasswd"], input=f"{user}:{password}\n", text=True, check=True, capture_output=True)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
        key = tmp_path / "ssh_host_ed25519_key"
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
        config = tmp_path / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress {server_address}",
                    "Port 22",
                    f"HostKey {key}",
                    f"PidFile {tmp_path / 'sshd.pid'}",
                    "PasswordAuthentication yes",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication no",
                    "UsePAM no",
                    "PermitRootLogin no",
                    f"AllowUsers {user}",
                    "MaxAuthTries 10",
                    "LogLevel INFO",
                    "",
                ]
            )
        )
        run(SSHD, "-t", "-f", str(config))
        process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, SSHD, "-D", "-e", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        listening = threading.Event()
        relay = threading.Thread(target=_syslog_relay, args=(process, log, listening), daemon=True)
        relay.start()
        assert listening.wait(30), f"sshd did not start; see {log}"
        yield SshServer(server_address, client_address, user, password, log)
    finally:
        if process is not None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            if relay is not None:
                relay.join(timeout=10)
            if process.stderr is not None:
                process.stderr.close()
        subprocess.run(["userdel", user], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", outside], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)


def _syslog_relay(process: subprocess.Popen[bytes], log: Path, listening: threading.Event) -> None:
    """What a syslog daemon does with sshd's messages: header, then one line in the file."""
    assert process.stderr is not None
    with open(log, "ab", buffering=0) as out:
        for raw in process.stderr:
            message = raw.rstrip(b"\r\n")
            now = datetime.now(UTC)
            header = f"{now:%b} {now.day:>2} {now:%H:%M:%S} {HOST_NAME} sshd[{process.pid}]: ".encode()
            out.write(header + message + b"\n")
            if b"Server listening on" in message:
                listening.set()


def ssh_login(server: SshServer, password: str) -> bool:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # a throwaway host key
    try:
        client.connect(
            server.address,
            username=server.user,
            password=password,
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
            auth_timeout=10,
            banner_timeout=10,
        )
    except paramiko.AuthenticationException:
        return False
    finally:
        client.close()
    return True


def test_real_sshd_logins_become_events_and_a_brute_force_alert(ssh_server: SshServer, tmp_path: Path) -> None:
    for _ in range(FAILURES):
        assert not ssh_login(ssh_server, "wrong-" + secrets.token_hex(4))
    assert ssh_login(ssh_server, ssh_server.password)

    database = tmp_path / "canhgac.db"
    config = write_sensor_config(
        tmp_path / "sensor", tenant="police", paths=[str(ssh_server.log)], input_id="auth", parser="auth"
    )
    sensor = SensorProcess(config, sqlite_env(database), tmp_path / "sensor.log")
    sensor.start()
    try:

        def stored_logins() -> list[dict[str, object]]:
            assert sensor.alive(), sensor.log_text()[-2000:]
            return logins(database)

        wait_for(stored_logins, f"{FAILURES + 1} login events", until=lambda seen: len(seen) >= FAILURES + 1)
        sensor.signal(signal.SIGTERM)
        assert sensor.wait(timeout=60) == 0, sensor.log_text()[-2000:]
    finally:
        sensor.kill()

    events = logins(database)
    failed = [e for e in events if e["event.outcome"] == "failure"]
    accepted = [e for e in events if e["event.outcome"] == "success"]
    assert len(failed) == FAILURES and len(accepted) == 1, events
    for event in events:
        assert event["user.name"] == ssh_server.user
        assert event["source.ip"] == ssh_server.client_address
        assert event["host.name"] == HOST_NAME
        assert event["system.auth.ssh.method"] == "password"
    assert sensor.counters()["parse_failures"] == 0

    store = SqliteStore(database)
    try:
        engine = DetectionEngine(load_rules([shipped_rules_dir()]), store)
        assert not engine.errors
        engine.run_until_idle()
        alerts = [doc.body for doc in store.list_docs("alerts", size=100).items]
    finally:
        store.close()
    brute = [alert for alert in alerts if alert["rule.name"] == "SSH Brute Force"]
    assert len(brute) == 1, alerts
    assert brute[0]["tenant"] == "police"
    assert ssh_server.client_address in brute[0]["entities"]["source.ip"]
    assert brute[0]["count"] >= 5


def logins(database: Path) -> list[dict[str, object]]:
    if not database.exists():
        return []
    store = SqliteStore(database)
    try:
        store.setup()  # the sensor creates its tables only at its first write
        events, _ = store.read_new_events(None, limit=10_000)
    finally:
        store.close()
    return [e for e in events if e.get("event.action") == "ssh_login"]
