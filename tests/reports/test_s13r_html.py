"""Item 3: the HTML report — every section of the model with its numbers, formatted per language
(vi ``1.234`` and ``23/11/2026``, en ``1,234`` and ``23 Nov 2026``), week-over-week arrows,
the agency table only for the province, autoescaped (a rule title ``<script>`` stays text), one
self-contained file, and a week with no data."""

from __future__ import annotations

import html as html_escape
import re
from functools import cache
from typing import get_args

import pytest

from playbooks.records import RunStatus
from reports.i18n import Language, catalogue
from reports.model import Level, WeeklyReport
from reports.render import HEADLINE, render
from soc_core.alert_status import ALERT_STATUSES
from tests.reports import weekly_samples

SECTIONS = (
    "summary",
    "headline",
    "alerts",
    "top-rules",
    "attack",
    "sources-targets",
    "cases",
    "response",
    "false-positives",
    "sensors",
    "playbooks",
)


@cache
def page(name: str, lang: str) -> str:
    report: WeeklyReport = getattr(weekly_samples, name)()
    return render(report, fmt="html", lang=lang).decode("utf-8")


def section(document: str, section_id: str) -> str:
    """The visible text of one ``<section id=...>``, tags stripped, entities decoded, spaces
    collapsed."""
    match = re.search(rf'<section id="{section_id}"[^>]*>(.*?)</section>', document, re.S)
    assert match, f"no section {section_id!r}"
    text = re.sub(r"<[^>]+>", " ", match.group(1))
    return re.sub(r"\s+", " ", html_escape.unescape(text)).strip()


def card(document: str, key: str) -> str:
    match = re.search(rf'<div class="card" id="card-{key}">(.*?)</div>\s*</div>', document, re.S)
    assert match, f"no headline card {key!r}"
    return match.group(1)


EXPECTED_VI = {
    "headline": ["1.234", "tuần trước: 1.100", "+12,2%", "22 phút", "7 giờ 30 phút", "12,5%", "97,3%", "+2,5 điểm"],
    "alerts": [
        "T3 24/11 70 60 50 30 10 220",  # Tuesday: informational ... critical, total
        "Tổng 400 350 300 150 34 1.234",
        "Mới: 311",
        "Đã giải quyết: 655",
    ],
    "top-rules": ["Đăng nhập SSH thất bại liên tiếp ssh-brute-force Cao 321", "Nghiêm trọng 34"],
    "attack": ["credential-access 321", "T1110.001 321", "T1046 287", "T1190 34"],
    "sources-targets": ["203.0.113.77 402", "198.51.100.23 97", "cong-thong-tin.binhdinh.gov.vn 215", "10.20.0.5 88"],
    "cases": ["17 Mở mới", "14 Đã đóng", "9 Còn mở cuối tuần", "Tấn công thật 8", "Báo động giả 5", "Vô hại 1"],
    "response": [
        "Cao 150 21 phút 30 phút 4 7 giờ 30 phút 8 giờ 2",
        "Nghiêm trọng 34 7 phút 15 phút 1 2 giờ 30 phút 4 giờ 2",
        "Thông tin 400 — 1 ngày 0 — 7 ngày 0",
        "Vi phạm SLA: 13",
    ],
    "false-positives": ["Nghi vấn DNS tunneling dns-tunnel 8 6 75%", "Quét cổng từ mạng ngoài port-scan 200 50 25%"],
    "sensors": [
        "Tường lửa Công an s-ca-fw1 Công an tỉnh Mạng 99,8% 3,12% 812.345 29/11/2026 23:58 Hoạt động",
        "Máy chủ nhật ký Sở Y tế s-yt-log Sở Y tế Nhật ký 87,5% — 120.044 28/11/2026 10:10 Im lặng",
        "Cổng tuyển sinh s-gd-log Sở Giáo dục và Đào tạo Nhật ký — — 0 chưa từng Im lặng",
    ],
    "playbooks": ["23 Lượt chạy", "4 Ngăn chặn thành công", "thành công 19", "thất bại 3", "block-ssh-brute-force 15"],
    "agencies": [
        # most in need of attention first: SLA breaches, then high/critical alerts
        "Công an tỉnh police 700 120 5 15 phút 5 giờ 33 phút 9 0 "
        "Sở Y tế health 434 60 3 33 phút 10 giờ 4 1 "
        "Sở Giáo dục và Đào tạo education 100 8 1 — — 0 1",
    ],
}


@pytest.mark.parametrize("section_id", [*EXPECTED_VI])
def test_s13r_3_province_vietnamese_every_section_has_its_numbers(section_id: str) -> None:
    text = section(page("province", "vi"), section_id)
    for expected in EXPECTED_VI[section_id]:
        assert expected in text, f"{expected!r} missing from section {section_id}: {text[:600]}"


