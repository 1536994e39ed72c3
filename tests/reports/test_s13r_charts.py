"""Item 2: the charts — alerts by level and day, top rules, MTTA/MTTR against the SLA, the
province's agencies — drawn by matplotlib on Agg as PNG data URIs, with no state shared between
threads (no pyplot, no rcParams changed), hostile titles drawn as text."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib
import pytest
from PIL import Image

from reports import charts
from reports.i18n import Language
from reports.model import WeeklyReport
from tests.reports import weekly_samples

PREFIX = "data:image/png;base64,"
ROOT = Path(__file__).resolve().parents[2]


def picture(uri: str | None) -> Image.Image:
    assert uri is not None and uri.startswith(PREFIX)
    return Image.open(io.BytesIO(base64.b64decode(uri[len(PREFIX) :])))


def colours(image: Image.Image) -> set[tuple[int, ...]]:
    return {
        colour
        for _count, colour in image.convert("RGB").getcolors(maxcolors=1 << 20) or []
        if isinstance(colour, tuple)
    }


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_s13r_2_province_draws_every_chart(lang: str) -> None:
    drawn = charts.draw_all(weekly_samples.province(), Language("vi" if lang == "vi" else "en"))
    assert set(drawn) == {"alerts_by_day", "top_rules", "response", "agencies"}
    for name, uri in drawn.items():
        image = picture(uri)
        assert image.format == "PNG", name
        assert image.width == charts.WIDTH_INCHES * charts.DPI, name
        # bars in the level colours, not a blank canvas
        assert len(colours(image)) > 20, name
    day_chart = colours(picture(drawn["alerts_by_day"]))
    for level_colour in charts.LEVEL_COLOURS.values():
        rgb = tuple(int(level_colour[i : i + 2], 16) for i in (1, 3, 5))
        assert rgb in day_chart, f"no bar in {level_colour} in the alerts-by-day chart"


def test_s13r_2_agency_and_empty_week_draw_only_what_has_data() -> None:
    agency = charts.draw_all(weekly_samples.agency(), Language("vi"))
    assert agency["agencies"] is None
    assert all(agency[name] for name in ("alerts_by_day", "top_rules", "response"))
    assert charts.draw_all(weekly_samples.empty(), Language("en")) == dict.fromkeys(charts.CHARTS)


def test_s13r_2_hostile_titles_are_drawn_as_text() -> None:
    """A `$` in a rule title would start matplotlib's TeX parser (and `\\frac{1}{0}` would be
    drawn as maths or fail); it is drawn as the characters it is."""
    report = weekly_samples.province(hostile=True)
    assert report.top_rules[0].title == weekly_samples.HOSTILE_TITLE
    picture(charts.top_rules(report, Language("en")))


def test_s13r_2_threads_draw_without_sharing_state() -> None:
    """Four drawings at once, two reports in two languages, each equal to the same drawing made
    alone: no figure, axis or setting leaks from one thread into another."""
    jobs: list[tuple[WeeklyReport, Language]] = [
        (weekly_samples.province(), Language("vi")),
        (weekly_samples.agency(), Language("en")),
        (weekly_samples.province(hostile=True), Language("en")),
        (weekly_samples.empty(), Language("vi")),
    ]
    settings_before = dict(matplotlib.rcParams)
    alone = [charts.draw_all(report, language) for report, language in jobs]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        together = list(pool.map(lambda job: charts.draw_all(*job), jobs))
    for index, (drawn, expected) in enumerate(zip(together, alone, strict=True)):
        for name in charts.CHARTS:
            assert drawn[name] == expected[name], f"job {index}: chart {name} differs from the one drawn alone"
    assert dict(matplotlib.rcParams) == settings_before, "a chart changed matplotlib's global settings"


def test_s13r_2_charts_never_load_pyplot() -> None:
    """pyplot keeps a process-wide current figure and picks a GUI backend; the charts use
    neither (checked in a fresh interpreter: pytest's plugins may load pyplot themselves)."""
    probe = (
        "import sys\n"
        "from reports import charts\n"
        "from reports.i18n import Language\n"
        "from tests.reports import weekly_samples\n"
        "charts.draw_all(weekly_samples.province(), Language('vi'))\n"
        "print(sorted(m for m in sys.modules if m.startswith(('matplotlib.pyplot', 'matplotlib.backends.backend_'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "['matplotlib.backends.backend_agg']", result.stdout
