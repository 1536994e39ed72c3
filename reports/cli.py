"""``soc report``: the managers' reports on demand.

``soc report weekly --week 2026-W48 --tenant police --format json [--output FILE]`` counts the
week in the configured store (:func:`reports.metrics.weekly`) and writes it in the chosen
format, to the file or to standard output. Exit codes: 0 written, 2 the command could not run
(a bad week or agency, the store unreachable: the error says which).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from reports.metrics import weekly
from reports.model import WeeklyReport
from soc_core.config import Settings
from soc_core.errors import InvalidInput
from soc_core.events import utcnow
from soc_core.store import Store


def _json(report: WeeklyReport) -> bytes:
    return report.model_dump_json(indent=2).encode() + b"\n"


# format name → the report as bytes; other formats join this table
FORMATS: dict[str, Callable[[WeeklyReport], bytes]] = {"json": _json}


def last_week(zone: ZoneInfo) -> str:
    """The ISO week before the current one, in ``zone``: the one a Monday report is about."""
    year, number, _ = (utcnow().astimezone(zone).date() - timedelta(days=7)).isocalendar()
    return f"{year}-W{number:02d}"


def build_report_app(open_store: Callable[[], Store], load_settings: Callable[[], Settings]) -> typer.Typer:
    """The ``report`` sub-app: ``open_store`` opens the configured store; ``load_settings``
    gives the configuration (``reports.*``: time zone, SLAs)."""
    app = typer.Typer(help="Managers' reports: the weekly security report.", no_args_is_help=True)

    @app.command("weekly")
    def weekly_report(
        week: Annotated[
            str | None, typer.Option("--week", "-w", help="ISO week, e.g. 2026-W48 (default: last week).")
        ] = None,
        tenant: Annotated[
            str, typer.Option("--tenant", "-t", help="An agency's tenant id, or * for the province.")
        ] = "*",
        fmt: Annotated[str, typer.Option("--format", "-f", help=f"One of {', '.join(FORMATS)}.")] = "json",
        output: Annotated[
            Path | None, typer.Option("--output", "-o", help="Write here (default: standard output).")
        ] = None,
    ) -> None:
        """The weekly security report of one agency or the province, counted by the store."""
        if fmt not in FORMATS:
            raise InvalidInput(f"--format {fmt!r} is not a report format", hint=f"use one of {', '.join(FORMATS)}")
        settings = load_settings()
        chosen = week or last_week(ZoneInfo(settings.reports.timezone))
        report = weekly(open_store(), settings, week=chosen, tenant=tenant)
        data = FORMATS[fmt](report)
        if output is None:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        try:
            output.write_bytes(data)
        except OSError as exc:
            raise InvalidInput(f"cannot write the report: {exc.strerror or exc}", where=str(output)) from exc
        typer.echo(f"weekly report {chosen} of {tenant} ({fmt}, {len(data)} bytes) written to {output}", err=True)

    return app


__all__ = ["FORMATS", "build_report_app", "last_week"]
