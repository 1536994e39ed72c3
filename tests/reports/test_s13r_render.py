"""Item 5: ``reports.render.render(report, *, fmt, lang) -> bytes`` — the one entry point; an
unknown format or language is a clear ``InvalidInput`` naming the field and the choices."""

from __future__ import annotations

import pytest

from reports.i18n import Language
from reports.render import CONTENT_TYPES, FORMATS, render
from soc_core.errors import InvalidInput
from tests.reports import weekly_samples


@pytest.mark.parametrize(
    ("fmt", "lang", "where", "named"),
    [("docx", "vi", "format", "html, pdf, json"), ("pdf", "fr", "lang", "vi, en"), ("HTML", "vi", "format", "html")],
)
def test_s13r_5_unknown_format_or_language_is_a_clear_error(fmt: str, lang: str, where: str, named: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        render(weekly_samples.empty(), fmt=fmt, lang=lang)
    assert raised.value.where == where
    assert repr(fmt if where == "format" else lang) in raised.value.message
    assert named in (raised.value.hint or "")


def test_s13r_5_every_format_has_a_content_type_and_answers_bytes() -> None:
    assert set(CONTENT_TYPES) == set(FORMATS) == {"html", "pdf", "json"}
    report = weekly_samples.empty()
    starts = {"html": b"<!DOCTYPE html>", "pdf": b"%PDF-", "json": b"{"}
    for fmt in FORMATS:
        out = render(report, fmt=fmt, lang="en")
        assert isinstance(out, bytes)
        assert out.startswith(starts[fmt]), fmt


def test_s13r_5_formats_follow_the_language() -> None:
    vi, en = Language("vi"), Language("en")
    assert (vi.number(1234567), en.number(1234567)) == ("1.234.567", "1,234,567")
    assert (vi.number(12.5, 1), en.number(12.5, 1)) == ("12,5", "12.5")
    assert (vi.percent(0.125), en.percent(0.125), vi.percent(0.25), vi.percent(None)) == ("12,5%", "12.5%", "25%", "—")
    assert (vi.change(-0.085), en.change(0.5)) == ("−8,5%", "+50%")
    assert [vi.duration(s) for s in (None, 0, 45, 60, 1332, 27000, 3600, 90061, 604800)] == [
        "—",
        "0 giây",
        "45 giây",
        "1 phút",
        "22 phút",
        "7 giờ 30 phút",
        "1 giờ",
        "1 ngày 1 giờ",
        "7 ngày",
    ]
    assert en.duration(27000) == "7 h 30 min"
