"""Item 3 of the s13 intel brief: with ``detection.workers`` > 1 the threat-intel lookup runs in
the worker processes (lists loaded per worker, reloaded when they change), so the engine reads
each batch once; the alerts are those of one process. On SQLite and Elasticsearch."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from detections.engine import CHECKPOINT_ID, CHECKPOINT_KIND, DetectionEngine
from detections.loader import RuleSet, load_rules, shipped_rules_dir
from intel import lists
from intel.parsers import parse_file
from soc_core.store import Store
from soc_core.store.base import Position, ReadPlan
from tests.intel.support import NOW, event, load

SSH_BRUTEFORCE = "74d45926-2b16-4397-acdf-3728c2a10647"
ATTACKER = "198.51.100.23"  # the SSH brute-force samples' source


def clock() -> datetime:
    return NOW


def ssh_samples() -> list[dict[str, Any]]:
    [folder] = shipped_rules_dir().glob(f"*/samples/{SSH_BRUTEFORCE}")
    return [json.loads(line) for line in (folder / "match.jsonl").read_text(encoding="utf-8").splitlines() if line]


def world(store: Store, tmp_path: Path) -> list[dict[str, Any]]:
    """Lists of police, of health and of the province; events of both agencies (flows with
    listed and unlisted addresses, a listed domain and hash, and the SSH brute-force samples,
    whose attacker a province-wide list names): rule alerts and intel alerts from the same
    events, in several batches and blocks."""
    load(store, "list.csv", tenant="police", list_name="blocklist")
    load(store, "misp_event.json", tenant="health", list_name="phish")
    feed = tmp_path / "province.csv"
    feed.write_text(f"type,value,confidence\nip,{ATTACKER},95\ndomain,c2.example,70\n", encoding="utf-8")
    lists.import_list(store, parse_file(feed, "csv"), tenant="*", name="national", fmt="csv", source="t")
    events: list[dict[str, Any]] = []
    for n in range(1, 61):
        tenant = "police" if n % 3 else "health"
        fields: dict[str, Any] = {"source.ip": f"10.20.{n}.1" if n % 4 else f"192.0.2.{n}", "destination.port": n}
        if n % 7 == 0:
            fields["dns.question.name"] = "www.c2.example"
        if n % 11 == 0:
            fields["file.hash.md5"] = "44d88612fea8a8f36de82e1278abb02f"
        if n % 13 == 0:
            fields["destination.ip"] = "203.0.113.9"
        events.append(dict(event(tenant, n, fields)))
    return events + ssh_samples()


def snapshot(store: Store) -> list[tuple[Any, ...]]:
    store.refresh()
    return sorted(
        (
            doc.id,
            doc.body["tenant"],
            doc.body["rule.id"],
            doc.body["count"],
            tuple(sorted(doc.body["event_ids"])),
            json.dumps(doc.body.get("details"), sort_keys=True),
        )
        for doc in store.list_docs("alerts", size=1000).items
    )


def forget_alerts(store: Store) -> None:
    """Back to before the engine ran: no alerts, no checkpoint."""
    store.refresh()
    for doc in store.list_docs("alerts", size=1000).items:
        store.delete_doc("alerts", doc.id)
    store.delete_doc(CHECKPOINT_KIND, CHECKPOINT_ID)
    store.refresh()


def run(store: Store, rules: RuleSet, workers: int) -> None:
    with DetectionEngine(rules, store, clock=clock, workers=workers) as engine:
        engine.intel.refresh_seconds = 0
        engine.run_until_idle(limit=25)


def count_reads(monkeypatch: pytest.MonkeyPatch, store: Store, log: Path) -> None:
    """Every process's reads of events (the engine's and its forked workers'), appended to
    ``log`` one line per event read: O_APPEND writes of one line do not interleave."""
    real = type(store).read_plan

    def read_plan(self: Store, plan: ReadPlan, blocks: Iterable[int] | None = None) -> list[tuple[Position, Any]]:
        read = real(self, plan, blocks)
        lines = "".join(f"{os.getpid()} {e['organization.id']}/{e['event.id']}\n" for _, e in read)
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, lines.encode())
        finally:
            os.close(fd)
        return read

    monkeypatch.setattr(type(store), "read_plan", read_plan)  # before the workers are forked


def reads(log: Path) -> tuple[Counter[str], set[int]]:
    pairs = [line.split() for line in log.read_text().splitlines()] if log.exists() else []
    return Counter(key for _, key in pairs), {int(pid) for pid, _ in pairs}


def test_s13i_3_intel_alerts_same_with_one_and_two_workers(store: Store, tmp_path: Path) -> None:
    rules = load_rules([shipped_rules_dir()])
    store.add_events(world(store, tmp_path))
    run(store, rules, workers=1)
    alone = snapshot(store)
    kinds = Counter(rule.split(":")[0] for _, _, rule, *_ in alone)
    assert kinds["intel"] >= 6 and SSH_BRUTEFORCE in {rule for _, _, rule, *_ in alone}, alone
    forget_alerts(store)
    assert snapshot(store) == []
    run(store, rules, workers=2)
    assert snapshot(store) == alone


@pytest.mark.parametrize("workers", [1, 2])
def test_s13i_3_each_batch_is_read_once(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    events = world(store, tmp_path)
    store.add_events(events)
    log = tmp_path / "reads.log"
    count_reads(monkeypatch, store, log)
    run(store, load_rules([shipped_rules_dir()]), workers=workers)
    counted, pids = reads(log)
    doubled = {key: n for key, n in counted.items() if n > 1}
    assert not doubled, f"{len(doubled)} events read more than once (a batch read again?), e.g. {sorted(doubled)[:3]}"
    assert len(counted) == len(events), f"{len(events) - len(counted)} events never read"
    if workers > 1:
        assert os.getpid() not in pids, "the engine process read events itself"
    store.refresh()
    assert sum(1 for doc in store.list_docs("alerts", size=1000).items if doc.body["rule.id"].startswith("intel:"))
