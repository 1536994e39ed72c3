"""H14: the API reference at /docs is served from here (no CDN) under the UI's CSP, and renders
in headless Chromium with no CSP violation and no request to another host."""

from __future__ import annotations

import re
from typing import Any

import httpx

from soc_api.ui.mount import SECURITY_HEADERS
from tests.support.browser import World, shot


def test_h14_docs_page_references_no_other_host_and_has_the_ui_csp(world: World) -> None:
    with httpx.Client(base_url=world.url, timeout=10) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-security-policy"] == SECURITY_HEADERS["Content-Security-Policy"]
        assert page.headers["x-frame-options"] == "DENY"
        references = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert references and all(ref.startswith("/docs/static/") for ref in references), references
        assert "<script>" not in page.text  # no inline script: script-src 'self' would block it
        for ref in references:
            asset = client.get(ref)
            assert asset.status_code == 200, ref
            assert asset.headers["content-security-policy"] == SECURITY_HEADERS["Content-Security-Policy"]
        assert client.get("/docs/static/..%2fmain.py").status_code == 404
        assert client.get("/docs/static/nothing.js").status_code == 404
        assert client.get("/redoc").status_code == 404
        assert client.get("/openapi.json").json()["info"]["title"] == "Canh Gác SOC API"


def test_h14_docs_render_in_chromium_without_csp_errors_or_outside_requests(browser: Any, world: World) -> None:
    context = browser.new_context(base_url=world.url)
    page = context.new_page()
    problems: list[str] = []
    requests: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    try:
        page.goto("/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=120_000)  # a loaded machine renders slowly
        paths = page.locator(".opblock-summary-path").all_text_contents()
        assert any("/api/alerts" in path for path in paths) and any("/api/ingest" in path for path in paths)
        page.locator(".opblock-summary-path", has_text="/api/ingest").first.click()
        page.wait_for_selector(".opblock-body")
        shot(page, "docs")
    finally:
        context.close()
    assert problems == []
    assert requests and all(url.startswith(world.url + "/") for url in requests), requests


def test_first_2_docs_list_operations_with_every_other_host_blocked(browser: Any, world: World) -> None:
    """Offline: a browser that can reach nothing but the SOC still shows the API reference."""
    context = browser.new_context(base_url=world.url)
    blocked: list[str] = []

    def only_the_soc(route: Any) -> None:
        if route.request.url.startswith(world.url + "/"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", only_the_soc)
    page = context.new_page()
    try:
        page.goto("/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=120_000)  # a loaded machine renders slowly
        paths = page.locator(".opblock-summary-path").all_text_contents()
        assert len(paths) >= 40 and any("/api/events" in path for path in paths), paths
        assert page.locator(".opblock-tag").count() >= 5
    finally:
        context.close()
    assert blocked == []
