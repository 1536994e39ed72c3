"""EVTX import: real attack samples → windows.* events in the real SQLite store → SigmaHQ rules."""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from detections.evaluation import Evaluator, compile_ruleset
from detections.loader import load_rules
from sensors.config import ImportConfig
from sensors.parsers import ParseContext, windows
from sensors.pipeline import EventImport
from sensors.sources.evtx import EvtxFailure, EvtxRecord, evtx_files, fingerprint, read_evtx
from soc_core.events import Event, validate_event
from soc_core.store.sqlite import SqliteStore
from tests.shared_data import shared_data

TENANT = "police"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    db = SqliteStore(tmp_path / "events.sqlite")
    db.setup()
    yield db
    db.close()


def importer(tmp_path: Path, store: SqliteStore) -> EventImport:
    config = ImportConfig.from_dict({"tenant": TENANT, "sensor_id": "dc01", "state_dir": str(tmp_path / "state")})
    return EventImport(config, store)


def stored(store: SqliteStore) -> list[Event]:
    return [json.loads(doc) for (doc,) in store.select("SELECT doc FROM events")]


def samples(*names: str) -> list[Path]:
    root = shared_data("evtx-attack-samples")
    return [next(root.rglob(name)) for name in names]


def test_import_sysmon_and_security_files_with_ecs_fields(tmp_path: Path, store: SqliteStore) -> None:
    files = samples("rundll32_cmd_schtask.evtx", "DE_RDP_Tunnel_5156.evtx")
    job = importer(tmp_path, store)
    for path in files:
        job.evtx_file(path)
    assert job.finish()
    events = stored(store)
    assert len(events) == job.stats["records"] > 0
    assert job.counters()["events_out"] == len(events)
    for event in events:
        assert validate_event(event) == []
        assert event["organization.id"] == TENANT
        assert event["event.dataset"].startswith("windows.")
        assert event["event.code"] == event["winlog.event_id"]
        assert isinstance(event["winlog.record_id"], int)
    creation = [e for e in events if e["event.dataset"] == "windows.sysmon" and e["event.code"] == "1"]
    assert creation
    sample = creation[0]
    assert sample["winlog.channel"] == "Microsoft-Windows-Sysmon/Operational"
    assert sample["process.executable"] == sample["winlog.event_data.Image"]
    assert sample["process.command_line"] == sample["winlog.event_data.CommandLine"]
    assert sample["process.parent.executable"] == sample["winlog.event_data.ParentImage"]
    assert sample["host.name"] == sample["winlog.computer_name"]
    assert any(e["event.dataset"] == "windows.security" for e in events)


def test_reimport_writes_nothing_new_and_ids_come_from_fingerprint_and_record(
    tmp_path: Path, store: SqliteStore
) -> None:
    (path,) = samples("rundll32_cmd_schtask.evtx")
    copy = tmp_path / "copy.evtx"
    shutil.copy(path, copy)
    assert fingerprint(copy) == fingerprint(path)
    first = importer(tmp_path, store)
    first.evtx_file(path)
    assert first.finish()
    count = len(stored(store))
    second = importer(tmp_path, store)
    second.evtx_file(copy)
    assert second.finish()
    assert len(stored(store)) == count
    assert second.counters()["duplicates"] == count


def test_damaged_files_are_counted_failures_never_a_crash(tmp_path: Path, store: SqliteStore) -> None:
    (path,) = samples("rundll32_cmd_schtask.evtx")
    data = bytearray(path.read_bytes())
    rng = random.Random(7)
    damaged = []
    for number in range(6):
        broken = bytearray(data)
        for _ in range(50 * (number + 1)):
            broken[rng.randrange(4096, len(broken))] = rng.randrange(256)
        target = tmp_path / f"broken{number}.evtx"
        target.write_bytes(bytes(broken))
        damaged.append(target)
    (tmp_path / "junk.evtx").write_bytes(b"not an evtx file at all")
    (tmp_path / "short.evtx").write_bytes(bytes(data[: len(data) // 3]))
    damaged += [tmp_path / "junk.evtx", tmp_path / "short.evtx"]
    job = importer(tmp_path, store)
    for target in damaged:
        job.evtx_file(target)
    assert job.finish()
    counters = job.counters()
    assert counters["read_failures"] >= 1
    assert counters["events_out"] == counters["records"] == len(stored(store))


def test_folder_listing_finds_nested_files_once() -> None:
    root = shared_data("evtx-attack-samples")
    files = evtx_files([root, root / "Execution"])
    assert len(files) == len(set(files)) == len(list(root.rglob("*.evtx")))


@pytest.mark.slow
def test_sigmahq_process_creation_rules_fire_on_imported_attack_samples() -> None:
    rules = compile_ruleset(load_rules([shared_data("sigmahq/rules/windows/process_creation")]))
    evaluator = Evaluator(rules)
    context = ParseContext(now=datetime.now(UTC))
    hits: Counter[tuple[str, str]] = Counter()
    failures = Counter[str]()
    for path in evtx_files([shared_data("evtx-attack-samples")]):
        for item in read_evtx(path):
            if isinstance(item, EvtxFailure):
                failures["read"] += 1
                continue
            assert isinstance(item, EvtxRecord)
            fields = windows.parse(item.data, context)
            fields.pop("@timestamp", None)
            fields.update({"@timestamp": "2019-01-01T00:00:00.000Z", "event.id": str(item.record_id)})
            fields["organization.id"] = TENANT
            for rule in evaluator.matching_rules(fields):
                hits[(rule.loaded.title, path.name)] += 1
    titles = {title for title, _ in hits}
    assert ("Scheduled Task Creation Via Schtasks.EXE", "rundll32_cmd_schtask.evtx") in hits
    assert any(title == "Local Accounts Discovery" for title in titles)
    assert any(title.startswith("HackTool - UACMe") for title in titles)
    assert len(titles) >= 100, sorted(titles)
