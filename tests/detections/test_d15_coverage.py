"""The detection-coverage table in docs/ is the one the shipped rules give (issue 15)."""

from __future__ import annotations

from pathlib import Path

from detections.coverage import coverage_markdown, coverage_rows
from detections.loader import load_rules, shipped_rules_dir
from playbooks.format import configured_library

TABLE = Path(__file__).resolve().parents[2] / "docs" / "detection-coverage.md"


def test_d15_coverage_table_is_up_to_date() -> None:
    wanted = coverage_markdown(load_rules([shipped_rules_dir()]))
    assert TABLE.read_text(encoding="utf-8") == wanted, (
        "docs/detection-coverage.md is out of date: run `soc rules coverage --output docs/detection-coverage.md`"
    )


def test_d15_coverage_says_log_wire_or_both() -> None:
    rows = {
        technique: (titles, where) for technique, _, titles, where in coverage_rows(load_rules([shipped_rules_dir()]))
    }
    assert rows["T1046"][1] == "both"  # nmap in the web server's log, the port scan on the wire
    assert rows["T1557.002"][1] == "wire" and rows["T1003.001"][1] == "log"
    titles, where = rows["T1110.001"]
    # the web login rules read access logs and the HTTP the network sensor sees
    assert "SSH Brute Force" in titles and "SSH Login Succeeded After Brute Force" in titles and where == "both"


def test_d15_password_spraying_alert_starts_the_ssh_playbook() -> None:
    library = configured_library([])
    spraying = {"rule.id": "629bb779-f5fc-4c9d-a11d-f8a4f43f7f2b", "rule.level": "high", "rule.tags": []}
    started = sorted(name for name, playbook in library.playbooks.items() if playbook.trigger.matches(spraying))
    assert started == ["ssh-bruteforce"]
