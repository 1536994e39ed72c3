"""Issue 15 items 4 and 7: real HTTP to a real nginx, seen by the network sensor and in its log.

Two network namespaces joined by a veth pair: nginx listens in one, ``dumpcap`` (Wireshark's
capture engine) records its interface to a pcap, and a client in the other sends 40 pipelined
requests on one keep-alive connection, a ``HEAD`` and then a few web attacks. The same pcap
goes to tshark and to our analyser (item 7: the same requests, each paired with its response in
order, no response posing as a request), and the pcap and nginx's access log go through the
shipped web rules (item 4: the same attacks counted from the wire and from the log).

Needs root, iproute2, nginx and tshark (dumpcap) — ``scripts/install-system-deps``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from detections.engine import DetectionEngine
from detections.loader import load_rules, shipped_rules_dir
from sensors.config import InputConfig, SensorConfig
from sensors.netsensor import NetSensorSettings, NetworkSensor
from sensors.packets.analyzer import PacketAnalyzer, Record
from sensors.pipeline import LogSensor
from sensors.sources.network import PcapFile
from soc_core.store.sqlite import SqliteStore
from tests.support.netns import in_netns, veth_pair
from tests.support.waiting import wait_for

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
DUMPCAP = shutil.which("dumpcap")
TSHARK = shutil.which("tshark")
SERVER, CLIENT = "10.213.7.2", "10.213.7.1"  # tests.support.netns: ns_b and ns_a
PIPELINED = 40
WEB_RULES = set(load_rules([shipped_rules_dir() / "web"]).rules)  # rule ids
ATTACKS = [  # (target, user agent): what the shipped web rules are for
    ("/search?q=1%27%20UNION%20SELECT%20username,password%20FROM%20users--", "Mozilla/5.0"),
    ("/static/../../../../etc/passwd", "Mozilla/5.0"),
    ("/uploads/shell.php?cmd=id", "Mozilla/5.0"),
    ("/", "sqlmap/1.7.2#stable (https://sqlmap.org)"),
    ("/login", "Nikto/2.5.0"),
]


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, nginx, dumpcap)"
    for tool, package in ((NGINX, "nginx"), (DUMPCAP, "tshark"), (TSHARK, "tshark"), (shutil.which("ip"), "iproute2")):
        if tool is None or not Path(tool).exists():
            return f"{package} is not installed (scripts/install-system-deps)"
    return None


pytestmark = [pytest.mark.netns, pytest.mark.skipif(_missing() is not None, reason=_missing() or "")]


@dataclass
class Session:
    pcap: Path
    access_log: Path
    pipelined: list[str]  # the pipelined targets, in the order sent
    statuses: list[int]  # the status of each pipelined response, in the order received


NGINX_CONF = """
user root root;  # the worker reads pytest's private temporary directory
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {tmp}/access.log combined;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000;
    server {{
        listen {server}:80;
        root {tmp}/www;
    }}
}}
"""


def _read_responses(sock: socket.socket, count: int) -> list[int]:
    """The status codes of ``count`` responses to GETs with Content-Length (nginx's static files)."""
    data, statuses = b"", list[int]()
    while len(statuses) < count:
        head_end = data.find(b"\r\n\r\n")
        if head_end < 0:
            chunk = sock.recv(65536)
            assert chunk, f"nginx closed after {len(statuses)} of {count} responses"
            data += chunk
            continue
        head = data[:head_end].decode()
        length = next(
            int(line.split(":", 1)[1]) for line in head.split("\r\n") if line.lower().startswith("content-length:")
        )
        while len(data) < head_end + 4 + length:
            data += sock.recv(65536)
        statuses.append(int(head.split(" ", 2)[1]))
        data = data[head_end + 4 + length :]
    return statuses


def _request(target: str, agent: str, *, method: str = "GET", close: bool = False) -> bytes:
    connection = "close" if close else "keep-alive"
    headers = f"Host: portal.gov.vn\r\nUser-Agent: {agent}\r\nConnection: {connection}\r\n"
    return f"{method} {target} HTTP/1.1\r\n{headers}\r\n".encode()


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    tmp = tmp_path_factory.mktemp("nginx")
    (tmp / "www").mkdir()
    for n in range(0, PIPELINED, 2):  # even pages exist (200, bodies of different sizes), odd ones do not (404)
        (tmp / "www" / f"page{n}.html").write_text("x" * (100 + 37 * n))
    (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, server=SERVER))
    pcap = tmp / "wire.pcap"
    with veth_pair() as pair:
        nginx = subprocess.run(
            ["ip", "netns", "exec", pair.ns_b, NGINX, "-c", str(tmp / "nginx.conf")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert nginx.returncode == 0, nginx.stderr
        capture = subprocess.Popen(
            ["ip", "netns", "exec", pair.ns_b, str(DUMPCAP), "-q", "-i", pair.veth_b, "-P", "-w", str(pcap),
             "-f", "tcp port 80"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert capture.stderr is not None
            started = capture.stderr.readline()  # "Capturing on 'vB…'" once the socket is open
            assert "Capturing on" in started, started + capture.stderr.read()
            targets = [f"/page{n}.html" for n in range(PIPELINED)]

            def probe() -> int:  # dumpcap says it captures a little before it does: see it happen
                with in_netns(pair.ns_a), socket.create_connection((SERVER, 80), timeout=10):
                    pass
                return tshark_count(pcap, "tcp.flags.syn", "tcp.flags.syn == 1")

            probes = wait_for(probe, "dumpcap capturing", until=lambda n: n > 0)
            with in_netns(pair.ns_a):
                with socket.create_connection((SERVER, 80), timeout=10) as client:
                    client.sendall(b"".join(_request(t, "curl/7.88.1") for t in targets))
                    statuses = _read_responses(client, PIPELINED)
                    client.sendall(_request("/page0.html", "curl/7.88.1", method="HEAD"))
                    head = client.recv(65536)
                    assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n"), head
                for target, agent in ATTACKS:
                    with socket.create_connection((SERVER, 80), timeout=10) as client:
                        client.sendall(_request(target, agent, close=True))
                        while client.recv(65536):
                            pass

            def logged() -> int:
                path = tmp / "access.log"
                return len(path.read_text().splitlines()) if path.exists() else 0

            sent = PIPELINED + 1 + len(ATTACKS)
            wait_for(logged, "nginx logging every request", until=lambda n: n >= sent)
            # dumpcap writes as it goes: wait until every connection's FINs are in the file
            connections = probes // 2 + 1 + len(ATTACKS)  # a SYN and a SYN-ACK per probe that was seen
            wait_for(lambda: tshark_count(pcap, "tcp.flags.fin", "tcp.flags.fin == 1"), "dumpcap writing the capture",
                     until=lambda n: n >= 2 * connections)  # fmt: skip
        finally:
            capture.send_signal(signal.SIGINT)
            capture.wait(timeout=30)
            if capture.stderr is not None:
                capture.stderr.close()
            pid = tmp / "nginx.pid"
            if pid.exists():
                os.kill(int(pid.read_text()), signal.SIGTERM)
    yield Session(pcap, tmp / "access.log", targets, statuses)


def analyse(path: Path) -> list[Record]:
    analyzer = PacketAnalyzer()
    with PcapFile(path) as pcap:
        for index, frame in enumerate(pcap):
            analyzer.feed(frame.timestamp, frame.data, frame.wire_len, frame.linktype, index)
    analyzer.flush()
    return analyzer.drain()


def tshark_count(path: Path, field: str, display: str | None = None) -> int:
    """How many values of ``field`` tshark reads in ``path`` (several per frame when pipelined)."""
    assert TSHARK is not None
    out = subprocess.run(
        [TSHARK, "-r", str(path), "-Y", display or field, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,",
         "-e", field],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return sum(len([value for value in line.split(",") if value]) for line in out.splitlines())


def test_n15_7_pipelined_requests_are_all_paired_in_order_like_tshark(session: Session) -> None:
    http = [r.fields for r in analyse(session.pcap) if r.dataset == "network.http"]
    requests = [f for f in http if "http.request.method" in f]
    sent = PIPELINED + 1 + len(ATTACKS)
    assert len(requests) == tshark_count(session.pcap, "http.request.method") == sent, Counter(
        f.get("url.path") for f in requests
    )
    assert len(http) == len(requests), "a response was emitted as an event of its own"
    assert all(f["source.ip"] == CLIENT and f["destination.ip"] == SERVER for f in http), (
        "a response posed as a request"
    )
    pipelined = [
        f for f in requests if f.get("user_agent.original") == "curl/7.88.1" and f["http.request.method"] == "GET"
    ]
    assert [f["url.path"] for f in pipelined] == session.pipelined
    assert [f["http.response.status_code"] for f in pipelined] == session.statuses == [200, 404] * (PIPELINED // 2)
    sizes = [f.get("http.response.body.bytes") for f in pipelined[::2]]
    assert sizes == [100 + 37 * n for n in range(0, PIPELINED, 2)], "a response was paired with the wrong request"
    (head,) = [f for f in requests if f["http.request.method"] == "HEAD"]
    assert head["http.response.status_code"] == 200


def _web_alerts(store: SqliteStore) -> dict[str, int]:
    """Alerts of the shipped web rules: rule name → events counted."""
    engine = DetectionEngine(load_rules([shipped_rules_dir()]), store)
    assert not engine.errors
    engine.run_until_idle()
    alerts = [doc.body for doc in store.list_docs("alerts", size=100).items]
    return {a["rule.name"]: a["count"] for a in alerts if a["rule.id"] in WEB_RULES}


def test_n15_4_web_rules_count_the_same_attacks_from_the_wire_and_the_log(session: Session, tmp_path: Path) -> None:
    from_log = SqliteStore(tmp_path / "log.db")
    from_log.setup()
    config = SensorConfig(
        tenant="police", sensor_id="web01", state_dir=tmp_path / "log-state",
        inputs=[InputConfig(paths=[str(session.access_log)], parser="nginx", from_beginning=True)],
    )  # fmt: skip
    sensor = LogSensor(config, from_log)
    try:
        assert sensor.run_until_idle(timeout=60)["parse_failures"] == 0
    finally:
        sensor.close()
    from_wire = SqliteStore(tmp_path / "wire.db")
    from_wire.setup()
    net = NetworkSensor(
        NetSensorSettings(tenant="police", sensor_id="tap01", state_dir=tmp_path / "wire-state"), from_wire
    )
    net.import_pcap(session.pcap)
    assert net.close()
    log_alerts, wire_alerts = _web_alerts(from_log), _web_alerts(from_wire)
    assert wire_alerts == log_alerts, f"from the wire {wire_alerts}, from the log {log_alerts}"
    # every attack class sent was seen (404s: the 20 missing pages and the attacks nginx did not find)
    assert set(wire_alerts) >= {"SQL Injection Attempt in Web Request", "Path Traversal Attempt in Web Request",
                                "Web Vulnerability Scanner or Brute-Forcer User Agent"}, wire_alerts  # fmt: skip