def test_s13r_3_header_dates_and_language_vietnamese() -> None:
    document = page("province", "vi")
    assert '<html lang="vi">' in document
    assert "Báo cáo an ninh mạng hằng tuần" in document
    assert "Tỉnh Bình Định" in document
    assert "23/11/2026 – 29/11/2026" in document  # Monday to Sunday, day first
    assert "Lập lúc 30/11/2026 07:05 (Asia/Ho_Chi_Minh)" in document  # 00:05 UTC shown in the report's zone


def test_s13r_3_english_formats_numbers_and_dates_its_way() -> None:
    document = page("province", "en")
    assert '<html lang="en">' in document
    assert "23 Nov 2026 – 29 Nov 2026" in document
    assert "Tue 24 70 60 50 30 10 220" in section(document, "alerts")
    assert "Total 400 350 300 150 34 1,234" in section(document, "alerts")
    assert "99.8% 3.12% 812,345 29 Nov 2026 23:58 Reporting" in section(document, "sensors")
    assert "7 h 30 min" in section(document, "response")
    assert "Agencies compared" in section(document, "agencies")
    assert "1.234" not in document


@pytest.mark.parametrize(
    ("key", "arrow", "tone", "change"),
    [
        ("alerts", "▲", "bad", "+12,2%"),  # more alerts: worse
        ("critical_alerts", "▼", "good", "−8,5%"),
        ("mtta_seconds", "▼", "good", "−11,2%"),  # faster acknowledgement: better
        ("mttr_seconds", "▲", "bad", "+25%"),
        ("cases_closed", "", "neutral", "không đổi"),
        ("sensor_uptime", "▼", "bad", "−1,7 điểm"),  # a rate moves in points
        ("playbook_runs", "▲", "neutral", "mới"),  # from none the week before
        ("containments", "", "neutral", ""),  # no number for the week before
    ],
)
def test_s13r_3_week_over_week_arrows(key: str, arrow: str, tone: str, change: str) -> None:
    shown = card(page("province", "vi"), key)
    assert f'class="change {tone}"' in shown
    assert (f'<span class="arrow">{arrow}</span>' in shown) == bool(arrow)
    assert change in shown


def test_s13r_3_agency_report_has_no_agency_table_and_no_other_agency() -> None:
    document = page("agency", "vi")
    assert 'id="agencies"' not in document
    for section_id in SECTIONS:
        section(document, section_id)  # every other section is there
    for other in ("Công an tỉnh", "Tường lửa Công an", "Sở Giáo dục", "Cổng tuyển sinh"):
        assert other not in document, other
    assert "Sở Y tế" in document
    # an agency's sensor table has no agency column
    assert "Máy chủ nhật ký Sở Y tế s-yt-log Nhật ký 87,5%" in section(document, "sensors")


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_s13r_3_hostile_rule_title_stays_text(lang: str) -> None:
    document = render(weekly_samples.province(hostile=True), fmt="html", lang=lang).decode("utf-8")
    assert "<script" not in document
    assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt; $\\frac{1}{0}$ SSH" in document
    # in the table, the chart's alt text, and the summary's sentence
    assert weekly_samples.HOSTILE_TITLE in section(document, "top-rules")
    assert weekly_samples.HOSTILE_TITLE in section(document, "summary")


def test_s13r_3_one_self_contained_file() -> None:
    document = page("province", "vi")
    sources = re.findall(r'\bsrc="([^"]*)"', document)
    assert len(sources) == 4  # the four charts
    assert all(source.startswith("data:image/png;base64,") for source in sources)
    assert not re.search(r'\b(?:href|src)="(?:https?:)?//', document)
    assert "<link" not in document and "@import" not in document
    assert "@page" in document and "size: A4" in document  # print CSS for A4
    assert '"Noto Sans"' in document


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_s13r_3_no_data_week_renders(lang: str) -> None:
    document = page("empty", lang)
    language = Language("vi" if lang == "vi" else "en")
    no_data = language.t("report.no_data")
    for section_id in ("top-rules", "attack", "sources-targets", "false-positives", "sensors"):
        assert no_data in section(document, section_id), section_id
    assert "<img" not in document  # no chart without data
    assert 'id="agencies"' not in document
    assert f"{language.t('col.total')} 0 0 0 0 0 0" in section(document, "alerts")
    assert "— " + language.t("headline.previous", value="—") in section(document, "headline")


def test_s13r_3_vocabulary_is_translated() -> None:
    """Every level, alert status, playbook run status and headline number has words in both
    languages (a value the catalogue lacks would show raw)."""
    ids = [f"level.{level}" for level in get_args(Level)]
    ids += [f"status.{status}" for status in ALERT_STATUSES]
    ids += [f"run_status.{status}" for status in get_args(RunStatus)]
    ids += [f"headline.{key}" for key, _kind, _better in HEADLINE]
    for lang in ("vi", "en"):
        missing = [message_id for message_id in ids if message_id not in catalogue("vi" if lang == "vi" else "en")]
        assert missing == [], lang
