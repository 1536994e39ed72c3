"""``soc rules``: check, list, test, import and backtest Sigma rules.

Exit codes: 0 all good, 1 some rule is broken or failed its samples (each reported with its
file and line), 2 the command itself could not run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from detections import lifecycle
from detections.backtest import BacktestResult, backtest, backtest_correlation
from detections.coverage import coverage_markdown
from detections.evaluation import compile_ruleset
from detections.loader import load_paths_or_shipped, load_rules, shipped_rules_dir
from detections.samples import check_samples, samples_error
from soc_core.errors import NotFound
from soc_core.events import utcnow
from soc_core.store import Store

Paths = Annotated[
    list[Path] | None, typer.Argument(help="Rule files or folders (default: the rules shipped with Canh Gác).")
]


def build_rules_app(open_store: Callable[[], Store]) -> typer.Typer:
    """The ``rules`` sub-app; ``open_store`` opens the configured store for import/backtest."""
    app = typer.Typer(help="Sigma rules: check, list, test, import, backtest.", no_args_is_help=True)
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

    @app.command("import")
    def import_(
        folder: Annotated[Path, typer.Argument(help="A folder of Sigma rules, e.g. a SigmaHQ checkout's rules/.")],
        disabled: Annotated[bool, typer.Option(help="Import switched off; enable rules one by one.")] = False,
        reason: Annotated[str, typer.Option(help="Recorded in every rule's history.")] = "imported",
    ) -> None:
        """Store a folder of rules as province-wide custom rules; report what cannot compile and why."""
        with out.status(f"loading and compiling rules from {folder}…"):
            ruleset = load_rules([folder])
            compiled = compile_ruleset(ruleset, only_enabled=False)
        broken = {error.where.rsplit(":", 1)[0] if error.where else "?" for error in compiled.errors}
        good = type(ruleset)(rules={k: v for k, v in ruleset.rules.items() if v.where.rsplit(":", 1)[0] not in broken})
        store = open_store()
        with Progress(console=out, transient=True) as progress:
            progress.add_task("storing rules", total=None)
            new, unchanged = lifecycle.import_rules(
                store,
                good,
                author="cli",
                reason=f"{reason} from {folder}",
                enabled=not disabled,
                shipped=load_rules([shipped_rules_dir()]),
            )
        refused = [*ruleset.errors, *compiled.errors]
        for error in refused:
            out.print(f"[red]✗[/] {error.render()}", highlight=False)
        reasons = Counter(error.message.split(":")[0] for error in refused)
        for why, count in reasons.most_common():
            out.print(f"[yellow]{count:5d}[/] not imported: {why}", highlight=False)
        out.print(
            f"{new} rules imported, {unchanged} unchanged, "
            f"{len(ruleset.errors) + len(compiled.errors)} could not be compiled"
        )

    @app.command("backtest")
    def backtest_(
        rule_id: str,
        days: Annotated[int, typer.Option(min=1, max=365, help="How far back to look.")] = 7,
        tenant: Annotated[list[str] | None, typer.Option(help="Only these agencies (default: all).")] = None,
    ) -> None:
        """Hits per day of one rule over stored events (a correlation rule: the alerts it would raise)."""
        store = open_store()
        ruleset, policy = lifecycle.effective_rules(store, [shipped_rules_dir()])
        loaded = ruleset.rules.get(rule_id)
        if loaded is None:
            raise NotFound(f"no rule {rule_id!r}", hint="see `soc rules list`")
        end = utcnow()
        tenants = tuple(tenant) if tenant else None
        scope, start = policy.scopes.get(rule_id), end - timedelta(days=days)
        if loaded.is_correlation:  # the alerts it would have raised, with the engine's windows
            result: BacktestResult = backtest_correlation(
                store, ruleset, loaded, tenants=tenants, scope=scope, start=start, end=end
            )
        else:
            result = backtest(store, loaded, tenants=tenants, scope=scope, start=start, end=end)
        table = Table("day", "alerts" if loaded.is_correlation else "hits")
        for day, hits in result.per_day.items():
            table.add_row(day, str(hits))
        out.print(f"{loaded.title} (version {result.version}), last {days} days")
        out.print(table)
        noun = "alerts" if loaded.is_correlation else "hits"
        out.print(f"{result.total} {noun}{' (truncated)' if result.truncated else ''}")

    @app.command("coverage")
    def coverage_(
        output: Annotated[Path | None, typer.Option(help="Write the table to this file instead.")] = None,
    ) -> None:
        """The detection-coverage table (Markdown): ATT&CK technique, detected from log, wire or both."""
        text = coverage_markdown(load_rules([shipped_rules_dir()]))
        if output is None:
            typer.echo(text, nl=False)
        else:
            output.write_text(text, encoding="utf-8")
            out.print(f"written: {output}")

    return app


__all__ = ["build_rules_app"]
