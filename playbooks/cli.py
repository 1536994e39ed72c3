"""``soc playbook``: validate, list, run and look at playbook runs.

Exit codes: 0 all good (a run that ended well, or waits for an approval), 1 a playbook is
broken (each problem printed with file:line) or a run failed, was cancelled or interrupted,
2 the command itself could not run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from playbooks.format import check_file, configured_library
from playbooks.runner import Runner
from playbooks.service import list_runs, start_run
from soc_core.config import Settings
from soc_core.errors import InvalidInput
from soc_core.store import Store
from workflow.principals import cli_actor

STATUS_STYLE = {
    "succeeded": "green",
    "skipped": "dim",
    "waiting_approval": "yellow",
    "pending": "dim",
    "running": "cyan",
    "failed": "red",
    "cancelled": "red",
    "interrupted": "red",
}


def _styled(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def _parse_inputs(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; the value is read as JSON when it is JSON (numbers, lists, true)."""
    inputs: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--input {item!r} is not key=value")
        try:
            inputs[key] = json.loads(raw)
        except ValueError:
            inputs[key] = raw
    return inputs


def _short(value: Any, width: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 1] + "…"


def _output_text(output: Mapping[str, Any]) -> str:
    """A step's output in a line: a change as ``field: old → new``, anything else as JSON."""
    before, after = output.get("before"), output.get("after")
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        moves = [f"{k}: {before.get(k)} → {v}" for k, v in after.items() if before.get(k) != v]
        return f"{output.get('result')}: {'; '.join(moves) or 'nothing to change'}"
    return _short(dict(output))


def print_run(out: Console, run_id: str, body: Mapping[str, Any]) -> None:
    """A run as a person reads it: what, on what, how it ended, and each step."""
    mode = " (dry run)" if body.get("dry_run") else ""
    out.print(
        f"run [bold]{run_id}[/] of [bold]{body.get('playbook')}[/] v{body.get('playbook_version')}{mode} "
        f"on alert {body.get('alert_id')} ({body.get('tenant')}): {_styled(str(body.get('status')))}",
        highlight=False,
    )
    if body.get("case_id"):
        out.print(f"  case {body['case_id']}", highlight=False)
    if body.get("error"):
        out.print(f"  {body['error']}", highlight=False, markup=False)
    table = Table("step", "action", "status", "tries", "ms", "output / error")
    for step in body.get("steps") or []:
        detail = step.get("error") or (_output_text(step["output"]) if step.get("output") else "")
        approval = step.get("approval") or {}
        if step.get("status") == "waiting_approval":
            roles = ", ".join(approval.get("roles") or [])
            detail = f"needs {roles} ({approval.get('agency')}) by {approval.get('expires_at')}"
        elif approval.get("decision"):
            detail = f"{approval['decision']} by {approval.get('decided_by')}; {detail}"
        table.add_row(
            str(step.get("id")),
            str(step.get("action")),
            _styled(str(step.get("status"))),
            str(step.get("attempts") or 0),
            "" if step.get("duration_ms") is None else str(step["duration_ms"]),
            detail,
        )
    out.print(table)


