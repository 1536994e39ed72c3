"""Issue 11 item 12 — an audit trail that proves itself, on every store.

The attacker here can write the store (they hold its credentials) but not the audit key file nor
the anchor file: they rewrite a record and re-hash every record after it, or delete the newest
records. Both must show in ``verify_chain``, ``soc audit verify`` and ``GET /api/audit/verify``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from soc_api.main import create_app
from soc_api.services import accounts
from soc_api.services.jobs import job_registry
from soc_core.auth import PROVINCE, Membership
from soc_core.config import Settings
from soc_core.store import SqliteStore, Store
from workflow import audit

PASSWORD = "a-very-long-password"
SOC = [sys.executable, "-c", "from soc_api.cli import main; main()"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", audit={"cross_tenant_per_minute": 3})


@pytest.fixture
def trail(store: Store, settings: Settings) -> Store:
    audit.configure(store, settings)
    return store


def fill(store: Store, count: int) -> None:
    for i in range(count):
        audit.record(store, actor=f"user{i}", action="alert.update", tenant="police", target=f"alerts/a{i}")


def records(store: Store) -> list[dict[str, Any]]:
    return [dict(d.body) for d in store.list_docs("audit", sort="seq", descending=False, size=500).items]


def rehash_from(store: Store, start: int) -> None:
    """What an attacker with write access does: recompute every hash from ``start`` on with the
    public recipe (SHA-256 over the previous hash and the canonical record), so every link holds."""
    chain = records(store)
    previous = chain[start - 2]["hash"] if start > 1 else "0" * 64
    for body in chain[start - 1 :]:
        body["prev_hash"] = previous
        body.pop("hash")
        canonical = json.dumps(body, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
        body["hash"] = hashlib.sha256((previous + canonical).encode()).hexdigest()
        store.put_doc("audit", f"{body['seq']:012d}", body)
        previous = body["hash"]


# --- the two attacks from the issue --------------------------------------------------------


def test_h12_rewrite_and_rehash_is_detected(trail: Store) -> None:
    fill(trail, 15)
    assert audit.verify_chain(trail).ok
    fifth = records(trail)[4]
    trail.put_doc("audit", f"{5:012d}", {**fifth, "actor": "someone-else"})
    rehash_from(trail, 5)
    report = audit.verify_chain(trail)
    assert report.status == "tampered" and report.first_bad_seq == 5
    assert "MAC" in report.problems[0].reason


def test_h12_rewriting_everything_as_unsealed_records_is_caught_by_the_anchors(trail: Store) -> None:
    fill(trail, 12)  # anchored at record 10
    chain = records(trail)
    for body in chain:
        body.pop("seal")
        body.pop("key_id")
        trail.put_doc("audit", f"{body['seq']:012d}", body)
    rehash_from(trail, 1)
    report = audit.verify_chain(trail)
    assert report.status == "tampered" and report.anchor_status == "rewritten"
    assert report.first_bad_seq == 10


def test_h12_deleting_the_newest_ten_records_is_detected(trail: Store) -> None:
    fill(trail, 25)
    assert audit.verify_chain(trail).ok
    for seq in range(16, 26):
        trail.delete_doc("audit", f"{seq:012d}")
    trail.refresh()
    report = audit.verify_chain(trail)
    assert report.status == "tampered" and report.anchor_status == "truncated"
    assert report.head_seq == 15 and report.first_bad_seq == 16
    assert "anchored" in report.problems[0].reason and report.latest_anchor and report.latest_anchor["seq"] == 20


def test_h12_deleting_every_record_is_detected(trail: Store) -> None:
    fill(trail, 3)
    audit.anchor_head(trail)
    for seq in range(1, 4):
        trail.delete_doc("audit", f"{seq:012d}")
    trail.refresh()
    report = audit.verify_chain(trail)
    assert report.status == "tampered" and report.first_bad_seq == 1 and report.records == 0


# --- the key and the anchors ---------------------------------------------------------------


def test_h12_key_is_created_owner_only_outside_the_store(sqlite_store: SqliteStore, tmp_path: Path) -> None:
    data_dir = tmp_path / "elsewhere"
    create_app(Settings(data_dir=data_dir), sqlite_store)
    key_file = data_dir / "secrets" / "audit.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    key = key_file.read_text().strip()
    audit.record(sqlite_store, actor="a", action="x")
    body = records(sqlite_store)[0]
    assert body["seal"] == "hmac-sha256" and body["key_id"] == audit.key_id(bytes.fromhex(key))
    assert key not in json.dumps(body)


def test_h12_another_key_does_not_verify(sqlite_store: SqliteStore, tmp_path: Path) -> None:
    audit.configure(sqlite_store, Settings(data_dir=tmp_path / "one"))
    fill(sqlite_store, 3)
    audit.configure(sqlite_store, Settings(data_dir=tmp_path / "two"))
    audit.ensure_key(sqlite_store)
    report = audit.verify_chain(sqlite_store)
    assert report.status == "tampered" and report.first_bad_seq == 1
    assert "names key" in report.problems[0].reason


def test_h12_missing_key_cannot_verify(sqlite_store: SqliteStore, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d")
    audit.configure(sqlite_store, settings)
    fill(sqlite_store, 2)
    settings.audit_key_file.unlink()
    audit.configure(sqlite_store, settings)
    report = audit.verify_chain(sqlite_store)
    assert report.status == "unverifiable" and str(settings.audit_key_file) in (report.reason or "")
    assert not settings.audit_key_file.exists()  # verifying never makes a new key


def test_h12_forged_anchor_line_is_reported(sqlite_store: SqliteStore, settings: Settings) -> None:
    audit.configure(sqlite_store, settings)
    fill(sqlite_store, 10)
    line = json.loads(settings.audit_anchor_file.read_text().splitlines()[-1])
    forged = {**line, "seq": 99}
    with settings.audit_anchor_file.open("a") as anchors:
        anchors.write(json.dumps(forged) + "\n")
    report = audit.verify_chain(sqlite_store)
    assert report.status == "tampered" and report.anchor_status == "forged"
    assert "signature" in report.problems[0].reason


def test_h12_legacy_records_verify_up_to_the_boundary(sqlite_store: SqliteStore, settings: Settings) -> None:
    previous = "0" * 64
    for seq in range(1, 4):  # written by the code before the key existed
        body = {"at": "2026-11-01T00:00:00.000Z", "actor": "old", "action": "x", "seq": seq, "prev_hash": previous}
        canonical = json.dumps(body, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
        body["hash"] = previous = hashlib.sha256((previous + canonical).encode()).hexdigest()
        sqlite_store.create_doc("audit", body, doc_id=f"{seq:012d}")
    audit.configure(sqlite_store, settings)
    fill(sqlite_store, 2)
    report = audit.verify_chain(sqlite_store)
    assert report.ok and report.legacy_records == 3 and report.records == 5
    second = records(sqlite_store)[1]
    sqlite_store.put_doc("audit", f"{2:012d}", {**second, "actor": "rewritten"})
    rehash_from(sqlite_store, 2)  # re-hashes the legacy part and the sealed records after it
    report = audit.verify_chain(sqlite_store)
    assert report.status == "tampered" and report.first_bad_seq == 4  # the first sealed record


def test_h12_head_is_anchored_on_schedule_and_to_syslog(sqlite_store: SqliteStore, tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(10)
        port = receiver.getsockname()[1]
        settings = Settings(data_dir=tmp_path, audit={"anchor_syslog": f"127.0.0.1:{port}"})
        audit.configure(sqlite_store, settings)
        fill(sqlite_store, 2)
        assert audit.anchor_head(sqlite_store, if_moved=True) is not None
        assert audit.anchor_head(sqlite_store, if_moved=True) is None  # nothing new since
        message = receiver.recv(4096).decode()
    assert message.startswith("<86>canhgac-audit: ")
    sent = json.loads(message.split(": ", 1)[1])
    assert sent["seq"] == 2 and sent["store"] == sqlite_store.location
    anchor = job_registry(settings).get("audit-anchor")
    assert anchor.trigger.every_minutes == settings.audit.anchor_every_minutes


def test_h12_bad_syslog_address_is_a_config_error() -> None:
    assert Settings(audit={"anchor_syslog": "/dev/log"}).audit.anchor_syslog == "/dev/log"
    assert Settings(audit={"anchor_syslog": "loghost:514"}).audit.anchor_syslog == "loghost:514"
    with pytest.raises(ValueError, match=r"anchor_syslog\n.*socket path"):
        Settings(audit={"anchor_syslog": "loghost"})


# --- soc audit verify ----------------------------------------------------------------------


def soc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SOC_")}
    environment["COLUMNS"] = "200"
    return subprocess.run(
        [*SOC, *args], cwd=cwd, capture_output=True, text=True, env=environment, timeout=120, check=False
    )


@pytest.mark.slow  # several `soc` processes
def test_h12_cli_verify_exit_codes_and_json(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var")  # what `soc` finds from this directory
    store = SqliteStore(settings.sqlite_path)
    store.setup()
    audit.configure(store, settings)
    fill(store, 12)
    done = soc("audit", "verify", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "intact" in done.stdout and "12 records" in done.stdout
    done = soc("audit", "verify", "--json", cwd=tmp_path)
    assert done.returncode == 0 and json.loads(done.stdout)["anchor"]["status"] == "ok"
    for seq in range(3, 13):
        store.delete_doc("audit", f"{seq:012d}")
    done = soc("audit", "verify", cwd=tmp_path)
    assert done.returncode == 1 and "TAMPERED" in done.stderr and "record 3: truncated" in done.stderr
    report = json.loads(soc("audit", "verify", "--json", cwd=tmp_path).stdout)
    assert report["status"] == "tampered" and report["first_bad_seq"] == 3
    settings.audit_key_file.unlink()
    done = soc("audit", "verify", cwd=tmp_path)
    assert done.returncode == 2 and "audit.key" in done.stderr
    store.close()


def test_h12_cli_records_are_sealed_with_the_servers_key(tmp_path: Path) -> None:
    assert soc("tenant", "add", "police", "Police", cwd=tmp_path).returncode == 0
    assert soc("audit", "anchor", cwd=tmp_path).returncode == 0
    done = soc("audit", "verify", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["records"] == 1
    assert (tmp_path / "var" / "secrets" / "audit.key").is_file()


# --- the API -------------------------------------------------------------------------------


@pytest.fixture
def client(trail: Store, settings: Settings) -> Iterator[TestClient]:
    for tenant in ("police", "health"):
        accounts.add_tenant(trail, tenant_id=tenant, name=tenant)
    accounts.add_user(trail, username="boss", password=PASSWORD, memberships=[Membership(PROVINCE, "admin")])
    accounts.add_user(trail, username="chief", password=PASSWORD, memberships=[Membership("police", "admin")])
    accounts.add_user(trail, username="ana", password=PASSWORD, memberships=[Membership("police", "analyst")])
    trail.create_doc("alerts", {"tenant": "health", "status": "new", "last_seen": "x"}, doc_id="health1")
    trail.create_doc("alerts", {"tenant": "police", "status": "new", "last_seen": "x"}, doc_id="police1")
    with TestClient(create_app(settings, trail)) as client:
        yield client


def login(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_h12_api_verify_for_province_admins_only(client: TestClient, trail: Store) -> None:
    boss = login(client, "boss")
    response = client.get("/api/audit/verify", headers=boss)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] and body["status"] == "ok" and body["records"] >= 6
    assert client.get("/api/audit/verify", headers=login(client, "chief")).status_code == 403
    assert client.get("/api/audit/verify", headers=login(client, "ana")).status_code == 403
    assert client.get("/api/audit/verify").status_code == 401
    third = records(trail)[2]
    trail.put_doc("audit", f"{3:012d}", {**third, "outcome": "failure"})
    rehash_from(trail, 3)
    body = client.get("/api/audit/verify", headers=boss).json()
    assert not body["ok"] and body["status"] == "tampered" and body["first_bad_seq"] == 3


def comparable(response: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    body = {k: v for k, v in response.json().items() if k not in ("instance", "request_id")}
    headers = {k: v for k, v in response.headers.items() if k not in ("x-request-id", "content-length")}
    return response.status_code, body, headers


def test_h12_cross_agency_attempt_is_recorded_and_answered_like_a_missing_object(
    client: TestClient, trail: Store
) -> None:
    ana = login(client, "ana")
    theirs = client.get("/api/alerts/health1", headers=ana)
    missing = client.get("/api/alerts/nosuch01", headers=ana)
    assert theirs.status_code == 404 and comparable(theirs) == comparable(missing)
    trail.refresh()
    events = trail.list_docs("audit", filters={"action": "security.cross_tenant"}).items
    assert len(events) == 1  # the missing one is not an attempt on another agency
    event = events[0].body
    assert event["target"] == "alerts/health1" and event["tenant"] == "health" and event["outcome"] == "denied"
    assert event["details"]["tenant_asked"] == "health" and event["details"]["actor_tenants"] == ["police"]
    assert event["details"]["operation"] == "GET /api/alerts/{alert_id}"
    assert event["request_id"] == theirs.headers["x-request-id"]
    changed = client.patch("/api/alerts/health1", json={"version": "1", "status": "acknowledged"}, headers=ana)
    assert changed.status_code == 404
    bulk = client.post("/api/alerts/bulk", json={"ids": ["health1", "police1"], "status": "acknowledged"}, headers=ana)
    assert [item["status"] for item in bulk.json()["items"]] == ["not_found", "updated"]
    trail.refresh()
    operations = [
        e.body["details"]["operation"]
        for e in trail.list_docs(
            "audit", filters={"action": "security.cross_tenant"}, sort="seq", descending=False
        ).items
    ]
    assert operations == ["GET /api/alerts/{alert_id}", "PATCH /api/alerts/{alert_id}", "POST /api/alerts/bulk"]
    assert audit.verify_chain(trail).ok
    # the victim agency's admin sees it in their part of the trail
    seen = client.get("/api/audit?action=security.cross_tenant", headers=login(client, "boss")).json()["items"]
    assert {r["target"] for r in seen} == {"alerts/health1"} and seen[0]["details"]["tenant_asked"] == "health"


def test_h12_cross_agency_records_are_rate_limited_per_principal(client: TestClient, trail: Store) -> None:
    ana = login(client, "ana")
    for _ in range(8):
        assert client.get("/api/alerts/health1", headers=ana).status_code == 404
    trail.refresh()
    events = trail.list_docs("audit", filters={"action": "security.cross_tenant"}).items
    assert len(events) == 3  # cross_tenant_per_minute


def test_h12_refusal_limiter_counts_what_it_leaves_out() -> None:
    limiter = audit.RefusalLimiter(per_minute=2)
    assert [limiter.admit("mallory", now=t) for t in (0, 1, 2, 3)] == [0, 0, None, None]
    assert limiter.admit("alice", now=4) == 0  # per principal
    assert limiter.admit("mallory", now=61) == 2  # a new minute: the first record says 2 were left out
    assert limiter.admit("mallory", now=62) == 0


def test_h12_cross_agency_attempt_in_the_ui_is_recorded(trail: Store, settings: Settings) -> None:
    accounts.add_tenant(trail, tenant_id="police", name="Police")
    accounts.add_tenant(trail, tenant_id="health", name="Health")
    accounts.add_user(trail, username="ana", password=PASSWORD, memberships=[Membership("police", "analyst")])
    trail.create_doc("alerts", {"tenant": "health", "status": "new", "last_seen": "x"}, doc_id="health1")
    client = TestClient(create_app(settings, trail), base_url="http://127.0.0.1")
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/ui/login").text)
    assert token
    form = {"username": "ana", "password": PASSWORD, "csrf_token": token.group(1)}
    assert client.post("/ui/login", data=form, follow_redirects=False).status_code == 303
    assert client.get("/ui/alerts/health1").status_code == 404
    trail.refresh()
    events = trail.list_docs("audit", filters={"action": "security.cross_tenant"}).items
    assert [e.body["target"] for e in events] == ["alerts/health1"]


# --- request ids ---------------------------------------------------------------------------


def test_h12_client_request_id_is_kept_apart_from_the_servers(client: TestClient, trail: Store) -> None:
    response = client.post(
        "/api/auth/login", json={"username": "ana", "password": PASSWORD}, headers={"X-Request-ID": "trace-42.a_b"}
    )
    assert response.status_code == 200
    server_id = response.headers["x-request-id"]
    assert server_id != "trace-42.a_b" and re.fullmatch(r"[0-9a-f]{32}", server_id)
    assert response.headers["x-client-request-id"] == "trace-42.a_b"
    trail.refresh()
    login_record = trail.list_docs("audit", filters={"action": "auth.login"}, sort="seq", size=1).items[0].body
    assert login_record["request_id"] == server_id and login_record["client_request_id"] == "trace-42.a_b"


@pytest.mark.parametrize("offered", ["a b", "x" * 65, "<script>", "id;rm", "", "é"])
def test_h12_bad_client_request_id_is_ignored(client: TestClient, trail: Store, offered: str) -> None:
    headers = {"X-Request-ID": offered.encode()}
    response = client.post("/api/auth/login", json={"username": "ana", "password": "wrong-password-9"}, headers=headers)
    assert response.status_code == 401
    assert "x-client-request-id" not in response.headers
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert response.json()["request_id"] == response.headers["x-request-id"]
    trail.refresh()
    failure = trail.list_docs("audit", filters={"action": "auth.login"}, sort="seq", size=1).items[0].body
    assert failure["client_request_id"] is None and failure["request_id"] == response.headers["x-request-id"]
