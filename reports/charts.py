"""The weekly report's charts, drawn with matplotlib and returned as ``data:`` URIs so one HTML
file (and the PDF made from it) carries its pictures.

Each chart is its own ``Figure`` drawn on its own Agg canvas — never ``pyplot``, whose current
figure and backend are process-wide — and no ``rcParams`` are changed, so the scheduler, the API
and the CLI may draw reports in several threads at once. Text from events and rules (rule
titles, agency names) is drawn with ``parse_math=False``: a ``$`` in a title stays a dollar sign
instead of starting TeX. The font is matplotlib's own DejaVu Sans, which covers Vietnamese and
is always there.

A chart with nothing to show is ``None``; the template says "no data" instead.
"""

from __future__ import annotations

import base64
import io
from datetime import date
from typing import Literal, get_args

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from reports.i18n import Language
from reports.model import Level, WeeklyReport

LEVELS: tuple[Level, ...] = get_args(Level)  # the model's LEVELS, typed as its Literal

LEVEL_COLOURS = {
    "informational": "#9aa5b1",
    "low": "#4c8bf5",
    "medium": "#f2b01e",
    "high": "#ef6c00",
    "critical": "#c62828",
}
INK = "#1f2933"
GRID = "#d9dee4"
# PNG at 200 dpi: sharp on paper (A4 width of ~17 cm takes a 7-inch chart at ~210 dpi)
DPI = 200
WIDTH_INCHES = 7.0
LABEL_CHARS = 48


def alerts_by_day(report: WeeklyReport, language: Language) -> str | None:
    """Stacked bars: each day's alerts, one colour per level, the day's total on top."""
    if not report.alerts.total:
        return None
    figure, axes = _figure(2.7)
    days = report.alerts.by_day
    positions = list(range(len(days)))
    bottoms = [0] * len(days)
    for level in LEVELS:
        heights = [day.by_level.get(level, 0) for day in days]
        if not any(heights):
            continue
        axes.bar(
            positions,
            heights,
            bottom=bottoms,
            width=0.62,
            color=LEVEL_COLOURS[level],
            label=language.word("level", level),
            zorder=2,
        )
        bottoms = [bottom + height for bottom, height in zip(bottoms, heights, strict=True)]
    for position, day in zip(positions, days, strict=True):
        if day.total:
            axes.annotate(
                language.number(day.total),
                (position, day.total),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=8,
                color=INK,
            )
    axes.set_xticks(positions, [language.short_day(date.fromisoformat(day.date)) for day in days])
    axes.set_ylabel(language.t("chart.alerts"))
    axes.set_ylim(0, max(day.total for day in days) * 1.18)
    _count_axis(axes, language, "y")
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8)
    return _encode(figure)


def top_rules(report: WeeklyReport, language: Language) -> str | None:
    """Horizontal bars: the rules raised most, most first, in their level's colour."""
    rules = report.top_rules
    if not rules:
        return None
    figure, axes = _figure(0.9 + 0.28 * len(rules))
    positions = list(range(len(rules)))[::-1]
    counts = [rule.count for rule in rules]
    axes.barh(positions, counts, height=0.62, color=[LEVEL_COLOURS[rule.level] for rule in rules], zorder=2)
    for position, count in zip(positions, counts, strict=True):
        axes.annotate(
            language.number(count),
            (count, position),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
            color=INK,
        )
    axes.set_yticks(positions, [_shorten(rule.title) for rule in rules], parse_math=False, fontsize=8)
    axes.set_xlim(0, max(counts) * 1.15)
    _count_axis(axes, language, "x")
    return _encode(figure)


