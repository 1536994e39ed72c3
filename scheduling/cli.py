"""``soc jobs``: the scheduled jobs, their runs, and running one now (recorded as ``manual``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from scheduling import runs
from scheduling.registry import JobRegistry
from scheduling.scheduler import overview, run_now
from soc_core.config import Settings
from soc_core.store import Store


def build_jobs_app(
    open_store: Callable[[], Store], load_settings: Callable[[], Settings], load_registry: Callable[[], JobRegistry]
) -> typer.Typer:
    """The ``jobs`` sub-app: ``load_registry`` gives the deployment's jobs (the same registry the
    scheduler runs)."""
    app = typer.Typer(help="Scheduled jobs: list them, see their runs, run one now.", no_args_is_help=True)
    out = Console()

    @app.command("list")
    def list_jobs(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
        """Every configured job with its schedule, next run and last run."""
        store = open_store()
        try:
            jobs = overview(store, load_registry())
        finally:
            store.close()
        if as_json:
            out.print_json(json.dumps(jobs, ensure_ascii=False))
            return
        table = Table("job", "schedule", "next run", "last run", "status")
        for job in jobs:
            last = job["last_run"] or {}
            table.add_row(
                job["id"],
                job["schedule"],
                job["next_run_time"] or "—",
                last.get("started_at") or "—",
                last.get("status") or "—",
            )
        out.print(table)

    @app.command("runs")
    def list_runs(
        job_id: str,
        size: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 20,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """The recorded runs of one job, newest first."""
        load_registry().get(job_id)  # an unknown job is an error naming the known ones
        store = open_store()
        try:
            page = runs.list_runs(store, job_id, size=size)
        finally:
            store.close()
        found = [dict(doc.body, id=doc.id) for doc in page.items]
        if as_json:
            out.print_json(json.dumps(found, ensure_ascii=False))
            return
        table = Table("scheduled for", "kind", "status", "duration (s)", "host/pid", "error")
        for run in found:
            table.add_row(
                run["scheduled_for"],
                run["kind"],
                run["status"],
                str(run.get("duration_seconds") or "—"),
                f"{run.get('host')}/{run.get('pid')}",
                run.get("error") or "",
            )
        out.print(table)

    @app.command("run")
    def run_job(job_id: str) -> None:
        """Run a job now, in this process; exit 1 if it failed."""
        registry = load_registry()
        registry.get(job_id)
        store = open_store()
        try:
            done = run_now(store, load_settings(), registry, job_id, actor="cli")
        finally:
            store.close()
        out.print_json(json.dumps(done, ensure_ascii=False))
        if done["status"] != "succeeded":
            raise typer.Exit(1)

    return app


__all__ = ["build_jobs_app"]
