"""A real ``soc sensor logs --follow`` process for the reliability scenarios, and the log
lines those scenarios write.

Each line carries its sequence number, so what reached the store can be compared with what
was written line by line (lost, duplicated, reordered), not only counted.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SOC = Path(sys.executable).with_name("soc")
LINE_SEQ = re.compile(r"\bseq=(\d+)\b")


def log_line(seq: int, host: str = "web01") -> bytes:
    """One auth-log line (syslog header, a non-sshd program) whose message holds ``seq=N``."""
    second, minute, hour = seq % 60, (seq // 60) % 60, 8 + (seq // 3600) % 12
    return f"Feb  5 {hour:02d}:{minute:02d}:{second:02d} {host} app[{1000 + seq % 5000}]: job done seq={seq}\n".encode()


def seq_of(message: str) -> int:
    found = LINE_SEQ.search(message)
    assert found is not None, f"no seq= in {message!r}"
    return int(found.group(1))


@dataclass
class LogFile:
    """A log file written by the test; remembers where every line starts and ends."""

    path: Path
    ends: list[int] = field(default_factory=list)  # ends[i] = offset just after line i

    def append(self, start: int, stop: int) -> None:
        data = b"".join(log_line(seq) for seq in range(start, stop))
        size = self.ends[-1] if self.ends else 0
        with open(self.path, "ab") as handle:
            for seq in range(start, stop):
                size += len(log_line(seq))
                self.ends.append(size)
            handle.write(data)

    @property
    def lines(self) -> int:
        return len(self.ends)

    @property
    def size(self) -> int:
        return self.ends[-1] if self.ends else 0

    def lines_before(self, offset: int) -> int:
        """How many whole lines end at or before ``offset``."""
        low, high = 0, len(self.ends)
        while low < high:
            middle = (low + high) // 2
            if self.ends[middle] <= offset:
                low = middle + 1
            else:
                high = middle
        return low


def write_sensor_config(
    directory: Path,
    *,
    tenant: str,
    paths: list[str],
    input_id: str,
    parser: str = "auth",
    **forwarder: Any,
) -> Path:
    """A sensor YAML with one input (named ``input_id``) and the given forwarder options."""
    body = {
        "tenant": tenant,
        "sensor_id": f"{tenant}-sensor",
        "state_dir": str(directory / "state"),
        "poll_interval": 0.05,
        "checkpoint_interval": 0.2,
        "inputs": [{"id": input_id, "paths": paths, "parser": parser, "from_beginning": True}],
        "forwarder": {"backoff_initial": 0.2, "backoff_max": 2.0, **forwarder},
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "sensor.yml"
    path.write_text(yaml.safe_dump(body))
    return path


def checkpoint_offsets(config: Path) -> dict[str, int]:
    """Fingerprint → saved offset, read from the sensor's checkpoint file (empty if none yet)."""
    body = yaml.safe_load(config.read_text())
    state = Path(body["state_dir"]) / "checkpoints" / f"{body['inputs'][0]['id']}.json"
    try:
        saved = json.loads(state.read_text())
    except FileNotFoundError:
        return {}
    return {key: int(value["offset"]) for key, value in saved["files"].items()}


def checkpoint_offset(config: Path) -> int:
    """The saved offset of the only file the sensor tails (0 before the first checkpoint)."""
    offsets = checkpoint_offsets(config)
    assert len(offsets) <= 1, offsets
    return next(iter(offsets.values()), 0)


def sqlite_env(database: Path) -> dict[str, str]:
    return {"SOC_STORE__BACKEND": "sqlite", "SOC_STORE__SQLITE_PATH": str(database)}


def elasticsearch_env(url: str, request_timeout: float) -> dict[str, str]:
    return {
        "SOC_STORE__BACKEND": "elasticsearch",
        "SOC_STORE__ELASTICSEARCH__URL": url,
        "SOC_STORE__ELASTICSEARCH__REQUEST_TIMEOUT": str(request_timeout),
    }


class SensorProcess:
    """``soc sensor logs --config … --follow`` as a child process, output to a log file."""

    def __init__(self, config: Path, store_env: dict[str, str], output: Path) -> None:
        self.config = config
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SOC_")} | store_env
        self.output = output
        self.process: subprocess.Popen[bytes] | None = None
        self.stdout = b""

    def start(self, *, follow: bool = True) -> int:
        with open(self.output, "ab") as log:
            self.process = subprocess.Popen(
                [str(SOC), "sensor", "logs", "--config", str(self.config), "--follow" if follow else "--once"],
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        return self.process.pid

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """Wait for the exit; keep stdout (the counters JSON) and return the exit code."""
        assert self.process is not None
        out, _ = self.process.communicate(timeout=timeout)
        self.stdout += out
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL and reap (a crash: no flush, no checkpoint save)."""
        if self.alive():
            self.signal(signal.SIGKILL)
        if self.process is not None and self.process.returncode is None:
            self.wait(timeout=30)

    def counters(self) -> dict[str, int]:
        """The counters the last run printed on a clean exit."""
        lines = [line for line in self.stdout.decode().splitlines() if line.startswith("{")]
        assert lines, f"no counters printed; see {self.output}"
        return dict(json.loads(lines[-1]))

    def log_text(self) -> str:
        return self.output.read_text(errors="replace")

    def is_following(self, path: Path) -> bool:
        """The process has ``path`` open: it is in its run loop (signal handlers installed)."""
        try:
            return self.alive() and str(path) in self.fd_targets()
        except FileNotFoundError:  # exited meanwhile
            return False

    def fd_targets(self) -> list[str]:
        """Where each open descriptor of the process points (``/proc/<pid>/fd``)."""
        fd_dir = Path(f"/proc/{self.pid}/fd")
        targets = []
        for entry in fd_dir.iterdir():
            try:
                targets.append(os.readlink(entry))
            except FileNotFoundError:  # closed while we listed it
                continue
        return sorted(targets)


def read_position(pid: int, path: Path) -> int | None:
    """The offset of process ``pid``'s open descriptor on ``path`` (``/proc/<pid>/fdinfo``)."""
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(entry) != str(path):
                continue
            rows = (Path(f"/proc/{pid}/fdinfo") / entry.name).read_text().splitlines()
        except FileNotFoundError:  # closed while we listed it
            continue
        for row in rows:
            if row.startswith("pos:"):
                return int(row.split()[1])
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time that process ``pid`` (all its threads) has used so far.

    From ``/proc/<pid>/stat``: unlike wall time, a loaded machine does not stretch it, so a bound
    on it holds at any load and still catches a process that spins or rescans.
    """
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after the command name, which may hold spaces
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def tcp_connections_to(pid: int, port: int) -> int:
    """Established TCP connections of process ``pid`` to ``port`` (from /proc, IPv4 and IPv6)."""
    inodes = set()
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(entry)
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            next(handle)
            for row in handle:
                parts = row.split()
                remote_port = int(parts[2].rsplit(":", 1)[1], 16)
                if parts[3] == "01" and remote_port == port and parts[9] in inodes:
                    count += 1
    return count


__all__ = [
    "LogFile",
    "SensorProcess",
    "checkpoint_offset",
    "checkpoint_offsets",
    "cpu_seconds",
    "elasticsearch_env",
    "log_line",
    "read_position",
    "seq_of",
    "sqlite_env",
    "tcp_connections_to",
    "write_sensor_config",
]
