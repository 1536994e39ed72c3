"""Issue 17 item 2: ``soc scan`` over EVTX, pcap, log and Windows JSON files, read by the
sensors' own parsers, with no server, store or tenant."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from detections.evaluation import Evaluator, compile_ruleset
from detections.loader import load_rules, shipped_rules_dir
from soc_api.scan import FileResult, classify, discover, read_events, run_scan
from tests.shared_data import shared_data

ROOT = Path(__file__).resolve().parents[2]
CREDENTIAL_ACCESS = "evtx-attack-samples/Credential Access"
EVTX = ("sysmon_10_11_lsass_memdump.evtx", "MSSQL_multiple_failed_logon_EventID_18456.evtx")
SIGMAHQ_RULES = (
    "rules/windows/file/file_event/file_event_win_lsass_default_dump_file_names.yml",
    "rules/windows/process_access/proc_access_win_lsass_memdump.yml",
    "rules/windows/builtin/application/mssqlserver/win_mssql_failed_logon.yml",
)
LSASS_DUMP = "a5a2d357-1ab8-4675-a967-ef9990a59391"
MSSQL_FAILED = "218d2855-2bba-4f61-9c85-81d0ea63ac71"
MSSQL_BURST = "4f1c8a52-6a3e-4c51-9a53-0d9f5e0b6c17"
CORRELATION = f"""title: MSSQL failed logon burst
id: {MSSQL_BURST}
correlation:
    type: event_count
    rules:
        - {MSSQL_FAILED}
    generate: true
    group-by:
        - host.name
    timespan: 1h
    condition:
        gte: 5
level: high
"""
BROKEN_RULE = """title: Broken on purpose
id: 0d6a0d57-3d6e-4b8a-9b1f-6f3c2e0c1a11
logsource:
    product: windows
detection:
    selection:
        Image|expand: '%nowhere%'
    condition: selection
"""
DNS_TXT_RULE = """title: TXT query
id: 5e0a1f4c-2b7d-4c38-9f61-3d8a7c2e9b10
logsource:
    category: dns
detection:
    selection:
        dns.type: query
        dns.question.type: TXT
    condition: selection
level: low
"""
AUTH_LOG = "".join(
    f"Dec  6 10:00:0{n} web1 sshd[41{n}]: Failed password for root from 203.0.113.9 port 5{n}123 ssh2\n"
    for n in range(6)
)


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("rules")
    for name in SIGMAHQ_RULES:
        shutil.copy(shared_data(f"sigmahq/{name}"), target)
    (target / "mssql_burst.yml").write_text(CORRELATION)
    (target / "broken.yml").write_text(BROKEN_RULE)
    return target


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copied 'disk': two EVTX files, a damaged EVTX, a damaged pcap, a picture."""
    folder = tmp_path_factory.mktemp("evidence")
    for name in EVTX:
        shutil.copy(shared_data(f"{CREDENTIAL_ACCESS}/{name}"), folder)
    (folder / "logs").mkdir()
    (folder / "logs" / "damaged.evtx").write_bytes(b"ElfFile\x00" + os.urandom(5000))
    (folder / "logs" / "capture.pcap").write_bytes(b"not a pcap at all")
    shutil.copy(shared_data("evtx-attack-samples/HeatMap.PNG"), folder / "logs")
    return folder


