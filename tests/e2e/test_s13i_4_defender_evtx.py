"""Item 4 of the s13 intel brief: the windows-malware library playbook from a real Windows
Defender log. A recorded EVTX file (EVTX-ATTACK-SAMPLES: Defender events 1116 "malware
detected" and 1117 "action taken", Atomic Red Team's PowerSploit on host MSEDGEWIN10) goes
through the EVTX import into the store; the engine, with the shipped rules plus SigmaHQ's
``windefend`` folder (``detection.rules_dirs``, as README documents), raises *Windows Defender
Threat Detected*; the shipped playbook runs on that alert by itself (inventory, intel, case),
its isolation gate is approved through the API by the agency's analyst, and the block is
planned as the automatic run's dry run. On SQLite and Elasticsearch.

What the real log showed: the events carry ``Source Name`` as the unresolved insert ``%%818``
(EVTX keeps message parameters, not their text), and the field is written with a space; the
SigmaHQ AMSI rule (``SourceName: AMSI``) therefore cannot fire from EVTX imports, only from
forwarders that render the message (Winlogbeat). The threat rule needs only ``EventID``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient

from detections.engine import DetectionEngine
from detections.loader import load_rules, shipped_rules_dir
from playbooks.format import configured_library
from playbooks.records import FINAL, auto_run_id, get_run
from playbooks.runner import Runner
from sensors.config import ImportConfig
from sensors.pipeline import EventImport
from soc_api.main import create_app
from soc_api.services import accounts
from soc_core.auth import Membership
from soc_core.config import Settings
from soc_core.store import Store
from tests.shared_data import shared_data
from workflow import audit

DEFENDER_LOG = "evtx-attack-samples/AutomatedTestingTools/WinDefender_Events_1117_1116_AtomicRedTeam.evtx"
DEFENDER_RULES = "sigmahq/rules/windows/builtin/windefend"
DEFENDER_THREAT = "57b649ef-ff42-4fb0-8bf6-62da243a1708"
DEFENDER_AMSI = "ea9bf0fa-edec-4fb8-8b78-b119f2528186"
HOST, HOST_ADDRESS = "MSEDGEWIN10", "10.30.4.17"
PASSWORD = "a-very-long-password"


def import_evtx(store: Store, tmp_path: Path) -> dict[str, int]:
    job = EventImport(
        ImportConfig.from_dict({"tenant": "police", "sensor_id": "ws-import", "state_dir": str(tmp_path / "state")}),
        store,
    )
    job.evtx_file(shared_data(DEFENDER_LOG))
    assert job.finish()
    return dict(job.counters())


def drive(runner: Runner, store: Store) -> list[dict[str, Any]]:
    """Poll the runner until every run is final or waiting for a person (bounded polls)."""
    for _ in range(50):
        for future in runner.poll_once():
            future.result(timeout=120)
        store.refresh()
        runs = [doc.body for doc in store.list_docs("playbook_runs", size=100).items]
        if runs and all(run["status"] in (*FINAL, "waiting_approval") for run in runs):
            return runs
    raise AssertionError(f"runs still going after 50 polls: {[run['status'] for run in runs]}")


def test_s13i_4_defender_evtx_to_alert_to_windows_malware_run(store: Store, tmp_path: Path) -> None:
    counters = import_evtx(store, tmp_path)
    assert counters["events_out"] == 11, counters  # six 1116 and five 1117 records
    store.refresh()

    rules = load_rules([shipped_rules_dir(), shared_data(DEFENDER_RULES)])
    assert not rules.errors, [error.render() for error in rules.errors]
    DetectionEngine(rules, store).run_until_idle()
    store.refresh()
    alerts = [{**doc.body, "id": doc.id} for doc in store.list_docs("alerts", size=100).items]
    fired = {alert["rule.id"] for alert in alerts}
    assert DEFENDER_THREAT in fired, sorted(fired)
    assert DEFENDER_AMSI not in fired  # Source Name is "%%818" in the EVTX: see the module docstring
    threat = [alert for alert in alerts if alert["rule.id"] == DEFENDER_THREAT]
    assert sum(alert["count"] for alert in threat) == 11
    assert all(alert["entities"]["host.name"] == [HOST] and alert["tenant"] == "police" for alert in threat)

    inventory = tmp_path / "assets.yml"
    asset = {"name": HOST, "ips": [HOST_ADDRESS], "owner": "it.tuan@congan.gov.vn", "agency": "police"}
    inventory.write_text(yaml.safe_dump({"assets": [asset]}), encoding="utf-8")
    settings = Settings(data_dir=tmp_path, playbooks={"assets": {"paths": [inventory]}, "retry_backoff_seconds": 0.01})
    audit.configure(store, settings)
    runner = Runner(store, settings, configured_library([]))
    try:
        runs = drive(runner, store)
        mine = [run for run in runs if run["playbook"] == "windows-malware"]
        assert {run["alert_id"] for run in mine} == {alert["id"] for alert in threat}, runs
        run_id = auto_run_id("windows-malware", threat[0]["id"])
        run = get_run(store, run_id).body
        steps = {step["id"]: step for step in run["steps"]}
        assert run["status"] == "waiting_approval" and steps["isolate"]["status"] == "waiting_approval", steps
        assert steps["assets"]["output"]["assets"][0]["name"] == HOST.lower()  # the inventory folds names
        case = store.get_doc("cases", run["case_id"]).body
        assert case["title"] == f"Windows Defender Threat Detected — {HOST}"
        assert "it.tuan@congan.gov.vn" in case["description"]
        assert {steps["mail_agency"]["status"], steps["hook_agency"]["status"]} == {"skipped"}  # no contacts set

        accounts.add_tenant(store, tenant_id="police", name="Police")
        accounts.add_user(store, username="lan", password=PASSWORD, memberships=[Membership("police", "analyst")])
        client = TestClient(create_app(settings, store))
        token = client.post("/api/auth/login", json={"username": "lan", "password": PASSWORD}).json()["access_token"]
        approved = client.post(
            f"/api/playbook-runs/{run_id}/steps/isolate/approve",
            json={"comment": "PowerSploit on a workstation"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert approved.status_code == 200, approved.text
        assert runner.execute(run_id) == "succeeded"
        store.refresh()
        isolate = {step["id"]: step for step in get_run(store, run_id).body["steps"]}["isolate"]
        assert isolate["approval"]["decided_by"] == "lan", isolate
        assert isolate["output"]["dry_run"] is True and isolate["output"]["address"] == HOST_ADDRESS, isolate
    finally:
        runner.close()
