"""Item 4 of the intel brief: ``enrich_assets``, ``enrich_intel`` and ``share_stix`` on real
stores (SQLite and Elasticsearch), with alerts made by the real engine and a case opened by the
real case service; the STIX bundle POSTed to a real receiver through the SSRF guard."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from detections.engine import DetectionEngine
from detections.loader import RuleSet
from intel.parsers import parse_stix
from playbooks.actions import enrich, share
from playbooks.actions.base import ACTIONS, Action, ActionError
from playbooks.actions.enrich import EnrichAssets, EnrichAssetsParams, EnrichIntel, EnrichIntelParams
from playbooks.actions.outbound import OutboundRefused
from playbooks.actions.share import ShareStix, ShareStixParams
from soc_core.config import Settings
from soc_core.store import Store
from tests.intel.support import NOW, event, load
from tests.playbooks.support import Listener, context, in_netns, listen, namespace
from workflow.cases import create_case
from workflow.principals import Actor, Principal

PUBLIC, PORT = "192.31.196.10", 8080


def clock() -> datetime:
    return NOW


@pytest.fixture
def intel_alerts(store: Store) -> dict[str, dict[str, object]]:
    """Intel alerts of agency police (and one of health), made by the engine."""
    load(store, "misp_feed", tenant="*", list_name="vncert")
    load(store, "bundle.json", tenant="police", list_name="cert")
    store.add_events(
        [
            event("police", 1, {"source.ip": "203.0.113.7", "destination.ip": "10.10.1.5", "host.name": "WEB01"}),
            event("police", 2, {"dns.question.name": "c2.bad.example", "source.ip": "10.20.5.9"}, dataset="zeek.dns"),
            event("health", 3, {"source.ip": "203.0.113.7"}),
        ]
    )
    DetectionEngine(RuleSet(), store, clock=clock).run_until_idle()
    store.refresh()
    return {
        f"{doc.body['tenant']}:{doc.body['group']['intel.indicator']}": dict(doc.body, id=doc.id)
        for doc in store.list_docs("alerts").items
    }


def test_i4_actions_are_registered() -> None:
    for module in (enrich, share):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Action) and value.__module__ == module.__name__:
                assert ACTIONS[value.name] is value
    assert ACTIONS["enrich_assets"] is EnrichAssets and ACTIONS["enrich_intel"] is EnrichIntel
    assert ACTIONS["share_stix"] is ShareStix
    assert EnrichAssets.idempotent and EnrichIntel.idempotent and not ShareStix.idempotent


def test_i4_enrich_intel_scoped_to_the_run_agency(
    store: Store, tmp_path: Path, intel_alerts: dict[str, dict[str, object]]
) -> None:
    settings = Settings(data_dir=tmp_path)
    alert = intel_alerts["police:203.0.113.7"]
    output = EnrichIntel().run(
        context(settings, store, tenant="police"),
        EnrichIntelParams(alert=alert, hashes=["79054025255FB1A26E4BC422AEF54EB4"]),
    )
    hits = {(hit["list"], hit["indicator"]): hit for hit in output.output["hits"]}
    assert set(hits) == {("vncert", "203.0.113.7"), ("cert", "79054025255fb1a26e4bc422aef54eb4")}
    ssh = hits[("vncert", "203.0.113.7")]
    assert (ssh["source"], ssh["first_seen"], ssh["confidence"], ssh["scope"]) == (
        "VNCERT / SSH brute force sources",
        "2026-11-30T00:00:00.000Z",
        90,
        "*",
    )
    assert output.output["max_confidence"] == 90 and output.changed is False
    # the same values for health: police's list is not consulted
    other = EnrichIntel().run(
        context(settings, store, tenant="health"),
        EnrichIntelParams(alert=alert, hashes=["79054025255fb1a26e4bc422aef54eb4"]),
    )
    assert [(hit["list"], hit["indicator"]) for hit in other.output["hits"]] == [("vncert", "203.0.113.7")]
    again = EnrichIntel().run(
        context(settings, store, tenant="police", dry_run=True),
        EnrichIntelParams(alert=alert, hashes=["79054025255FB1A26E4BC422AEF54EB4"]),
    )
    assert again.output == output.output  # idempotent, and the same in dry-run


def test_i4_enrich_assets(store: Store, tmp_path: Path, intel_alerts: dict[str, dict[str, object]]) -> None:
    inventory = tmp_path / "assets.yaml"
    inventory.write_text(
        "- {name: web01.congan.gov.vn, ips: [10.10.1.5], owner: Phòng kỹ thuật, criticality: critical,"
        " agency: police}\n"
        "- {name: lan, networks: [10.20.0.0/16], criticality: low, agency: police}\n"
        "- {name: web01.soyte.gov.vn, ips: [10.10.1.5], agency: health}\n",
        encoding="utf-8",
    )
    settings = Settings(data_dir=tmp_path, playbooks={"assets": {"paths": [str(inventory)]}})
    alert = intel_alerts["police:203.0.113.7"]
    result = EnrichAssets().run(
        context(settings, store, tenant="police"), EnrichAssetsParams(alert=alert, ips=["10.20.5.9"])
    )
    found = [(item["entity"], item["matched_by"], item["name"]) for item in result.output["assets"]]
    assert found == [
        ("10.10.1.5", "ip", "web01.congan.gov.vn"),
        ("10.20.5.9", "network 10.20.0.0/16", "lan"),
        ("WEB01", "host name", "web01.congan.gov.vn"),
    ]
    assert result.output["unmatched"] == ["203.0.113.7"] and result.output["criticality"] == "critical"


def _case(store: Store, alerts: dict[str, dict[str, object]]) -> str:
    actor = Actor(Principal(id="analyst1", name="analyst1", kind="user"))
    ids = [str(alerts["police:203.0.113.7"]["id"]), str(alerts["police:c2.bad.example"]["id"])]
    case = create_case(
        store, title="C2", description="", severity="high", alert_ids=ids, scope=("police",), actor=actor
    )
    return case.id


def test_i4_share_stix_bundle(store: Store, tmp_path: Path, intel_alerts: dict[str, dict[str, object]]) -> None:
    case_id = _case(store, intel_alerts)
    settings = Settings(data_dir=tmp_path)
    result = ShareStix().run(context(settings, store, tenant="police"), ShareStixParams(case_id=case_id))
    bundle = result.output["bundle"]
    assert bundle["type"] == "bundle" and result.changed is False
    by_type: dict[str, list[dict[str, object]]] = {}
    for obj in bundle["objects"]:
        by_type.setdefault(obj["type"], []).append(obj)
        assert obj["spec_version"] == "2.1" and obj["id"].startswith(obj["type"] + "--")
    patterns = {obj["pattern"] for obj in by_type["indicator"]}
    assert "[ipv4-addr:value = '203.0.113.7']" in patterns and "[domain-name:value = 'c2.bad.example']" in patterns
    indicator_of = {obj["id"]: obj["pattern"] for obj in by_type["indicator"]}
    sighted = {indicator_of[obj["sighting_of_ref"]] for obj in by_type["sighting"]}
    assert {"[ipv4-addr:value = '203.0.113.7']", "[domain-name:value = 'c2.bad.example']"} <= sighted
    assert result.output["counts"]["identity"] == 2
    # our own parser reads it back: the export is a real STIX bundle of simple patterns
    exported = tmp_path / "bundle.json"
    exported.write_text(json.dumps(bundle), encoding="utf-8")
    read_back = parse_stix(exported)
    assert ("ip", "203.0.113.7") in read_back.indicators and ("domain", "c2.bad.example") in read_back.indicators
    # the same case twice: the same bundle
    assert (
        ShareStix().run(context(settings, store, tenant="police"), ShareStixParams(case_id=case_id)).output
        == result.output
    )
    with pytest.raises(ActionError, match="no case"):
        ShareStix().run(context(settings, store, tenant="health"), ShareStixParams(case_id=case_id))
    with pytest.raises(ActionError, match=r"post, but no endpoint"):
        ShareStix().run(context(settings, store, tenant="police"), ShareStixParams(case_id=case_id, post=True))


@pytest.fixture
def receivers() -> Iterator[tuple[str, Listener, Listener]]:
    with namespace([f"{PUBLIC}/24"]) as name, in_netns(name):
        public, trap = listen(PUBLIC, PORT), listen("127.0.0.1", PORT)
        try:
            yield name, public, trap
        finally:
            for listener in (public, trap):
                listener.server.shutdown()
                listener.server.server_close()


def test_i4_share_stix_posts_through_the_guard(
    sqlite_store: Store, tmp_path: Path, receivers: tuple[str, Listener, Listener]
) -> None:
    name, public, trap = receivers
    store = sqlite_store
    load(store, "misp_feed", tenant="*", list_name="vncert")
    load(store, "bundle.json", tenant="police", list_name="cert")
    store.add_events(
        [
            event("police", 1, {"source.ip": "203.0.113.7"}),
            event("police", 2, {"dns.question.name": "c2.bad.example"}, dataset="zeek.dns"),
        ]
    )
    DetectionEngine(RuleSet(), store, clock=clock).run_until_idle()
    alerts = {
        f"police:{doc.body['group']['intel.indicator']}": dict(doc.body, id=doc.id)
        for doc in store.list_docs("alerts").items
    }
    case_id = _case(store, alerts)

    def share(url: str, *, dry_run: bool = False) -> dict[str, Any]:
        share_settings = {"url": url, "allow_plain_http": True}
        settings = Settings(data_dir=tmp_path, playbooks={"share": share_settings})
        with in_netns(name):
            ctx = context(settings, store, tenant="police", dry_run=dry_run)
            return dict(ShareStix().run(ctx, ShareStixParams(case_id=case_id, post=True)).output)

    assert share(f"http://{PUBLIC}:{PORT}/taxii2/collections/x/objects/", dry_run=True)["post"]["dry_run"] is True
    assert public.accepts == []
    output = share(f"http://{PUBLIC}:{PORT}/taxii2/collections/x/objects/")
    assert output["post"] == {"url": f"http://{PUBLIC}:{PORT}/taxii2/collections/x/objects/", "status": 200}
    [posted] = public.posted
    assert posted["path"] == "/taxii2/collections/x/objects/" and posted["json"] == output["bundle"]
    with pytest.raises(OutboundRefused, match="loopback"):
        share(f"http://127.0.0.1:{PORT}/")
    assert trap.accepts == []
