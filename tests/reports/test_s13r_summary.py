"""Item 1: the executive summary is prose written from the numbers, in Vietnamese and English —
rises and falls week over week, the agency needing attention, SLA breaches, silent sensors,
containments — and it reads right for a week with no data or nothing but zeros."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reports.i18n import CATALOGUE_DIR, Language
from reports.model import Agency, Change, WeeklyReport
from reports.summary import executive_summary, trend
from tests.reports import weekly_samples

REPORTS = Path(__file__).resolve().parents[2] / "reports"
VI = Language("vi")
EN = Language("en")


def text(report: WeeklyReport, language: Language) -> str:
    return "\n".join(executive_summary(report, language))


def test_s13r_1_province_summary_vietnamese_says_what_moved() -> None:
    summary = text(weekly_samples.province(), VI)
    assert "Tỉnh Bình Định ghi nhận 1.234 cảnh báo, tăng 12,2% so với tuần trước (1.100)" in summary
    assert "184 cảnh báo ở mức cao hoặc nghiêm trọng, giảm 8,5% so với tuần trước (201)" in summary
    assert "Thứ Ba 24/11/2026 (220)" in summary  # the busiest day
    assert "“Đăng nhập SSH thất bại liên tiếp” (321)" in summary
    assert "(MTTA) là 22 phút, nhanh hơn tuần trước (25 phút)" in summary
    assert "(MTTR) là 7 giờ 30 phút, chậm hơn tuần trước (6 giờ)" in summary
    assert "13 vi phạm SLA (8 tiếp nhận trễ, 5 xử lý trễ), nhiều nhất ở mức cao" in summary
    assert "Đơn vị cần chú ý nhất là Công an tỉnh" in summary  # most SLA breaches
    assert "2 cảm biến im lặng vào cuối tuần: Máy chủ nhật ký Sở Y tế, Cổng tuyển sinh" in summary
    assert "giảm 1,7 điểm phần trăm so với tuần trước (99%)" in summary  # uptime, in points
    assert "mất gói cao nhất là 3,1%, tại Tường lửa Công an" in summary
    assert "chạy 23 lượt, ngăn chặn thành công 4 lần" in summary
    assert "“Nghi vấn DNS tunneling”: 6 trên 8 cảnh báo đã đóng (75%)" in summary


def test_s13r_1_province_summary_english() -> None:
    summary = text(weekly_samples.province(), EN)
    assert "Tỉnh Bình Định recorded 1,234 alerts, up 12.2% from 1,100 the week before." in summary
    assert "184 were high or critical, down 8.5% from 201 the week before." in summary
    assert "The busiest day was Tuesday 24 Nov 2026 (220)." in summary
    assert "acknowledged in 22 min on average (MTTA), faster than the week before (25 min)" in summary
    assert "resolved in 7 h 30 min (MTTR), slower than the week before (6 h)" in summary
    assert "13 SLA breaches (8 acknowledged late, 5 resolved late), mostly at high level" in summary
    assert "Công an tỉnh needs the most attention" in summary
    assert "2 sensors were silent at the end of the week" in summary
    assert "successful containments: 4" in summary


def test_s13r_1_agency_summary_has_no_agency_ranking_and_only_its_sensors() -> None:
    summary = text(weekly_samples.agency(), VI)
    assert "Sở Y tế ghi nhận 1.234 cảnh báo" in summary
    assert "cần chú ý nhất" not in summary
    assert "1 cảm biến im lặng vào cuối tuần: Máy chủ nhật ký Sở Y tế." in summary
    assert "Cổng tuyển sinh" not in summary and "Công an" not in summary


@pytest.mark.parametrize("language", [VI, EN], ids=["vi", "en"])
def test_s13r_1_no_data_week_claims_nothing(language: Language) -> None:
    summary = text(weekly_samples.empty(), language)
    expected = {
        "vi": ["không ghi nhận cảnh báo nào.", "Không có cảm biến nào", "Không có quy trình xử lý tự động nào chạy."],
        "en": ["recorded no alerts.", "No sensor reported this week.", "No playbook ran."],
    }[language.code]
    for sentence in expected:
        assert sentence in summary
    # no MTTA of zero, no trend against a week that has no numbers, no SLA talk about nothing
    for absent in ("MTTA", "0 giây", "0 s", "tuần trước", "week before", "SLA", "—"):
        assert absent not in summary, absent


def test_s13r_1_zero_week_after_a_busy_one() -> None:
    empty = weekly_samples.empty()
    quiet = empty.model_copy(
        update={
            "headline": empty.headline.model_copy(
                update={
                    "alerts": Change(value=0, previous=50, change=-1.0),
                    "sla_breaches": Change(value=0, previous=3, change=-1.0),
                }
            )
        }
    )
    assert "không ghi nhận cảnh báo nào, giảm từ 50 của tuần trước." in text(quiet, VI)
    english = text(quiet, EN)
    assert "recorded no alerts, down from 50 the week before." in english
    assert "No SLA was breached, down from 3 the week before." in english


def test_s13r_1_alerts_nobody_acknowledged() -> None:
    report = weekly_samples.province()
    response = report.response.model_copy(update={"mtta_seconds": None, "mttr_seconds": None})
    summary = text(report.model_copy(update={"response": response}), EN)
    assert "No alert of the week has been acknowledged yet." in summary
    assert "MTTA" not in summary


def test_s13r_1_english_counts_one_in_the_singular() -> None:
    report = weekly_samples.agency()
    one = report.model_copy(update={"alerts": report.alerts.model_copy(update={"total": 1})})
    summary = text(one, EN)
    assert "recorded 1 alert," in summary
    assert "1 sensor was silent at the end of the week: Máy chủ nhật ký Sở Y tế." in summary


def test_s13r_1_clean_province_says_so() -> None:
    report = weekly_samples.province()
    clean = [
        agency.model_copy(update={"sla_breaches": 0, "critical_alerts": 0, "silent_sensors": 0})
        for agency in report.agencies
    ]
    summary = text(report.model_copy(update={"agencies": clean}), VI)
    assert "Không đơn vị nào có cảnh báo mức cao, vi phạm SLA hay cảm biến im lặng." in summary


def test_s13r_1_worst_agency_is_ranked_by_breaches_then_critical_alerts() -> None:
    def agency(name: str, breaches: int, critical: int) -> Agency:
        return Agency(
            tenant=name,
            name=name,
            alerts=10,
            critical_alerts=critical,
            open_cases=0,
            mtta_seconds=None,
            mttr_seconds=None,
            sla_breaches=breaches,
            silent_sensors=0,
        )

    report = weekly_samples.province().model_copy(
        update={"agencies": [agency("A", 1, 90), agency("B", 2, 1), agency("C", 2, 5)]}
    )
    assert "C needs the most attention" in text(report, EN)


def test_s13r_1_trend_clauses() -> None:
    assert trend(Change(value=5, previous=5, change=0.0), EN) == ", the same as the week before"
    assert trend(Change(value=5, previous=0, change=None), EN) == ", up from none the week before"
    assert trend(Change(value=5, previous=None, change=None), EN) == ""
    assert trend(Change(value=None, previous=4, change=None), EN) == ""
    assert trend(Change(value=0.2, previous=0.25, change=-0.2), VI, kind="percent") == (
        ", giảm 5,0 điểm phần trăm so với tuần trước (25%)"
    )


def test_s13r_1_every_message_id_used_is_in_both_catalogues() -> None:
    vi = json.loads((CATALOGUE_DIR / "vi.json").read_text(encoding="utf-8"))
    en = json.loads((CATALOGUE_DIR / "en.json").read_text(encoding="utf-8"))
    assert set(vi) == set(en), set(vi) ^ set(en)
    used: set[str] = set()
    for path in [*REPORTS.glob("*.py"), *(REPORTS / "templates").glob("*.html")]:
        source = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"""\.t\(\s*["']([a-z_.]+[a-z_])["']""", source))
        used |= {
            f"{stem}.{form}"
            for stem in re.findall(r"""\.plural\(\s*["']([a-z_.]+)["']""", source)
            for form in ("one", "other")
        }
    assert used, "no message id found: the scan is broken"
    assert used - set(en) == set()
    for value in vi.values():
        assert value.strip() == value and value, value
