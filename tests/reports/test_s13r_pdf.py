"""Item 4: the PDF (WeasyPrint) — checked as CI checks it: the text ``pdftotext`` extracts keeps
the Vietnamese diacritics ("Cảnh báo", "Sở Y tế"), ``pdftoppm`` turns every page into a picture
that is not blank, pages are A4 and bounded in count, the file is bounded in size, the font is
the one the CSS names, embedded. Both languages, the province and an agency, a week with no data,
a rule title ``<script>…`` that stays text.
JSON is the model's dump and reads back as the same report."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest
from PIL import Image

from reports.model import WeeklyReport
from reports.render import render
from tests.reports import weekly_samples

MAX_PAGES = 12
MAX_BYTES = 3 * 1024 * 1024
A4_POINTS = (595.28, 841.89)


def poppler(tool: str) -> str:
    path = shutil.which(tool)
    assert path, f"{tool} is missing: run scripts/install-system-deps (Debian poppler-utils)"
    return path


SAMPLES = {
    "province": weekly_samples.province,
    "hostile": lambda: weekly_samples.province(hostile=True),
    "agency": weekly_samples.agency,
    "empty": weekly_samples.empty,
}


@cache
def pdf(name: str, lang: str) -> bytes:
    """Each PDF once per test process (WeasyPrint takes seconds)."""
    return render(SAMPLES[name](), fmt="pdf", lang=lang)


def saved(tmp_path: Path, name: str, lang: str) -> Path:
    path = tmp_path / f"{name}-{lang}.pdf"
    path.write_bytes(pdf(name, lang))
    return path


def info(path: Path) -> dict[str, str]:
    out = subprocess.run([poppler("pdfinfo"), str(path)], capture_output=True, text=True, check=True).stdout
    return {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in out.splitlines())}


def text(path: Path) -> str:
    """The text in reading order, every run of white space one space (a table cell may wrap)."""
    out = subprocess.run([poppler("pdftotext"), str(path), "-"], capture_output=True, text=True, check=True)
    return re.sub(r"\s+", " ", out.stdout)


def pictures(path: Path, tmp_path: Path) -> list[Path]:
    subprocess.run([poppler("pdftoppm"), "-r", "40", "-png", str(path), str(tmp_path / "page")], check=True)
    return sorted(tmp_path.glob("page-*.png"))


EXPECTED_TEXT = {
    ("province", "vi"): [
        "Báo cáo an ninh mạng hằng tuần",
        "Tỉnh Bình Định",
        "Cảnh báo theo mức độ và theo ngày",
        "Sở Y tế",
        "Công an tỉnh",
        "Sở Giáo dục và Đào tạo",
        "ghi nhận 1.234 cảnh báo",
        "Đăng nhập SSH thất bại liên tiếp",
        "Thời gian phản hồi và SLA",
        "Tình trạng cảm biến",
        "So sánh các đơn vị",
        "23/11/2026",
    ],
    ("hostile", "en"): [
        "Weekly security report",
        "“<script>alert('xss')</script> $\\frac{1}{0}$ SSH” (321)",  # the title stays text
        "Alerts by level and day",
        "recorded 1,234 alerts",
        "Sở Y tế",
        "Công an tỉnh",
        "Agencies compared",
        "23 Nov 2026",
    ],
    ("agency", "vi"): ["Sở Y tế ghi nhận 1.234 cảnh báo", "Cảnh báo", "Máy chủ nhật ký Sở Y tế", "Vụ việc"],
    ("empty", "en"): ["Sở Giáo dục và Đào tạo recorded no alerts.", "No data this week."],
}


@pytest.mark.parametrize(("name", "lang"), list(EXPECTED_TEXT), ids=[f"{n}-{lang}" for n, lang in EXPECTED_TEXT])
def test_s13r_4_pdf_text_pages_size_and_font(tmp_path: Path, name: str, lang: str) -> None:
    path = saved(tmp_path, name, lang)
    assert path.read_bytes().startswith(b"%PDF-")
    assert path.stat().st_size <= MAX_BYTES, f"{path.stat().st_size} bytes"
    meta = info(path)
    pages = int(meta["Pages"])
    assert 1 <= pages <= MAX_PAGES
    width, height = (float(number) for number in re.findall(r"[\d.]+", meta["Page size"])[:2])
    assert (round(width), round(height)) == (round(A4_POINTS[0]), round(A4_POINTS[1])), meta["Page size"]
    extracted = text(path)
    squeezed = "".join(extracted.split())  # a line may break anywhere, even inside "</script>"
    for expected in EXPECTED_TEXT[(name, lang)]:
        assert "".join(expected.split()) in squeezed, f"{expected!r} not in the PDF's text"
    assert "\ufffd" not in extracted  # no letter fell out of the font
    fonts = subprocess.run([poppler("pdffonts"), str(path)], capture_output=True, text=True, check=True).stdout
    body = [line for line in fonts.splitlines()[2:] if "Noto-Sans" in line]
    assert body, f"Noto Sans is not in the PDF:\n{fonts}"
    assert all(" yes " in line for line in body), f"a font is not embedded:\n{fonts}"
    # the footer numbers every page
    for number in range(1, pages + 1):
        assert re.search(rf"\b{number} ?/ ?{pages}\b", extracted), f"no page number {number} / {pages}"


@pytest.mark.parametrize(("name", "lang"), [("province", "vi"), ("agency", "vi")])
def test_s13r_4_every_page_turns_into_a_picture_that_is_not_blank(tmp_path: Path, name: str, lang: str) -> None:
    path = saved(tmp_path, name, lang)
    pages = pictures(path, tmp_path)
    assert len(pages) == int(info(path)["Pages"])
    for picture in pages:
        with Image.open(picture) as image:
            # above the footer (the bottom 8% of the page): a heading, a table or a chart
            grey = image.convert("L").crop((0, 0, image.width, int(image.height * 0.92)))
            inked = sum(count for value, count in enumerate(grey.histogram()) if value < 200)
            assert inked > grey.width * grey.height * 0.002, f"{picture.name} has nothing above its footer"


@pytest.mark.parametrize("name", ["province", "agency", "empty"])
def test_s13r_4_json_is_the_model_dump(name: str) -> None:
    report: WeeklyReport = SAMPLES[name]()
    for lang in ("vi", "en"):
        dumped = render(report, fmt="json", lang=lang)
        assert WeeklyReport.model_validate_json(dumped) == report
        assert dumped == report.model_dump_json(indent=2).encode("utf-8")  # numbers, not words
