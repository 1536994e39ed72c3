"""The UI without a browser: policy coverage, CSRF on every change, sessions, catalogues,
safe rendering, paging (TestClient over the real app on SQLite)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from soc_api.main import create_app
from soc_api.policy import POLICY, PUBLIC, UI_POLICY
from soc_api.services import accounts
from soc_api.ui.i18n import CATALOGUE_DIR, LANGUAGES, catalogue, translator
from soc_api.ui.mount import ui_route_inventory
from soc_api.ui.render import TEMPLATE_DIR, shown
from soc_api.ui.routes.auth import safe_next
from soc_api.ui.session import CSRF_HEADER, secure_cookies_default
from soc_core.auth import Membership
from soc_core.config import Settings
from soc_core.store import Store

PASSWORD = "a-very-long-password"


@pytest.fixture
def client(sqlite_store: Store) -> TestClient:
    for tenant in ("police", "health"):
        accounts.add_tenant(sqlite_store, tenant_id=tenant, name=tenant.title())
    accounts.add_user(sqlite_store, username="ana", password=PASSWORD, memberships=[Membership("police", "analyst")])
    accounts.add_user(sqlite_store, username="mai", password=PASSWORD, memberships=[Membership("police", "manager")])
    for i in range(60):
        sqlite_store.create_doc(
            "alerts",
            {
                "tenant": "police" if i < 55 else "health",
                "status": "new" if i % 2 else "acknowledged",
                "rule.id": f"rule-{i % 3}",
                "rule.name": f"Rule {i % 3}",
                "rule.level": "high",
                "last_seen": f"2026-11-20T00:{i:02d}:00.000Z",
            },
            doc_id=f"alert{i:02d}",
        )
    return TestClient(create_app(Settings(), sqlite_store), base_url="http://127.0.0.1")


def sign_in(client: TestClient, username: str = "ana") -> str:
    """Sign in through the form; returns the CSRF token of the new session."""
    page = client.get("/ui/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    response = client.post(
        "/ui/login",
        data={"username": username, "password": PASSWORD, "csrf_token": token.group(1)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/ui/alerts").text)
    assert csrf
    return csrf.group(1)


def test_every_ui_route_is_in_the_ui_policy_and_only_there() -> None:
    routes = ui_route_inventory()
    assert routes == set(UI_POLICY)
    assert not set(UI_POLICY) & set(POLICY)
    assert all(path.startswith("/ui") for _, path in UI_POLICY)


def test_every_change_needs_the_csrf_token(client: TestClient) -> None:
    csrf = sign_in(client)
    changes = [key for key, permission in UI_POLICY.items() if key[0] != "GET" and permission != PUBLIC]
    assert changes
    for method, template in changes:
        path = template.replace("{alert_id}", "alert00").replace("{case_id}", "nope")
        for headers in ({}, {CSRF_HEADER: "f" * 64}, {CSRF_HEADER: csrf[:-1] + ("1" if csrf.endswith("0") else "0")}):
            response = client.request(method, path, data={"version": "1", "text": "x"}, headers=headers)
            assert response.status_code == 403, (method, template, headers)
    assert client.get("/ui/alerts/alert00").status_code == 200  # still signed in


def test_login_form_needs_its_double_submit_token(client: TestClient) -> None:
    client.get("/ui/login")
    response = client.post("/ui/login", data={"username": "ana", "password": PASSWORD, "csrf_token": "forged"})
    assert response.status_code == 403
    assert "cg_session" not in client.cookies


def test_sign_in_failures_look_the_same(client: TestClient) -> None:
    answers = []
    for username, password in (("ana", "wrong-password-1"), ("nobody", "wrong-password-1"), ("ana", "")):
        page = client.get("/ui/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        response = client.post(
            "/ui/login", data={"username": username, "password": password, "csrf_token": token.group(1)}
        )
        answers.append((response.status_code, re.search(r'data-testid="login-error">([^<]*)<', response.text)))
    assert {status for status, _ in answers} == {401}
    assert len({match.group(1) for _, match in answers if match}) == 1


def test_cookie_never_authenticates_the_api_and_bearer_never_the_ui(client: TestClient) -> None:
    sign_in(client)
    assert client.get("/api/alerts").status_code == 401
    token = client.cookies["cg_session"]
    bare = TestClient(client.app, base_url="http://127.0.0.1")
    response = bare.get("/ui/alerts", headers={"Authorization": f"Bearer {token}"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/ui/login")


def test_roles_and_tenants_apply_to_pages(client: TestClient) -> None:
    sign_in(client, "mai")  # manager: reads alerts, may not change them
    assert client.get("/ui/alerts/alert00").status_code == 200
    assert client.get("/ui/alerts/alert59").status_code == 404  # the health agency's
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/ui/alerts").text)
    assert csrf
    response = client.post(
        "/ui/alerts/alert00",
        data={"version": "1", "action": "status", "value": "resolved"},
        headers={CSRF_HEADER: csrf.group(1)},
    )
    assert response.status_code == 403
    assert "text/html" in response.headers["content-type"]


def test_queue_paging_filters_and_counts(client: TestClient) -> None:
    sign_in(client)
    first = client.get("/ui/alerts")
    assert first.text.count('class="alert-select"') == 50
    next_link = re.search(r'href="([^"]+)" data-testid="next-page"', first.text)
    assert next_link
    second = client.get(next_link.group(1).replace("&amp;", "&"))
    assert second.text.count('class="alert-select"') == 5
    assert 'data-testid="next-page"' not in second.text
    acknowledged = client.get("/ui/alerts", params={"status": "acknowledged", "rule_id": "rule-0"})
    assert acknowledged.text.count('class="alert-select"') == len([i for i in range(55) if i % 2 == 0 and i % 3 == 0])
    counts = re.findall(r"<b>(\d+)</b>", client.get("/ui/alerts").text)
    assert sum(int(c) for c in counts) == 55
    assert client.get("/ui/alerts", params={"status": "bogus"}).status_code == 400


def test_a_closed_case_needs_a_classification(client: TestClient, sqlite_store: Store) -> None:
    csrf = sign_in(client)
    headers = {CSRF_HEADER: csrf, "HX-Request": "true"}
    created = client.post("/ui/cases", data={"alert_id": ["alert00", "alert01"], "severity": "low"}, headers=headers)
    assert created.status_code == 204
    case_id = created.headers["HX-Redirect"].rsplit("/", 1)[1]
    assert sqlite_store.get_doc("cases", case_id).body["title"] == "Rule 0"
    version = sqlite_store.get_doc("cases", case_id).version
    refused = client.post(f"/ui/cases/{case_id}", data={"version": version, "status": "closed"}, headers=headers)
    assert refused.status_code == 422
    assert 'data-testid="case-error"' in refused.text
    closed = client.post(
        f"/ui/cases/{case_id}",
        data={"version": version, "status": "closed", "classification": "benign"},
        headers=headers,
    )
    assert closed.status_code == 200
    assert sqlite_store.get_doc("cases", case_id).body["status"] == "closed"
    stale = client.post(f"/ui/cases/{case_id}", data={"version": version, "comment": "late"}, headers=headers)
    assert stale.status_code == 409
    other = client.post("/ui/cases", data={"alert_id": "alert59"}, headers=headers)  # health's alert
    assert other.status_code == 404
    assert other.headers["HX-Retarget"] == "#flash"


def test_catalogues_agree_and_cover_the_templates() -> None:
    ids = {lang: set(catalogue(lang)) for lang in LANGUAGES}
    assert ids["vi"] == ids["en"]
    used = set()
    for template in TEMPLATE_DIR.glob("*.html"):
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_.]+)["']\s*\)""", template.read_text(encoding="utf-8")))
    for source in Path(TEMPLATE_DIR.parent).rglob("*.py"):
        used |= set(re.findall(r'"((?:error|login|triage|case|comment)\.[a-z_]+)"', source.read_text(encoding="utf-8")))
    assert {message for message in used if not message.endswith(".html")} - ids["en"] == set()
    for lang in LANGUAGES:  # valid JSON, no empty strings
        assert all(json.loads((CATALOGUE_DIR / f"{lang}.json").read_text(encoding="utf-8")).values())
    assert translator("fr")("nav.alerts") == "Cảnh báo"  # unknown language: Vietnamese


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("a\r\nb", "a\\r\\nb"),
        ("\u202egnp.exe", "\\u202egnp.exe"),
        (["x", "<y>"], "x, &lt;y&gt;"),
        (None, ""),
    ],
)
def test_values_are_shown_escaped(value: object, expected: str) -> None:
    assert str(shown(value)) == expected


