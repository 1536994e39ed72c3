"""``soc rules``: check, list and test Sigma rules.

Exit codes: 0 all good, 1 some rule is broken or failed its samples (each reported with its
file and line), 2 the command itself could not run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from detections.engine import compile_ruleset
from detections.loader import load_paths_or_shipped
from detections.samples import check_samples, samples_error
from soc_core.store import Store

Paths = Annotated[
    list[Path] | None, typer.Argument(help="Rule files or folders (default: the rules shipped with Canh Gác).")
]


def build_rules_app(open_store: Callable[[], Store]) -> typer.Typer:
    """The ``rules`` sub-app. ``open_store`` is unused today but keeps the CLI wiring uniform."""
    del open_store
    app = typer.Typer(help="Sigma rules: check, list, test.", no_args_is_help=True)
    out = Console()

    @app.command("check")
    def check(paths: Paths = None) -> None:
        """Load and compile every rule; report every broken one with file:line."""
        ruleset = load_paths_or_shipped(paths)
        compiled = compile_ruleset(ruleset)
        errors = [*ruleset.errors, *compiled.errors]
        for error in errors:
            out.print(f"[red]✗[/] {error.render()}", highlight=False)
        ok = len(ruleset) - len(compiled.errors)
        out.print(f"{ok} rules ok, {len(errors)} problems")
        if errors:
            raise typer.Exit(1)

    @app.command("list")
    def list_rules(paths: Paths = None) -> None:
        """One line per rule: id, level, title, ATT&CK tags, kind and where it lives."""
        ruleset = load_paths_or_shipped(paths)
        table = Table("id", "level", "title", "ATT&CK", "kind", "file")
        for rule in sorted(ruleset, key=lambda r: r.title):
            table.add_row(
                rule.id,
                rule.level or "",
                rule.title,
                " ".join(rule.attack_tags),
                "correlation" if rule.is_correlation else "detection",
                rule.where,
            )
        out.print(table)
        for error in ruleset.errors:
            out.print(f"[red]✗[/] {error.render()}", highlight=False)

    @app.command("test")
    def test(paths: Paths = None) -> None:
        """Run each rule's samples: match.jsonl must all match, nomatch.jsonl none."""
        ruleset = load_paths_or_shipped(paths)
        results = check_samples(ruleset)
        failed = [r for r in results if not r.passed]
        for result in results:
            mark = "[green]✓[/]" if result.passed else "[red]✗[/]"
            out.print(f"{mark} {result.title} ({result.checked} samples)", highlight=False)
        for result in failed:
            out.print(f"  {samples_error(result).render()}", highlight=False)
        out.print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
        if failed or ruleset.errors:
            raise typer.Exit(1)

    return app


__all__ = ["build_rules_app"]