def _soc(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), SOC_DATA_DIR=str(data_dir))
    return subprocess.run(
        [sys.executable, "-c", "from soc_api.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def test_c17_2_scan_a_folder_jsonl_exit_status_and_bad_input(rules_dir: Path, evidence: Path, tmp_path: Path) -> None:
    result = _soc("scan", str(evidence), "--rules", str(rules_dir), "--format", "jsonl", data_dir=tmp_path)
    assert result.returncode == 1, result.stderr  # 1: something matched
    lines = [json.loads(line) for line in result.stdout.splitlines()]  # nothing but JSON lines on a pipe
    matches = [line for line in lines if line["type"] == "match"]
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for match in matches:
        by_rule.setdefault(match["rule"]["id"], []).append(match)
    assert len(by_rule[MSSQL_FAILED]) == 10, "MSSQL 18456 events: one match each"
    lsass = by_rule[LSASS_DUMP][0]
    assert lsass["rule"]["level"] == "high" and "attack.t1003.001" in lsass["attack"]
    assert lsass["events"][0]["event.dataset"] == "windows.sysmon"  # built by the real Windows parser
    assert lsass["files"] == [str(evidence / "sysmon_10_11_lsass_memdump.evtx")]
    assert len(by_rule[MSSQL_BURST]) >= 1, "the correlation rule did not fire"
    assert by_rule[MSSQL_BURST][0]["count"] >= 5
    summary = {line["rule"]: line for line in lines if line["type"] == "summary"}
    assert summary[MSSQL_FAILED]["matches"] == 10
    errors = {line["path"]: line["error"] for line in lines if line["type"] == "file_error"}
    assert str(evidence / "logs" / "capture.pcap") in errors, errors
    assert "HeatMap" not in " ".join(errors), "a picture in a folder is not an input"
    assert str(evidence / "logs" / "damaged.evtx") in errors, errors
    rule_errors = [line for line in lines if line["type"] == "rule_error"]
    assert any("broken.yml" in str(error["where"]) and "nowhere" in error["message"] for error in rule_errors)
    assert "capture.pcap" in result.stderr and "broken.yml" in result.stderr  # reported for the person too
    assert "\x1b[" not in result.stderr, "no progress display on a pipe"


def test_c17_2_no_match_exits_0_and_csv_and_json(rules_dir: Path, tmp_path: Path) -> None:
    quiet = tmp_path / "quiet.evtx"
    shutil.copy(shared_data(f"{CREDENTIAL_ACCESS}/CA_DCSync_4662.evtx"), quiet)
    one_rule = tmp_path / "rules"
    one_rule.mkdir()
    shutil.copy(rules_dir / "win_mssql_failed_logon.yml", one_rule)
    result = _soc("scan", str(quiet), "--rules", str(one_rule), "--format", "csv", data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0][:3] == ["rule_id", "title", "level"] and len(rows) == 1
    missing = _soc("scan", str(tmp_path / "nothing-here"), data_dir=tmp_path)
    assert missing.returncode == 2 and "nothing-here" in missing.stderr


def _scan(paths: list[Path], rules: list[Path], *, workers: int = 1) -> list[str]:
    ruleset = load_rules(rules)
    evaluator = Evaluator(compile_ruleset(ruleset, only_enabled=False))
    inputs, _ = discover(paths)
    result = run_scan(evaluator, inputs, workers=workers)
    return sorted(d.rule.id for d in result.detections)


def test_c17_2_log_files_and_correlation_through_the_auth_parser(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text(AUTH_LOG)
    assert getattr(classify(log), "parser", None) == "auth"
    rules = _scan([log], [shipped_rules_dir()])
    assert (
        rules.count("629bb779-f5fc-4c9d-a11d-f8a4f43f7f2b") + rules.count("74d45926-2b16-4397-acdf-3728c2a10647") >= 2
    )
    assert "74d45926-2b16-4397-acdf-3728c2a10647" in rules, "SSH brute force (event_count correlation) did not fire"


def test_c17_2_pcap_through_the_packet_analyzer(tmp_path: Path) -> None:
    pcap = tmp_path / "dns.pcap"
    shutil.copy(shared_data("pcaps/zeek/dns-txt-multiple.pcap"), pcap)
    rule = tmp_path / "rules" / "txt.yml"
    rule.parent.mkdir()
    rule.write_text(DNS_TXT_RULE)
    rules = _scan([pcap], [rule.parent])
    assert rules == ["5e0a1f4c-2b7d-4c38-9f61-3d8a7c2e9b10"], rules  # the analyzer's network.dns query event


def test_c17_2_windows_json_lines_nxlog_from_otrf(tmp_path: Path) -> None:
    capture = shared_data("otrf/datasets/atomic/windows/defense_evasion/host/empire_launcher_sct_regsvr32.zip")
    with zipfile.ZipFile(capture) as archive:
        name = archive.namelist()[0]
        lines = archive.read(name).splitlines()[:400]
    target = tmp_path / "capture.json"
    target.write_bytes(b"\n".join(lines) + b"\n")
    assert getattr(classify(target), "parser", None) == "windows"
    inputs, _ = discover([target])
    counts = FileResult(str(target))
    events = list(read_events(inputs[0], counts))
    assert len(events) == 400 and all(str(e["event.dataset"]).startswith("windows.") for e in events)


def test_c17_2_workers_give_the_same_detections(rules_dir: Path) -> None:
    files = [shared_data(f"{CREDENTIAL_ACCESS}/{name}") for name in EVTX]
    one = _scan(files, [rules_dir], workers=1)
    two = _scan(files, [rules_dir], workers=2)
    assert one == two and MSSQL_BURST in one
