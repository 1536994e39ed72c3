"""Stored weekly reports and their API (issue 13, reports-API brief items 1-2), on SQLite and on
the real Elasticsearch node: one stored report per (tenant, week), replaced when generated again;
``/api/reports`` over real HTTP handling, each agency's people seeing only their agency's
reports and the province's report kept for province-wide members."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from reports import stored
from soc_api.main import create_app
from soc_api.services import accounts
from soc_core.auth import PROVINCE, Membership
from soc_core.config import Settings
from soc_core.store import SqliteStore, Store
from tests.reports.seeded_week import ALERTS, _alert
from tests.support.cli import soc
from workflow import audit

PASSWORD = "a-very-long-password"
WEEK = "2026-W48"
USERS = {
    "hq_manager": Membership(PROVINCE, "manager"),
    "police_manager": Membership("police", "manager"),
    "police_analyst": Membership("police", "analyst"),
    "police_ra": Membership("police", "rule_admin"),
    "health_manager": Membership("health", "manager"),
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path)


@pytest.fixture
def world(store: Store, settings: Settings) -> TestClient:
    """Two agencies with W48 alerts of their own (police: P1-P6, health: H1-H2), five people."""
    accounts.add_tenant(store, tenant_id="police", name="Công an tỉnh")
    accounts.add_tenant(store, tenant_id="health", name="Sở Y tế")
    for username, membership in USERS.items():
        accounts.add_user(store, username=username, password=PASSWORD, memberships=[membership])
    for seed in ALERTS:
        _alert(store, seed)
    store.refresh()
    return TestClient(create_app(settings, store))


def auth(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_s13a_1_a_week_is_stored_once_per_tenant_and_replaced(
    world: TestClient, store: Store, settings: Settings
) -> None:
    first = stored.generate(
        store, settings, week=WEEK, tenant="police", generated_by="hq", now=datetime(2026, 12, 1, tzinfo=UTC)
    )
    again = stored.generate(
        store, settings, week=WEEK, tenant="police", generated_by="job", job="weekly-report:r1",
        now=datetime(2026, 12, 2, tzinfo=UTC),
    )  # fmt: skip
    province = stored.generate(
        store, settings, week=WEEK, tenant=PROVINCE, generated_by="hq", now=datetime(2026, 12, 1, tzinfo=UTC)
    )
    assert first.id == again.id == "weekly-2026-W48-police" and province.id == "weekly-2026-W48"
    store.refresh()
    docs = store.list_docs(stored.KIND, size=100).items
    assert sorted(doc.id for doc in docs) == ["weekly-2026-W48", "weekly-2026-W48-police"], "a regenerated week doubled"
    kept = store.get_doc(stored.KIND, first.id)
    assert kept.body["generated_by"] == "job" and kept.body["job"] == "weekly-report:r1"
    assert kept.body["generated_at"] == "2026-12-02T00:00:00.000Z" and kept.body["tenant"] == "police"
    report = stored.load(kept)
    # police's six W48 alerts (P1-P6), none of health's; the province counts both agencies
    assert report.alerts.total == 6 and report.scope.tenants == ["police"]
    assert report.scope.name == "Công an tỉnh"
    whole = stored.load(store.get_doc(stored.KIND, province.id))
    assert whole.alerts.total == 8 and whole.scope.tenants == ["health", "police"]
    assert [agency.tenant for agency in whole.agencies] == ["health", "police"]
    # the stored body is the report's JSON as it is, language-free
    assert json.loads(report.model_dump_json()) == kept.body["report"]


def test_s13a_2_reports_api_generate_list_read_download(world: TestClient, store: Store) -> None:
    client = world
    hq, police, health = auth(client, "hq_manager"), auth(client, "police_manager"), auth(client, "health_manager")
    made = client.post("/api/reports/weekly", json={"week": WEEK, "tenant": "police"}, headers=police)
    assert made.status_code == 201, made.text
    assert made.json()["id"] == "weekly-2026-W48-police" and made.json()["generated_by"] == "police_manager"
    for tenant in ("health", PROVINCE):
        assert client.post("/api/reports/weekly", json={"week": WEEK, "tenant": tenant}, headers=hq).status_code == 201
    assert (
        client.post("/api/reports/weekly", json={"week": WEEK, "tenant": "health"}, headers=health).status_code == 201
    )
    store.refresh()

    listed = client.get("/api/reports", headers=police)
    assert listed.status_code == 200, listed.text
    assert [item["id"] for item in listed.json()["items"]] == ["weekly-2026-W48-police"]
    everything = client.get("/api/reports", params={"week": WEEK}, headers=hq).json()["items"]
    assert sorted(item["id"] for item in everything) == [
        "weekly-2026-W48",
        "weekly-2026-W48-health",
        "weekly-2026-W48-police",
    ]
    assert client.get("/api/reports", params={"tenant": "health"}, headers=police).json()["items"] == []
    assert client.get("/api/reports", params={"tenant": "*"}, headers=police).json()["items"] == []

    read = client.get("/api/reports/weekly-2026-W48-police", headers=police)
    assert read.status_code == 200, read.text
    body = read.json()
    assert body["report"]["alerts"]["total"] == 6 and body["report"]["scope"]["tenants"] == ["police"]
    assert "192.0.2.66" not in read.text and "Sở Y tế" not in read.text  # nothing of health's
    analyst = auth(client, "police_analyst")
    assert client.get("/api/reports/weekly-2026-W48-police", headers=analyst).status_code == 200

    pdf = client.get(
        "/api/reports/weekly-2026-W48-police/download", params={"format": "pdf", "lang": "vi"}, headers=police
    )
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF-")
    assert pdf.headers["content-disposition"] == 'attachment; filename="canhgac-weekly-2026-W48-police-vi.pdf"'
    page = client.get(
        "/api/reports/weekly-2026-W48-police/download", params={"format": "html", "lang": "en"}, headers=police
    )
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "img-src data:" in csp and "sandbox" in csp and "script-src" not in csp
    assert "Weekly" in page.text and "Công an tỉnh" in page.text
    data = client.get("/api/reports/weekly-2026-W48-police/download", params={"format": "json"}, headers=police)
    assert data.status_code == 200 and json.loads(data.content) == body["report"]

    audited = [
        doc.body for doc in store.list_docs("audit", size=1000).items if doc.body.get("action") == "report.generate"
    ]
    assert sorted((r["actor"], r["target"]) for r in audited) == [
        ("health_manager", "reports/weekly-2026-W48-health"),
        ("hq_manager", "reports/weekly-2026-W48"),
        ("hq_manager", "reports/weekly-2026-W48-health"),
        ("police_manager", "reports/weekly-2026-W48-police"),
    ]


def test_s13a_2_an_agency_manager_reaches_no_other_report(world: TestClient, store: Store) -> None:
    client = world
    hq, police = auth(client, "hq_manager"), auth(client, "police_manager")
    for tenant in ("health", PROVINCE):
        assert client.post("/api/reports/weekly", json={"week": WEEK, "tenant": tenant}, headers=hq).status_code == 201
    store.refresh()
    for report_id in ("weekly-2026-W48-health", "weekly-2026-W48"):
        for suffix in ("", "/download"):
            response = client.get(f"/api/reports/{report_id}{suffix}", headers=police)
            assert response.status_code == 404, (report_id, suffix, response.text)
            assert response.headers["content-type"] == "application/problem+json"
    generated = client.post("/api/reports/weekly", json={"week": WEEK, "tenant": "health"}, headers=police)
    assert generated.status_code == 404, generated.text
    province = client.post("/api/reports/weekly", json={"week": WEEK, "tenant": "*"}, headers=police)
    assert province.status_code == 403 and "province" in province.json()["detail"]
    # analysts read but do not generate; rule admins do not read reports at all
    analyst, rule_admin = auth(client, "police_analyst"), auth(client, "police_ra")
    assert (
        client.post("/api/reports/weekly", json={"week": WEEK, "tenant": "police"}, headers=analyst).status_code == 403
    )
    assert client.get("/api/reports", headers=rule_admin).status_code == 403
    # nothing was stored by the refused requests: still the two the province made
    store.refresh()
    assert sorted(doc.id for doc in store.list_docs(stored.KIND, size=100).items) == [
        "weekly-2026-W48",
        "weekly-2026-W48-health",
    ]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "where"),
    [
        ("POST", "/api/reports/weekly", {"week": "2026-48", "tenant": "police"}, 422, "week"),
        ("POST", "/api/reports/weekly", {"week": "2099-W01", "tenant": "police"}, 400, "week"),
        ("POST", "/api/reports/weekly", {"week": "0001-W01", "tenant": "police"}, 400, "week"),
        ("POST", "/api/reports/weekly", {"week": "9999-W52", "tenant": "*"}, 400, "week"),
        ("POST", "/api/reports/weekly", {"week": "2026-W00", "tenant": "*"}, 400, "week"),
        ("POST", "/api/reports/weekly", {"week": WEEK, "tenant": "nobody"}, 400, "tenant"),
        ("POST", "/api/reports/weekly", {"week": WEEK, "tenant": "police", "extra": 1}, 422, "extra"),
        ("GET", "/api/reports/weekly-2026-W48-police/download?format=docx", None, 422, "format"),
        ("GET", "/api/reports/weekly-2026-W48-police/download?lang=fr", None, 422, "lang"),
        ("GET", "/api/reports/not-a-report", None, 422, "report_id"),
        ("GET", "/api/reports/weekly-2026-W47-police", None, 404, None),
    ],
)
def test_s13a_2_bad_input_is_a_clear_4xx(
    world: TestClient, store: Store, method: str, path: str, body: object, status: int, where: str | None
) -> None:
    client = world
    hq = auth(client, "hq_manager")
    if method == "GET":
        assert (
            client.post("/api/reports/weekly", json={"week": WEEK, "tenant": "police"}, headers=hq).status_code == 201
        )
    response = client.request(method, path, json=body, headers=hq)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    if where is not None:
        assert where in response.text


def test_s13a_2_soc_report_weekly_store_and_list(tmp_path: Path) -> None:
    """``soc report weekly --store`` keeps the report (audited) and ``soc report list`` shows it."""
    settings = Settings(data_dir=tmp_path / "var")
    sqlite = SqliteStore(settings.sqlite_path)
    sqlite.setup()
    audit.configure(sqlite, settings)
    accounts.add_tenant(sqlite, tenant_id="police", name="Công an tỉnh")
    for seed in ALERTS[:2]:
        _alert(sqlite, seed)
    sqlite.close()
    config = tmp_path / "soc.yml"
    config.write_text(f"data_dir: {tmp_path / 'var'}\n")
    args = ("--config", str(config), "report", "weekly", "-w", WEEK, "-t", "police", "--store")
    for _ in range(2):  # the second replaces the first
        made = soc(*args, cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        assert json.loads(made.stdout)["alerts"]["total"] == 2
    listed = soc("--config", str(config), "report", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"weekly-2026-W48-police\t{WEEK}\tpolice\t"), listed.stdout
    assert lines[0].split("\t")[-1].startswith("cli:")
    sqlite = SqliteStore(settings.sqlite_path)
    records = [d.body for d in sqlite.list_docs("audit", size=100).items if d.body.get("action") == "report.generate"]
    sqlite.close()
    assert len(records) == 2 and {r["target"] for r in records} == {"reports/weekly-2026-W48-police"}
