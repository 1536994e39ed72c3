"""The weekly report as a document: HTML (one self-contained file), PDF (WeasyPrint) or JSON.

``render(report, fmt=..., lang=...)`` is the one entry point the CLI, the API, the scheduler and
the e-mail use. The HTML comes from ``reports/templates/weekly.html`` through a Jinja2
environment that escapes every value: rule titles, host names and agency names come from events
and configuration, and stay text. Charts are PNG ``data:`` URIs (``reports.charts``) and the
style sheet is inlined, so the HTML needs nothing else; WeasyPrint is given a URL fetcher that
refuses everything but ``data:`` URIs, so a document can never make it reach the network or
the disk. The PDF names Noto Sans (Debian ``fonts-noto-core``, installed by
``scripts/install-system-deps``), which covers every Vietnamese letter; DejaVu Sans is the
fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from reports.charts import draw_all
from reports.i18n import Language, check_language
from reports.model import LEVELS, Change, WeeklyReport
from reports.summary import attention_rank, executive_summary
from soc_core.errors import InvalidInput

Format = Literal["html", "pdf", "json"]
FORMATS: tuple[Format, ...] = get_args(Format)
TEMPLATE_DIR = Path(__file__).parent / "templates"
# Which way is good for each headline number: an arrow is green when it moves that way.
Better = Literal["lower", "higher", "neutral"]
HEADLINE: tuple[tuple[str, str, Better], ...] = (
    ("alerts", "count", "lower"),
    ("critical_alerts", "count", "lower"),
    ("sla_breaches", "count", "lower"),
    ("open_cases", "count", "lower"),
    ("mtta_seconds", "duration", "lower"),
    ("mttr_seconds", "duration", "lower"),
    ("cases_opened", "count", "neutral"),
    ("cases_closed", "count", "higher"),
    ("false_positive_rate", "percent", "lower"),
    ("sensor_uptime", "percent", "higher"),
    ("playbook_runs", "count", "neutral"),
    ("containments", "count", "neutral"),
)
CONTENT_TYPES: dict[Format, str] = {
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "json": "application/json",
}


@dataclass(frozen=True)
class Card:
    """One headline number as the reader sees it."""

    key: str
    label: str
    value: str
    previous: str
    arrow: str  # ▲ ▼ or ""
    change: str  # "+12%", "−3 pts", "new", "unchanged" or ""
    tone: str  # good, bad or neutral: the arrow's colour


def render(report: WeeklyReport, *, fmt: str, lang: str) -> bytes:
    """The report as ``fmt`` (html, pdf or json) in ``lang`` (vi or en)."""
    language = Language(check_language(lang))
    chosen = check_format(fmt)
    if chosen == "json":
        return report.model_dump_json(indent=2).encode("utf-8")
    page = html(report, language)
    if chosen == "html":
        return page.encode("utf-8")
    return pdf(page)


def check_format(fmt: str) -> Format:
    for known in FORMATS:
        if fmt == known:
            return known
    raise InvalidInput(f"unknown report format {fmt!r}", where="format", hint=f"use one of {', '.join(FORMATS)}")


def html(report: WeeklyReport, language: Language) -> str:
    return _environment().get_template("weekly.html").render(**context(report, language))


def context(report: WeeklyReport, language: Language) -> dict[str, Any]:
    """Everything the template reads, formatted for the reader."""
    zone = _zone(report.timezone)
    start = datetime.fromisoformat(report.start)
    last_day = (datetime.fromisoformat(report.end) - timedelta(days=1)).date()
    return {
        "report": report,
        "lang": language,
        "levels": LEVELS,
        "period": language.t("report.period", start=language.day(start.date()), end=language.day(last_day)),
        "generated": language.t(
            "report.generated", when=_moment(report.generated_at, zone, language), timezone=report.timezone
        ),
        "province": report.scope.tenant == "*",
        "summary": executive_summary(report, language),
        "cards": headline_cards(report, language),
        "charts": draw_all(report, language),
        "days": [(language.short_day(date.fromisoformat(day.date)), day) for day in report.alerts.by_day],
        "last_seen": {sensor.sensor_id: _moment(sensor.last_seen, zone, language) for sensor in report.sensors},
        "agency_names": {agency.tenant: agency.name for agency in report.agencies},
        "agencies": sorted(report.agencies, key=attention_rank, reverse=True),
        "css": (TEMPLATE_DIR / "weekly.css").read_text(encoding="utf-8"),
    }


def headline_cards(report: WeeklyReport, language: Language) -> list[Card]:
    cards = []
    for key, kind, better in HEADLINE:
        change: Change = getattr(report.headline, key)
        shown = _shown(kind, language)
        arrow, text, tone = _movement(change, kind, better, language)
        cards.append(
            Card(
                key=key,
                label=language.t(f"headline.{key}"),
                value=shown(change.value),
                previous=language.t("headline.previous", value=shown(change.previous)),
                arrow=arrow,
                change=text,
                tone=tone,
            )
        )
    return cards


def _shown(kind: str, language: Language) -> Any:
    if kind == "duration":
        return language.duration
    if kind == "percent":
        return language.percent
    return language.number


def _movement(change: Change, kind: str, better: Better, language: Language) -> tuple[str, str, str]:
    value, previous = change.value, change.previous
    if value is None or previous is None:
        return "", "", "neutral"
    if value == previous:
        return "", language.t("change.same"), "neutral"
    rising = value > previous
    arrow = "▲" if rising else "▼"
    tone = "neutral" if better == "neutral" else "good" if rising == (better == "higher") else "bad"
    if kind == "percent":
        sign = "+" if rising else "−"
        return arrow, language.t("change.points", sign=sign, n=language.number(abs(value - previous) * 100, 1)), tone
    if change.change is None:
        return arrow, language.t("change.new") if previous == 0 else "", tone
    return arrow, language.change(change.change), tone


def _moment(timestamp: str | None, zone: ZoneInfo | None, language: Language) -> str:
    """An ISO timestamp as the reader's date and time, in the report's time zone."""
    if timestamp is None:
        return language.t("sensor.never")
    moment = datetime.fromisoformat(timestamp)
    if zone is not None and moment.tzinfo is not None:
        moment = moment.astimezone(zone)
    return language.moment(moment)


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,  # every value is text, whatever an event or a rule put in it
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def pdf(page: str) -> bytes:
    # WeasyPrint is imported here: it loads pango through cffi, which only the PDF needs.
    from weasyprint import HTML  # noqa: PLC0415
    from weasyprint.urls import URLFetcher  # noqa: PLC0415

    # only data: URIs: the page embeds all it needs, and a value that slipped into a URL
    # could otherwise make the renderer read a file or call a host
    fetcher = URLFetcher(allowed_protocols=("data",), allow_redirects=False)
    document: bytes = HTML(string=page, url_fetcher=fetcher).write_pdf()
    return document


__all__ = [
    "CONTENT_TYPES",
    "FORMATS",
    "Card",
    "Format",
    "check_format",
    "context",
    "headline_cards",
    "html",
    "pdf",
    "render",
]