def build_playbook_app(open_store: Callable[[], Store], load_settings: Callable[[], Settings]) -> typer.Typer:
    """The ``playbook`` sub-app: ``open_store`` opens the configured store; ``load_settings``
    gives the configuration (the playbook folders, the runner's limits)."""
    app = typer.Typer(help="Playbooks: validate, list, run, and see runs.", no_args_is_help=True)
    out = Console()

    @app.command("validate")
    def validate(files: Annotated[list[Path], typer.Argument(help="Playbook YAML files.")]) -> None:
        """Check playbook files; every problem is printed with file:line."""
        problems = 0
        for path in files:
            checked = check_file(path)
            for error in checked.errors:
                out.print(f"[red]✗[/] {error.render()}", highlight=False)
            if checked.playbook is not None:
                playbook = checked.playbook
                out.print(
                    f"[green]✓[/] {path}: {playbook.name} v{playbook.version}, {len(playbook.steps)} step(s), "
                    f"trigger {playbook.trigger.type}",
                    highlight=False,
                )
            problems += len(checked.errors)
        out.print(f"{len(files)} file(s), {problems} problem(s)")
        if problems:
            raise typer.Exit(1)

    @app.command("list")
    def list_playbooks() -> None:
        """The playbooks in the configured folders (playbooks.dirs) and the shipped library."""
        settings = load_settings()
        library = configured_library(settings.playbooks.dirs, shipped=settings.playbooks.library)
        table = Table("name", "version", "trigger", "steps", "file")
        for name, playbook in sorted(library.playbooks.items()):
            trigger = playbook.trigger
            when = "manual"
            if trigger.type == "alert":
                parts = [
                    f"{label}={','.join(values)}"
                    for label, values in (
                        ("rule", trigger.rule_ids),
                        ("level", trigger.levels),
                        ("tag", trigger.tags),
                        ("technique", trigger.techniques),
                        ("agency", trigger.agencies),
                    )
                    if values
                ]
                when = "alert: " + " ".join(parts)
            table.add_row(
                name, str(playbook.version), when, " → ".join(s.id for s in playbook.steps), library.sources[name]
            )
        out.print(table)
        for error in library.errors:
            out.print(f"[red]✗[/] {error.render()}", highlight=False)
        if library.errors:
            raise typer.Exit(1)

    @app.command("run")
    def run(
        name: Annotated[str, typer.Argument(help="Playbook name.")],
        alert: Annotated[str, typer.Option("--alert", help="The alert to run it on.")],
        dry_run: Annotated[
            bool | None,
            typer.Option(
                "--dry-run/--no-dry-run",
                help="Change nothing (default: the playbook's dry_run). Only --no-dry-run lets containment act.",
            ),
        ] = None,
        inputs: Annotated[
            list[str] | None, typer.Option("--input", help="key=value (JSON values read as JSON).")
        ] = None,
    ) -> None:
        """Run a playbook on an alert now, in this process, up to its end or a gate."""
        settings = load_settings()
        library = configured_library(settings.playbooks.dirs, shipped=settings.playbooks.library)
        playbook = library.get(name)
        store = open_store()
        doc = start_run(
            store,
            playbook=playbook,
            alert_id=alert,
            scope=None,
            actor=cli_actor(),
            inputs=_parse_inputs(inputs or []),
            dry_run=dry_run,
        )
        runner = Runner(store, settings, library)
        try:
            status = runner.execute(doc.id)
        finally:
            runner.close()
        print_run(out, doc.id, store.get_doc("playbook_runs", doc.id).body)
        if status not in ("succeeded", "waiting_approval"):
            raise typer.Exit(1)

    @app.command("runs")
    def runs(
        alert: Annotated[str | None, typer.Option("--alert", help="Only runs on this alert.")] = None,
        limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 20,
        steps: Annotated[bool, typer.Option("--steps", help="Show every run's steps.")] = False,
    ) -> None:
        """Recent runs, newest first."""
        page = list_runs(open_store(), scope=None, alert_id=alert, size=limit)
        if steps:
            for doc in page.items:
                print_run(out, doc.id, doc.body)
            return
        table = Table("playbook", "agency", "status", "started", "steps")
        table.add_column("run", no_wrap=True, min_width=32)
        table.add_column("alert", no_wrap=True, min_width=32)
        for doc in page.items:
            body = doc.body
            done = sum(1 for s in body.get("steps") or [] if s.get("status") == "succeeded")
            table.add_row(
                str(body.get("playbook")),
                str(body.get("tenant")),
                _styled(str(body.get("status"))) + (" (dry run)" if body.get("dry_run") else ""),
                str(body.get("created_at")),
                f"{done}/{len(body.get('steps') or [])} succeeded",
                doc.id,
                str(body.get("alert_id") or ""),
            )
        out.print(table)
        if not page.items:
            out.print("no runs")

    return app


__all__ = ["build_playbook_app", "print_run"]
