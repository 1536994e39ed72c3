"""Issue 15 item 3 with real tools: sqlmap and nmap against a real nginx in a network namespace.

nginx (in one namespace) serves a vulnerable-looking endpoint, ``/item.php?id=1``, and writes
the combined access log; sqlmap (in the other namespace) runs every technique (boolean, error,
union, stacked, time, inline queries) against it; nmap runs a service scan (``-sV``) and HTTP
scripts. The access log goes through the real nginx parser and the shipped rules.

- SQL injection: of sqlmap's requests whose decoded target holds SQL keywords, the share the
  rule matches (printed, and at least MIN_SHARE).
- nmap: its service probes and NSE requests raise the nmap rule.

Needs root, iproute2, nginx, sqlmap and nmap (``scripts/install-system-deps``).
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from detections.evaluation import Evaluator, compile_ruleset
from detections.loader import load_rules, shipped_rules_dir
from sensors.parsers.context import ParseContext
from sensors.parsers.web import parse_line
from soc_core.events import format_timestamp
from tests.support.netns import in_netns, veth_pair
from tests.support.waiting import wait_for

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SQLMAP = shutil.which("sqlmap")
NMAP = shutil.which("nmap")
SQLI = "4b93f6e6-f86c-4260-a9b6-f1ba07ddc73b"
NMAP_PROBE = "42b3f55b-b248-4ab7-bd9e-3e7e4de44d96"
TARGET, ATTACKER = "10.213.7.1", "10.213.7.2"
SILENT_PORT = 8081
MIN_SHARE = 0.97
# what makes a request one of sqlmap's SQL payloads (not a plain value or its random junk)
SQL_WORDS = re.compile(
    r"[^a-z0-9_](select|union|and|or|xor|order by|sleep|waitfor|benchmark|case when|extractvalue|updatexml|"
    r"dbms_pipe|concat|char|chr|cast|convert|rlike|null)[^a-z0-9_]",
    re.IGNORECASE,
)


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, nginx)"
    for tool, package in ((NGINX, "nginx"), (SQLMAP, "sqlmap"), (NMAP, "nmap")):
        if tool is None or not Path(tool).exists():
            return f"{package} is not installed (scripts/install-system-deps)"
    return None


pytestmark = [pytest.mark.netns, pytest.mark.slow, pytest.mark.skipif(_missing() is not None, reason=_missing() or "")]


@dataclass
class WebRange:
    attacker: str  # namespace
    log: Path
    tmp: Path

    def run(self, *command: str, timeout: float = 150) -> str:
        done = subprocess.run(
            ["ip", "netns", "exec", self.attacker, *command],
            cwd=self.tmp, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        return done.stdout + done.stderr

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        """The access log's lines from ``since`` on, parsed by the real nginx parser."""
        ctx = ParseContext(now=datetime.now(UTC))
        found = []
        lines = self.log.read_text(errors="replace").splitlines()[since:]
        for number, line in enumerate(lines, start=since):
            fields = parse_line(line, ctx, "nginx")
            stamp = fields["@timestamp"]
            fields["@timestamp"] = format_timestamp(stamp) if isinstance(stamp, datetime) else stamp
            found.append({**fields, "event.id": f"line-{number}", "organization.id": "police", "event.kind": "event"})
        return found

    def lines(self) -> int:
        return len(self.log.read_text(errors="replace").splitlines()) if self.log.exists() else 0