def response_against_sla(report: WeeklyReport, language: Language) -> str | None:
    """Per level, MTTA and MTTR as a share of that level's SLA (horizontal bars, a dashed line
    at 100%), each bar labelled with the time itself."""
    levels = [
        level for level in report.response.by_level if level.mtta_seconds is not None or level.mttr_seconds is not None
    ]
    if not levels:
        return None
    figure, axes = _figure(0.9 + 0.45 * len(levels))
    height = 0.38
    peak = 100.0
    # most severe level on top, MTTA above MTTR within a level
    rows = list(range(len(levels)))
    for offset, (name, colour) in enumerate((("mtta", "#4c8bf5"), ("mttr", "#1f3a5f"))):
        positions: list[float] = []
        shares: list[float] = []
        labels: list[str] = []
        for row, level in zip(rows, levels, strict=True):
            seconds = level.mtta_seconds if name == "mtta" else level.mttr_seconds
            sla = level.ack_sla_seconds if name == "mtta" else level.resolve_sla_seconds
            if seconds is None or sla <= 0:
                continue
            positions.append(row + (0.5 - offset) * height)
            shares.append(seconds / sla * 100)
            labels.append(language.duration(seconds))
        if not positions:
            continue
        peak = max(peak, *shares)
        axes.barh(positions, shares, height=height * 0.9, color=colour, label=language.t(f"chart.{name}"), zorder=2)
        for position, share, label in zip(positions, shares, labels, strict=True):
            axes.annotate(
                label, (share, position), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7, color=INK
            )
    axes.axvline(
        100, color=LEVEL_COLOURS["critical"], linewidth=1.2, linestyle="--", zorder=3, label=language.t("chart.sla")
    )
    axes.set_yticks(rows, [language.word("level", level.level) for level in levels])
    axes.set_xlim(0, peak * 1.25)
    axes.set_xlabel(language.t("chart.sla_share"), fontsize=8, color=INK)
    axes.xaxis.set_major_formatter(lambda value, _position: language.number(value) + "%")
    axes.grid(axis="x", color=GRID, linewidth=0.6, zorder=0)
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8)
    return _encode(figure)


def agencies(report: WeeklyReport, language: Language) -> str | None:
    """The province's agencies side by side: alerts split into high/critical and the rest."""
    rows = sorted(report.agencies, key=lambda agency: (-agency.alerts, agency.name))
    if not rows or not any(agency.alerts for agency in rows):
        return None
    figure, axes = _figure(0.9 + 0.3 * len(rows))
    positions = list(range(len(rows)))[::-1]
    critical = [agency.critical_alerts for agency in rows]
    other = [agency.alerts - agency.critical_alerts for agency in rows]
    axes.barh(
        positions,
        critical,
        height=0.62,
        color=LEVEL_COLOURS["critical"],
        label=language.t("chart.high_critical"),
        zorder=2,
    )
    axes.barh(
        positions,
        other,
        left=critical,
        height=0.62,
        color=LEVEL_COLOURS["informational"],
        label=language.t("chart.other_levels"),
        zorder=2,
    )
    for position, agency in zip(positions, rows, strict=True):
        axes.annotate(
            language.number(agency.alerts),
            (agency.alerts, position),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
            color=INK,
        )
    axes.set_yticks(positions, [_shorten(agency.name) for agency in rows], parse_math=False, fontsize=8)
    axes.set_xlim(0, max(agency.alerts for agency in rows) * 1.15)
    _count_axis(axes, language, "x")
    axes.legend(loc="lower right", frameon=False, fontsize=8)
    return _encode(figure)


CHARTS = {
    "alerts_by_day": alerts_by_day,
    "top_rules": top_rules,
    "response": response_against_sla,
    "agencies": agencies,
}


def draw_all(report: WeeklyReport, language: Language) -> dict[str, str | None]:
    return {name: draw(report, language) for name, draw in CHARTS.items()}


def _figure(height: float) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(WIDTH_INCHES, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        axes.spines[side].set_color(GRID)
    axes.tick_params(colors=INK, labelsize=8)
    axes.yaxis.label.set_color(INK)
    return figure, axes


def _count_axis(axes: Axes, language: Language, which: Literal["x", "y"]) -> None:
    """Whole numbers only, grouped the reader's way, with a light grid behind the bars."""
    axis = axes.yaxis if which == "y" else axes.xaxis
    axis.set_major_locator(MaxNLocator(integer=True))
    axis.set_major_formatter(lambda value, _position: language.number(value))
    axes.grid(axis=which, color=GRID, linewidth=0.6, zorder=0)


def _shorten(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1].rstrip() + "…"


def _encode(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


__all__ = ["CHARTS", "LEVEL_COLOURS", "agencies", "alerts_by_day", "draw_all", "response_against_sla", "top_rules"]
