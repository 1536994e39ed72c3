"""Item 2 of the intel brief: an event whose IP, domain, URL or hash is on a list visible to its
agency becomes an alert through the real detection engine, on SQLite and Elasticsearch."""

from __future__ import annotations

from datetime import datetime

import pytest

from detections.engine import DetectionEngine
from detections.loader import RuleSet
from intel import lists
from intel.indicators import Indicator
from intel.lookup import IntelIndex, ListedIndicators
from soc_core.store import Store
from tests.intel.support import NOW, event, load


def clock() -> datetime:
    return NOW


def alerts(store: Store) -> dict[tuple[str, str], dict[str, object]]:
    store.refresh()
    found = {}
    for doc in store.list_docs("alerts", size=1000).items:
        found[(doc.body["tenant"], doc.body["group"]["intel.indicator"])] = doc.body
    return found


def test_i2_intel_hits_become_alerts(store: Store) -> None:
    load(store, "misp_feed", tenant="*", list_name="vncert")
    load(store, "bundle.json", tenant="police", list_name="cert")
    load(store, "misp_event.json", tenant="police", list_name="phish")
    events = [
        event("police", 1, {"source.ip": "203.0.113.7", "destination.ip": "10.0.0.5"}),  # province-wide list
        event("police", 2, {"destination.ip": "198.51.100.77"}),  # inside 198.51.100.0/24
        event("police", 3, {"dns.question.name": "www.C2.bad.example"}, dataset="zeek.dns"),  # a subdomain
        event("police", 4, {"url.full": "https://phish.example/login?x=1"}, dataset="nginx.access"),
        event("police", 5, {"file.hash.md5": "79054025255FB1A26E4BC422AEF54EB4"}, dataset="windows.sysmon"),
        event("police", 6, {"source.ip": "2001:db8:bad::9"}),  # in an IPv6 network of the STIX list
        event("health", 7, {"file.hash.md5": "79054025255fb1a26e4bc422aef54eb4"}, dataset="windows.sysmon"),  # police's
        event("health", 8, {"source.ip": "203.0.113.7"}),  # the province-wide list is everyone's
        event("police", 9, {"source.ip": "192.0.2.1", "dns.question.name": "example"}),  # nothing listed
        event("police", 10, {"source.ip": "203.0.113.7"}),  # a repeat: folds into the first alert
    ]
    assert all(item.stored for item in store.add_events(events).items)

    engine = DetectionEngine(RuleSet(), store, clock=clock)
    result = engine.run_until_idle()
    assert result.events == len(events)
    found = alerts(store)
    assert set(found) == {
        ("police", "203.0.113.7"),
        ("police", "198.51.100.0/24"),
        ("police", "c2.bad.example"),
        ("police", "https://phish.example/login?x=1"),
        ("police", "79054025255fb1a26e4bc422aef54eb4"),
        ("police", "2001:db8:bad::/48"),
        ("health", "203.0.113.7"),
    }
    first = found[("police", "203.0.113.7")]
    assert first["rule.id"] == "intel:vncert" and first["rule.level"] == "critical"  # confidence 90
    assert first["count"] == 2  # events 1 and 10
    hit = first["details"]["intel"]  # type: ignore[index]
    assert hit["field"] == "source.ip" and hit["source"] == "VNCERT / SSH brute force sources"
    assert hit["first_seen"] == "2026-11-30T00:00:00.000Z" and hit["confidence"] == 90
    assert found[("police", "c2.bad.example")]["rule.level"] == "medium"  # default confidence 50
    assert found[("police", "c2.bad.example")]["details"]["intel"]["value"] == "www.C2.bad.example"  # type: ignore[index]
    assert found[("police", "79054025255fb1a26e4bc422aef54eb4")]["rule.id"] == "intel:cert"


def test_i2_engine_reloads_when_lists_change(store: Store) -> None:
    engine = DetectionEngine(RuleSet(), store, clock=clock)
    engine.intel.refresh_seconds = 0  # check the generation at every batch
    store.add_events([event("police", 1, {"source.ip": "203.0.113.9"})])
    engine.run_until_idle()
    assert alerts(store) == {}

    load(store, "list.csv", tenant="police", list_name="blocklist")
    store.add_events([event("police", 2, {"source.ip": "203.0.113.9"})])
    engine.run_until_idle()
    assert set(alerts(store)) == {("police", "203.0.113.9")}

    lists.delete_list(store, tenant="police", name="blocklist")
    store.add_events([event("police", 3, {"source.ip": "203.0.113.9", "source.port": 1})])
    engine.run_until_idle()
    assert alerts(store)[("police", "203.0.113.9")]["count"] == 1  # not matched after the delete


@pytest.mark.parametrize("workers", [2])
def test_i2_intel_with_worker_processes(sqlite_store: Store, workers: int) -> None:
    load(sqlite_store, "list.csv", tenant="police", list_name="blocklist")
    sqlite_store.add_events([event("police", n, {"source.ip": f"10.20.{n}.1"}) for n in range(1, 40)])
    with DetectionEngine(RuleSet(), sqlite_store, clock=clock, workers=workers) as engine:
        engine.run_until_idle(limit=10)
    [alert] = alerts(sqlite_store).values()
    assert alert["count"] == 39 and alert["rule.level"] == "medium"  # 10.20.0.0/16, confidence 60


def test_i2_lookup_overlapping_networks_and_scopes() -> None:
    def listed(scope: str, name: str, *values: str) -> ListedIndicators:
        return ListedIndicators(scope, name, [Indicator("ip", value) for value in values])

    index = IntelIndex(
        [
            listed("*", "wide", "10.0.0.0/8", "10.1.0.0/16", "192.0.2.1"),
            listed("police", "narrow", "10.1.2.0/24", "2001:db8::/32"),
            listed("health", "other", "10.1.2.3"),
        ]
    )

    def names(value: str, tenant: str) -> set[str]:
        return {hit.listed.indicator.value for hit in index.lookup("ip", value, tenant)}

    assert names("10.1.2.3", "police") == {"10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24"}
    assert names("10.1.2.3", "health") == {"10.0.0.0/8", "10.1.0.0/16", "10.1.2.3"}
    assert names("10.1.3.1", "police") == {"10.0.0.0/8", "10.1.0.0/16"}
    assert names("10.255.255.255", "police") == {"10.0.0.0/8"} and names("11.0.0.0", "police") == set()
    assert names("9.255.255.255", "police") == set() and names("2001:db8:ffff::1", "police") == {"2001:db8::/32"}
    assert names("2001:db8::1", "health") == set()
    # event values in other spellings (IPv6 upper case, zeros written out) still match
    spelled = IntelIndex([listed("police", "v6", "2001:db8::5", "2001:db8:bad::/48")])
    event = {"source.ip": "2001:DB8:0:0::5", "destination.ip": ["2001:0db8:0bad::9", "not-an-ip"]}
    found = {(hit.field, hit.listed.indicator.value) for hit in spelled.match_event(event, "police")}
    assert found == {("source.ip", "2001:db8::5"), ("destination.ip", "2001:db8:bad::/48")}
