"""Shipped Windows rules fire on real attack recordings (EVTX-ATTACK-SAMPLES).

Each file goes through the same path as ``soc import evtx``: :mod:`sensors.sources.evtx` reads
the records, :mod:`sensors.parsers.windows` turns them into flat ECS events, the importer
stores them in a real SQLite store; the stored events then run through the streaming engine
with every shipped rule, and the rule under test must raise a detection.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from detections.evaluation import Evaluator, compile_ruleset
from detections.loader import load_rules, shipped_rules_dir
from sensors.config import ImportConfig
from sensors.pipeline import EventImport
from soc_core.store.sqlite import SqliteStore
from tests.shared_data import shared_data, unavailable

TENANT = "police"

LSASS_ACCESS = "890414db-1376-456c-b604-372809e41f7d"
PRIVILEGED_GROUP = "e6ec7db2-50a6-411d-8eeb-76436663b3b3"
LOG_CLEARED = "0dc1f4d2-9530-456a-9fe3-52aabd8aebfa"
SERVICE_USER_PATH = "d02556f5-b6df-4e79-b22b-44d4f9b2d993"
SCHTASKS_SCRIPT_HOST = "f9b3a46d-2e7a-41ba-adce-872a9993a012"
TASK_SUSPICIOUS_ACTION = "2cd1ac2a-d10b-494c-84ff-45822ff5158c"
ENCODED_POWERSHELL = "6a8b8443-e5a3-4198-937f-8b882bd7e359"
FAILED_REMOTE_LOGON = "1ef7641a-e12d-4f71-80e0-e01fa46dfbc6"

# (file name, rule that must fire on it, what the recording shows)
ATTACKS = [
    ("sysmon_10_lsass_mimikatz_sekurlsa_logonpasswords.evtx", LSASS_ACCESS, "mimikatz sekurlsa, 0x1010"),
    ("sysmon_10_11_lsass_memdump.evtx", LSASS_ACCESS, "procdump -ma lsass, 0x1fffff"),
    ("sysmon_10_11_outlfank_dumpert_and_andrewspecial_memdump.evtx", LSASS_ACCESS, "Dumpert / comsvcs"),
    ("Network_Service_Guest_added_to_admins_4732.evtx", PRIVILEGED_GROUP, "4732 into S-1-5-32-544"),
    ("DE_1102_security_log_cleared.evtx", LOG_CLEARED, "Security 1102"),
    ("DE_104_system_log_cleared.evtx", LOG_CLEARED, "System 104"),
    ("System_7045_namedpipe_privesc.evtx", SERVICE_USER_PATH, "7045 %COMSPEC% named-pipe getsystem"),
    ("LM_Remote_Service02_7045.evtx", SERVICE_USER_PATH, "7045 ImagePath cmd.exe"),
    ("rundll32_cmd_schtask.evtx", SCHTASKS_SCRIPT_HOST, "cmd.exe → schtasks /Create /XML"),
    ("exec_persist_rundll32_mshta_scheduledtask_sysmon_1_3_11.evtx", SCHTASKS_SCRIPT_HOST, "mshta → schtasks"),
    ("temp_scheduled_task_4698_4699.evtx", TASK_SUSPICIOUS_ACTION, "4698 task running cmd.exe /C"),
    (
        "PrivEsc_SeImpersonatePriv_enabled_back_for_upnp_localsvc_4698.evtx",
        TASK_SUSPICIOUS_ACTION,
        "4698 task running C:\\Users\\Public\\…\\FullPowers.exe",
    ),
    ("discovery_sysmon_1_iis_pwd_and_config_discovery_appcmd.evtx", ENCODED_POWERSHELL, "powershell -enc"),
    ("susp_explorer_exec.evtx", ENCODED_POWERSHELL, "wscript → powershell FromBase64String"),
]


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    ruleset = load_rules([shipped_rules_dir()])
    assert not ruleset.errors, [error.render() for error in ruleset.errors]
    return Evaluator(compile_ruleset(ruleset, only_enabled=False))


def sample(name: str) -> Path:
    root = shared_data("evtx-attack-samples")
    found = sorted(root.rglob(name))
    if not found:
        unavailable(f"{name} not in {root}")
    return found[0]


def imported(path: Path, tmp_path: Path) -> list[dict[str, Any]]:
    """The events of one .evtx file as the importer stores them."""
    store = SqliteStore(tmp_path / "events.sqlite")
    store.setup()
    try:
        config = ImportConfig.from_dict({"tenant": TENANT, "sensor_id": "dc01", "state_dir": str(tmp_path / "state")})
        job = EventImport(config, store)
        job.evtx_file(path)
        assert job.finish()
        events = [json.loads(doc) for (doc,) in store.select("SELECT doc FROM events")]
    finally:
        store.close()
    assert events, f"nothing imported from {path}"
    return sorted(events, key=lambda event: (event["@timestamp"], event.get("winlog.record_id", 0)))


@pytest.mark.parametrize(("name", "rule_id", "shows"), ATTACKS, ids=[case[0] for case in ATTACKS])
def test_shipped_windows_rule_fires_on_attack_recording(
    name: str, rule_id: str, shows: str, evaluator: Evaluator, tmp_path: Path
) -> None:
    events = imported(sample(name), tmp_path)
    detections = evaluator.evaluate(events)
    fired = [d for d in detections if d.rule.id == rule_id]
    assert fired, f"{rule_id} did not fire on {name} ({shows}); fired: {sorted({d.rule.name for d in detections})}"
    for detection in fired:
        assert detection.tenant == TENANT


def test_local_console_failures_are_not_remote_logon_failures(evaluator: Evaluator, tmp_path: Path) -> None:
    """A 4625 for logon type 2 (console) must not feed the RDP brute-force / spraying rules."""
    events = imported(sample("CA_4624_4625_LogonType2_LogonProc_chrome.evtx"), tmp_path)
    failures = [e for e in events if e.get("event.code") == "4625"]
    assert failures and all(e.get("winlog.event_data.LogonType") == "2" for e in failures)
    for event in failures:
        assert FAILED_REMOTE_LOGON not in {rule.loaded.id for rule in evaluator.matching_rules(event)}


def test_benign_lsass_readers_are_left_out(evaluator: Evaluator, tmp_path: Path) -> None:
    """PPLdump's own 0x1000 handle (query-limited) on lsass is below the read-memory threshold."""
    events = imported(sample("ppl_bypass_ppldump_knowdll_hijack_sysmon_security.evtx"), tmp_path)
    limited = [
        e
        for e in events
        if e.get("event.code") == "10"
        and str(e.get("winlog.event_data.TargetImage", "")).lower().endswith("\\lsass.exe")
        and e.get("winlog.event_data.GrantedAccess") == "0x1000"
    ]
    assert limited
    for event in limited:
        assert LSASS_ACCESS not in {rule.loaded.id for rule in evaluator.matching_rules(event)}