@pytest.fixture(scope="module")
def web_range(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRange]:
    tmp = tmp_path_factory.mktemp("web-range")
    log = tmp / "access.log"
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"worker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"  access_log {log} combined;\n"
        f"  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fcgi;\n"
        f"  uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;\n"
        f"  server {{\n    listen {TARGET}:80;\n"
        "    location = /item.php { default_type text/html;\n"
        "      return 200 '<html><body><h1>Item</h1><p>Bảng giá</p></body></html>'; }\n"
        "    location / { return 404; }\n  }\n"
        # a server that hangs up without an answer: nmap -sV goes through its probes, the
        # request for "/nice ports,/Trinity.txt.bak" among them
        f"  server {{\n    listen {TARGET}:{SILENT_PORT};\n    location / {{ return 444; }}\n  }}\n}}\n"
    )
    with veth_pair() as pair:
        assert pair.ns_a and pair.ns_b
        server = subprocess.Popen(
            ["ip", "netns", "exec", pair.ns_a, NGINX, "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            web = WebRange(pair.ns_b, log, tmp)

            def answer() -> int:
                with in_netns(pair.ns_b):
                    client = http.client.HTTPConnection(TARGET, 80, timeout=5)
                    try:
                        client.request("GET", "/item.php?id=1")
                        return client.getresponse().status
                    finally:
                        client.close()

            wait_for(answer, "nginx answering", until=lambda status: status == 200, ignore=(OSError,))
            yield web
        finally:
            server.terminate()
            server.wait(timeout=20)
            assert server.stderr is not None
            server.stderr.close()


def _matches(events: list[dict[str, Any]], rule_id: str) -> set[str]:
    evaluator = Evaluator(compile_ruleset(load_rules([shipped_rules_dir()])))
    return {str(e["event.id"]) for e in events if any(r.meta.id == rule_id for r in evaluator.matching_rules(e))}


def test_d15_3_sqlmap_payloads_are_matched(web_range: WebRange) -> None:
    since = web_range.lines()
    said = web_range.run(
        str(SQLMAP), "-u", f"http://{TARGET}/item.php?id=1", "--batch", "--technique=BEUSTQ", "--level=2",
        "--risk=2", "--threads=4", "--timeout=5", "--retries=0", "--time-sec=1", "--disable-coloring",
        "--output-dir", str(web_range.tmp / "sqlmap"),
    )  # fmt: skip
    assert "all tested parameters do not appear to be injectable" in said or "not injectable" in said, said[-2000:]
    events = wait_for(lambda: web_range.events(since), "nginx logging sqlmap's requests", until=len)
    payloads = [e for e in events if SQL_WORDS.search(" " + str(e.get("url.decoded") or e["url.original"]) + " ")]
    assert len(payloads) >= 100, f"only {len(payloads)} of {len(events)} requests carry SQL"
    matched = _matches(payloads, SQLI)
    missed = [str(e.get("url.decoded") or e["url.original"]) for e in payloads if e["event.id"] not in matched]
    share = len(matched) / len(payloads)
    print(f"sqlmap: {len(events)} requests, {len(payloads)} with SQL keywords, {len(matched)} matched ({share:.1%})")
    assert share >= MIN_SHARE, f"{share:.1%} matched; missed: {missed[:20]}"
    # the plain requests sqlmap makes first (the original page, its stability checks) are not attacks
    plain = [e for e in events if e["url.original"] == "/item.php?id=1"]
    assert plain and not _matches(plain, SQLI)


def test_d15_3_nmap_service_and_script_probes_raise_the_nmap_rule(web_range: WebRange) -> None:
    since = web_range.lines()
    said = web_range.run(
        str(NMAP), "-Pn", "-n", "-sV", "-p", f"80,{SILENT_PORT}", "--script",
        "http-title,http-headers,http-methods,http-git,http-robots.txt", TARGET,
    )  # fmt: skip
    assert re.search(r"80/tcp +open", said), said
    events = wait_for(lambda: web_range.events(since), "nginx logging nmap's requests", until=len)
    matched = _matches(events, NMAP_PROBE)
    scripts = [e for e in events if "Nmap Scripting Engine" in str(e.get("user_agent.original"))]
    probes = [e for e in events if "Trinity.txt.bak" in str(e.get("url.decoded"))]
    print(
        f"nmap: {len(events)} requests, {len(matched)} matched, {len(scripts)} from scripts, {len(probes)} -sV probes"
    )
    assert scripts and {e["event.id"] for e in scripts} <= matched
    assert probes and {e["event.id"] for e in probes} <= matched, [e["http.request.original"] for e in events]
