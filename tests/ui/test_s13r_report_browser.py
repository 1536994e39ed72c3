"""Item 3 in a real browser: the HTML report opened in headless Chromium as a manager opens the
downloaded file — a rule title ``<script>…</script>`` shows as text and runs nothing, every chart
(a ``data:`` URI) loads, and the page prints to A4 with its print CSS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reports.render import render
from tests.reports import weekly_samples


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_s13r_3_report_file_in_chromium(browser: Any, tmp_path: Path, lang: str) -> None:
    path = tmp_path / f"report-{lang}.html"
    path.write_bytes(render(weekly_samples.province(hostile=True), fmt="html", lang=lang))
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    try:
        page = context.new_page()
        dialogs: list[str] = []
        errors: list[str] = []

        def refuse(dialog: Any) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", refuse)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        assert dialogs == [] and errors == [], (dialogs, errors)
        assert page.locator("script").count() == 0
        rules = page.locator("#top-rules table").inner_text()
        assert weekly_samples.HOSTILE_TITLE in rules
        images = page.locator("img.chart")
        assert images.count() == 4
        widths = images.evaluate_all("imgs => imgs.map(img => img.complete ? img.naturalWidth : 0)")
        assert all(width > 1000 for width in widths), f"a chart did not load: {widths}"
        heading = "Báo cáo an ninh mạng hằng tuần" if lang == "vi" else "Weekly security report"
        assert page.locator("h1").inner_text() == heading
        printed = page.pdf(prefer_css_page_size=True)
        assert printed.startswith(b"%PDF-")
    finally:
        context.close()