def test_long_values_are_cut_with_an_indicator() -> None:
    text = str(shown("<" * 1_000_000, 100))
    assert text.startswith("&lt;" * 100)
    assert text.endswith('<span class="cut">… [+999,900 chars]</span>')
    assert str(shown("line one\nline two", multiline=True)) == "line one\nline two"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/ui/cases?status=open", "/ui/cases?status=open"),
        ("//evil.example/ui", "/ui/alerts"),
        ("/\\evil.example", "/ui/alerts"),
        ("https://evil.example/ui", "/ui/alerts"),
        ("/api/alerts", "/ui/alerts"),
        ("/ui/\r\nSet-Cookie:x", "/ui/alerts"),
        (None, "/ui/alerts"),
    ],
)
def test_redirects_stay_inside_the_ui(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_secure_cookie_flag_is_off_only_on_loopback(sqlite_store: Store) -> None:
    assert not secure_cookies_default("127.0.0.1")
    assert not secure_cookies_default("localhost")
    assert secure_cookies_default("0.0.0.0")
    assert secure_cookies_default("soc.example.vn")
    app = create_app(Settings(api={"host": "0.0.0.0"}), sqlite_store)
    response = TestClient(app, base_url="https://soc.example.vn").get("/ui/login")
    assert "Secure" in response.headers["set-cookie"]


def test_static_files_are_a_fixed_list(client: TestClient) -> None:
    assert client.get("/ui/static/app.css").status_code == 200
    assert client.get("/ui/static/htmx.min.js").text.startswith("/*! htmx.org 2.0.11")
    assert client.get("/ui/static/..%2Fmount.py").status_code == 404
    assert client.get("/ui/static/render.py").status_code == 404


@pytest.mark.parametrize("start", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_ci22_hunt_start_outside_utc_range_is_a_clear_400(client: TestClient, start: str) -> None:
    sign_in(client)
    response = client.get("/ui/hunt", params={"range": "custom", "start": start})
    assert response.status_code == 400, response.text
    assert "not a date and time" in response.text
