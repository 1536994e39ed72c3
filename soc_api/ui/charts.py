"""The dashboard's charts as geometry for server-rendered SVG (``_charts.html`` draws them).

No script and no inline style: the UI's CSP (``script-src 'self'; style-src 'self'``) holds, the
colours are classes of ``app.css``, and the SVG is part of the page (no image request). Labels
stay data: the template autoescapes them. Every chart carries a one-line text alternative
(``summary``), and the page keeps the numbers as a table beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 600
LABEL_CHARS = 34


@dataclass(frozen=True)
class Bar:
    label: str  # shown, cut to LABEL_CHARS
    full: str  # the whole label, as the bar's tooltip
    value: str  # the number as shown
    css: str
    y: float
    width: float


@dataclass(frozen=True)
class Bars:
    """Horizontal bars, one row each, scaled to the largest value."""

    bars: list[Bar]
    height: float
    label_width: float
    bar_x: float
    row: float


def _cut(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def bars(rows: Sequence[tuple[str, float, str, str]], *, scale: float | None = None) -> Bars:
    """``rows`` of (label, value, value as shown, css class); ``scale`` is the full bar's value
    (default: the largest). The label column is as wide as the longest label needs (12 px text)."""
    row = 24.0
    label_width = min(230.0, max(60.0, 7.0 * max([len(_cut(label)) for label, _, _, _ in rows] + [0]) + 8))
    top = max([scale or 0.0, *(value for _, value, _, _ in rows), 1e-9])
    span = WIDTH - label_width - 70
    return Bars(
        bars=[
            Bar(_cut(label), label, shown, css, n * row, max(0.0, value) / top * span)
            for n, (label, value, shown, css) in enumerate(rows)
        ],
        height=max(row * len(rows), row),
        label_width=label_width,
        bar_x=label_width + 8,
        row=row,
    )


@dataclass(frozen=True)
class Column:
    label: str
    value: int
    x: float
    y: float
    height: float
    tick: str  # the axis label under it ("" for most)
    anchor: str  # of the tick: the last one ends at the column, so it stays inside the chart


@dataclass(frozen=True)
class Columns:
    """Vertical columns over time (alerts per day), with the peak as the one y tick."""

    columns: list[Column]
    width: float  # of one column
    base: float  # the y of the axis
    left: float  # the x of the axis's start (the y ticks end there)
    peak: int


def columns(points: Sequence[tuple[str, int]], *, height: float = 160, every: int = 7) -> Columns:
    """``points`` of (day YYYY-MM-DD, count), oldest first; an axis label every ``every`` days
    counted back from the last (today is always labelled)."""
    peak = max([count for _, count in points] + [1])
    left, base = 48.0, height - 22
    step = (WIDTH - left) / max(len(points), 1)
    last = len(points) - 1
    return Columns(
        columns=[
            Column(
                label=day,
                value=count,
                x=left + n * step + 1,
                y=base - count / peak * (base - 8),
                height=count / peak * (base - 8),
                tick=day[8:10] + "/" + day[5:7] if (last - n) % every == 0 else "",
                anchor="end" if n == last else "middle",
            )
            for n, (day, count) in enumerate(points)
        ],
        width=max(step - 2, 1.0),
        base=base,
        left=left,
        peak=peak,
    )


@dataclass(frozen=True)
class Point:
    label: str
    x: float
    y: float | None  # None: no value that week (no line through it)
    shown: str


@dataclass(frozen=True)
class Line:
    """One series over weeks, scaled to its own largest value (``peak`` as shown)."""

    points: list[Point]
    path: str  # SVG path data; a gap where a week has no value
    base: float
    left: float  # the x of the axis's start (the peak's label ends there)
    peak: str


def line(points: Sequence[tuple[str, float | None, str]], *, unit: float, suffix: str, height: float = 120) -> Line:
    """``points`` of (week, value, value as shown); the axis in ``value / unit`` + ``suffix``."""
    left, base = 84.0, height - 22
    values = [value for _, value, _ in points if value is not None]
    top = max([*values, 1e-9])
    step = (WIDTH - left - 20) / max(len(points) - 1, 1)
    placed = [
        Point(label, left + n * step, None if value is None else base - value / top * (base - 10), shown)
        for n, (label, value, shown) in enumerate(points)
    ]
    path, pen_down = [], False
    for point in placed:
        if point.y is None:
            pen_down = False
            continue
        path.append(f"{'L' if pen_down else 'M'}{point.x:.1f},{point.y:.1f}")
        pen_down = True
    peak = f"{top / unit:.1f} {suffix}" if values else "—"
    return Line(points=placed, path=" ".join(path), base=base, left=left, peak=peak)


__all__ = ["WIDTH", "Bars", "Columns", "Line", "bars", "columns", "line"]
