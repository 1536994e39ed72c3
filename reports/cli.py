"""``soc report``: the managers' reports on demand.

``soc report weekly --week 2026-W48 --tenant police --format pdf --lang vi [--output FILE]``
counts the week in the configured store (:func:`reports.metrics.weekly`) and writes it as
:func:`reports.render.render` makes it — ``json`` (the model, numbers only), ``html`` or ``pdf``
in the reader's language — to the file or to standard output (a PDF never to a terminal).
With ``--store`` the report is also kept in the store (:mod:`reports.stored`, replacing that
week's earlier copy; audited), where the API and the e-mail read it; ``soc report list`` shows
the stored ones. Exit codes: 0 written, 2 the command could not run (a bad week, agency, format or language,
the store unreachable: the error says which).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from reports import stored
from reports.i18n import LANGUAGES
from reports.metrics import weekly
from reports.render import FORMATS, render
from soc_core.config import Settings
from soc_core.errors import InvalidInput
from soc_core.events import utcnow
from soc_core.store import Store
from soc_core.store.base import MAX_LIST_SIZE
from workflow import audit
from workflow.principals import cli_actor


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
        *,
        week: Annotated[
            str | None, typer.Option("--week", "-w", help="ISO week, e.g. 2026-W48 (default: last week).")
        ] = None,
        tenant: Annotated[
            str, typer.Option("--tenant", "-t", help="An agency's tenant id, or * for the province.")
        ] = "*",
        fmt: Annotated[str, typer.Option("--format", "-f", help=f"One of {', '.join(FORMATS)}.")] = "json",
        lang: Annotated[
            str, typer.Option("--lang", "-l", help="vi or en: the words, numbers and dates of html and pdf.")
        ] = "vi",
        output: Annotated[
            Path | None, typer.Option("--output", "-o", help="Write here (default: standard output).")
        ] = None,
        keep: Annotated[
            bool, typer.Option("--store", help="Also keep it in the store (replacing that week's copy), for the API.")
        ] = False,
    ) -> None:
        """The weekly security report of one agency or the province, counted by the store."""
        if fmt not in FORMATS:
            raise InvalidInput(f"--format {fmt!r} is not a report format", hint=f"use one of {', '.join(FORMATS)}")
        if lang not in LANGUAGES:
            raise InvalidInput(f"--lang {lang!r} is not a report language", hint=f"use one of {', '.join(LANGUAGES)}")
        if fmt == "pdf" and output is None and sys.stdout.isatty():
            raise InvalidInput("a PDF is not written to a terminal", hint="give --output FILE or redirect the output")
        settings = load_settings()
        chosen = week or last_week(ZoneInfo(settings.reports.timezone))
        store = open_store()
        if keep:
            doc = stored.generate(store, settings, week=chosen, tenant=tenant, generated_by=cli_actor())
            audit.record(
                store,
                actor=cli_actor(),
                action="report.generate",
                tenant=None if tenant == stored.PROVINCE else tenant,
                target=f"reports/{doc.id}",
                after={"week": chosen, "tenant": tenant, "generated_at": doc.body["generated_at"]},
            )
            report = stored.load(doc)
        else:
            report = weekly(store, settings, week=chosen, tenant=tenant)
        data = render(report, fmt=fmt, lang=lang)
        if output is None:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        try:
            output.write_bytes(data)
        except OSError as exc:
            raise InvalidInput(f"cannot write the report: {exc.strerror or exc}", where=str(output)) from exc
        typer.echo(
            f"weekly report {chosen} of {tenant} ({fmt}, {lang}, {len(data)} bytes) written to {output}", err=True
        )

    @app.command("list")
    def list_reports(
        week: Annotated[str | None, typer.Option("--week", "-w", help="Only this ISO week.")] = None,
        tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Only this agency (* the province).")] = None,
    ) -> None:
        """The stored reports, newest first: id, week, tenant, when and by whom."""
        store = open_store()
        cursor: str | None = None
        while True:
            page = stored.listing(store, None, week=week, tenant=tenant, size=MAX_LIST_SIZE, cursor=cursor)
            for doc in page.items:
                body = doc.body
                typer.echo(
                    f"{doc.id}\t{body['week']}\t{body['tenant']}\t{body['generated_at']}\t{body['generated_by']}"
                )
            cursor = page.next_cursor
            if cursor is None:
                return

    return app


__all__ = ["build_report_app", "last_week"]
