"""Helpers of the scheduler tests: ``soc up --role scheduler`` as a child process, a plain local
SMTP relay (aiosmtpd) that keeps what it receives, and the configuration files they share."""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import yaml
from aiosmtpd.controller import Controller

from soc_core.auth import CHEAP_TEST_HASHING_ENV

HOST = "127.0.0.1"
SOC = [sys.executable, "-c", "from soc_api.cli import main; main()"]


@dataclass
class Inbox:
    messages: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.lock:
            self.messages.append(parsed)
        return "250 OK"

    def count(self) -> int:
        with self.lock:
            return len(self.messages)


def _free_port() -> int:
    # aiosmtpd's Controller checks it is up by connecting to the port it was given, so not 0
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def relay() -> Iterator[tuple[Inbox, int]]:
    """A local relay without TLS or sign-in (``playbooks.smtp.starttls: false``)."""
    inbox = Inbox()
    controller = Controller(inbox, hostname=HOST, port=_free_port())
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


def write_config(path: Path, settings: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(settings))
    return path


class SchedulerProcess:
    """``soc --config … up --role <role>`` as a child process; stderr (the JSON log) to a file."""

    def __init__(self, config: Path, log: Path, *, role: str = "scheduler") -> None:
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOC_") or k == CHEAP_TEST_HASHING_ENV}
        with open(log, "ab") as err:
            self.process = subprocess.Popen(
                [*SOC, "--config", str(config), "up", "--role", role],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def records(self) -> list[dict[str, Any]]:
        found = []
        for line in self.text().splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue  # a line being written
        return found

    def started(self) -> bool:
        assert self.process.poll() is None, f"the scheduler process exited early:\n{self.text()[-3000:]}"
        return any(record["message"] == "scheduler started" for record in self.records())

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
