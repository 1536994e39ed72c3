"""Alerts for the library tests made by the real engine: the shipped rules (and SigmaHQ's two
Windows Defender rules) over the rules' own sample events, plus a threat-intel list hit."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from detections.engine import DetectionEngine
from detections.loader import load_rules, shipped_rules_dir
from intel import lists
from intel.parsers import parse_file
from soc_core.store import Store
from tests.shared_data import shared_data
from tests.support.netns import in_netns

SSH_BRUTEFORCE = "74d45926-2b16-4397-acdf-3728c2a10647"
SQL_INJECTION = "4b93f6e6-f86c-4260-a9b6-f1ba07ddc73b"
SCANNER_AGENT = "4c228f68-b2ae-48f9-b7f2-68971c25e65c"
PORT_SCAN = "65e9f844-a589-4bf5-92d8-369960936aa3"
LSASS_ACCESS = "890414db-1376-456c-b604-372809e41f7d"
DEFENDER_THREAT = "57b649ef-ff42-4fb0-8bf6-62da243a1708"
SUDO_ROOT_SHELL = "b66c7128-d024-4352-a4e4-6ef7676daa16"  # an alert no library playbook is for
DEFENDER_RULES = "sigmahq/rules/windows/builtin/windefend"

# The attacker of the SSH and web samples, the scanner and target of the port scan sample, and
# the Windows host of the Sysmon sample (values taken from those sample files).
SSH_SOURCE, WEB_SOURCE = "198.51.100.23", "203.0.113.50"
SCAN_SOURCE, SCAN_TARGET = "10.0.0.66", "10.0.0.9"
WINDOWS_HOST = "PC-KT-017.congan.local"
IOC_ADDRESS = "45.77.10.9"


def _samples(rule_id: str) -> list[dict[str, Any]]:
    [folder] = shipped_rules_dir().glob(f"*/samples/{rule_id}")
    lines = (folder / "match.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def defender_event(host: str = WINDOWS_HOST, *, tenant: str = "police") -> dict[str, Any]:
    """Event 1116 of the Defender channel as the Windows parser writes it."""
    return {
        "@timestamp": "2026-11-25T10:09:00.000Z",
        "event.id": "d3f3nd3r1116" + host.split(".", maxsplit=1)[0].lower(),
        "event.kind": "event",
        "organization.id": tenant,
        "event.dataset": "windows.windefend",
        "event.module": "windows",
        "event.code": "1116",
        "winlog.event_id": "1116",
        "winlog.channel": "Microsoft-Windows-Windows Defender/Operational",
        "winlog.provider_name": "Microsoft-Windows-Windows Defender",
        "host.name": host,
        "user.name": "it_tuan",
        "winlog.event_data.Threat Name": "Trojan:Win32/Emotet.RPX!MTB",
        "winlog.event_data.Path": "file:_C:\\Users\\it_tuan\\Downloads\\hoadon.exe",
    }


def intel_event(*, tenant: str = "police") -> dict[str, Any]:
    return {
        "@timestamp": "2026-11-25T10:10:00.000Z",
        "event.id": "10c0ffee" + tenant,
        "event.kind": "event",
        "organization.id": tenant,
        "event.dataset": "network.flow",
        "source.ip": "10.20.5.9",
        "destination.ip": IOC_ADDRESS,
        "destination.port": 443,
        "host.name": "ws-ketoan-03",
    }


def load_ioc_list(store: Store, tmp: Path) -> None:
    feed = tmp / "c2.csv"
    feed.write_text(f"type,value,confidence,source\nip,{IOC_ADDRESS},90,VNCERT\n", encoding="utf-8")
    lists.import_list(store, parse_file(feed, "csv"), tenant="*", name="c2", fmt="csv", source="VNCERT")


def make_alerts(store: Store, tmp: Path, events: list[dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Run the engine over ``events`` (default: one attack of each kind the library is for, and
    a sudo root shell none of it is for); the alerts by rule id, each with its ``id``."""
    if events is None:
        load_ioc_list(store, tmp)
        events = [
            *_samples(SSH_BRUTEFORCE),
            *_samples(SQL_INJECTION),
            *_samples(PORT_SCAN),
            *_samples(LSASS_ACCESS),
            *_samples(SUDO_ROOT_SHELL),
            defender_event(),
            intel_event(),
        ]
    rules = load_rules([shipped_rules_dir(), shared_data(DEFENDER_RULES)])
    assert not rules.errors, [error.render() for error in rules.errors]
    store.add_events(events)
    DetectionEngine(rules, store).run_until_idle()
    store.refresh()
    alerts: dict[str, dict[str, Any]] = {}
    for doc in store.list_docs("alerts", size=1000).items:
        alerts.setdefault(str(doc.body["rule.id"]), {**doc.body, "id": doc.id})
    return alerts


@contextmanager
def forward_into(namespace: str, url: str) -> Iterator[None]:
    """Make ``url``'s host:port (a loopback service of this namespace, like the ES node) reachable
    at the same address inside network namespace ``namespace``: a listener made there, whose
    connections are relayed through sockets made here (a socket stays in the namespace it was
    made in, whichever thread uses it)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    with in_netns(namespace):
        server = socket.create_server((host, port))
    done = threading.Event()

    def pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                end.close()

    def serve() -> None:
        while not done.is_set():
            try:
                client, _ = server.accept()
            except OSError:  # closed at the end
                return
            upstream = socket.create_connection((host, port))
            threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield
    finally:
        done.set()
        server.close()
