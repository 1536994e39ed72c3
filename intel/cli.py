"""``soc intel``: import, list and delete threat-intel lists.

Every import and deletion is in the audit trail (:func:`intel.lists.record_change`), as one made
through the API is, with the local operator as the actor (``cli:<os user>``).

Exit codes: 0 done (an import may still have skipped lines: each is printed with file:line or
object id and why), 2 the command could not run (unreadable file, bad agency or list name,
no such list).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from intel import lists
from intel.parsers import FORMATS, Format, detect_format, format_named, parse_file
from soc_core.errors import ParseError
from soc_core.store import Store
from workflow.principals import cli_actor

Tenant = Annotated[str, typer.Option("--tenant", "-t", help="The agency the list belongs to, or * for province-wide.")]


def _progress_total(path: Path, fmt: Format) -> tuple[int | None, bool]:
    """How much work a file is (and whether it is counted in bytes) for the progress bar."""
    if fmt == "csv":
        return path.stat().st_size, True
    if fmt == "misp" and (path.is_dir() or path.name == "manifest.json"):
        manifest = (path if path.is_dir() else path.parent) / "manifest.json"
        try:
            return len(json.loads(manifest.read_bytes())), False
        except (OSError, ValueError):
            return None, False  # the parser reports the broken manifest with its name
    return None, False


def build_intel_app(open_store: Callable[[], Store]) -> typer.Typer:
    """The ``intel`` sub-app; ``open_store`` opens the configured store."""
    app = typer.Typer(help="Threat-intel lists (MISP, STIX 2.1, CSV): import, list, delete.", no_args_is_help=True)
    out = Console()

    @app.command("import")
    def import_(
        file: Annotated[Path, typer.Argument(help="A MISP feed directory or event file, a STIX bundle, a CSV list.")],
        *,
        tenant: Tenant,
        fmt: Annotated[
            str | None, typer.Option("--format", "-f", help=f"One of {', '.join(FORMATS)} (default: from the file).")
        ] = None,
        name: Annotated[str | None, typer.Option("--list", "-l", help="The list's name (default: the file's).")] = None,
        value_type: Annotated[
            str | None,
            typer.Option("--type", help="For a CSV of values only: ip, domain, url, md5, sha1, sha256, hash."),
        ] = None,
        show: Annotated[int, typer.Option(help="Print at most this many skipped lines (all are counted).")] = 100,
    ) -> None:
        """Create a list from FILE, or update the list of that name (new, updated, removed counted)."""
        if not file.exists():
            raise ParseError("no such file or directory", where=str(file))
        chosen = detect_format(file) if fmt is None else format_named(fmt)
        list_name = name or (file.name if file.is_dir() else file.stem)
        total, in_bytes = _progress_total(file, chosen)
        columns = [TextColumn("{task.description}"), BarColumn()]
        columns.append(DownloadColumn() if in_bytes else MofNCompleteColumn())
        with Progress(*columns, console=out, transient=True) as progress:
            task = progress.add_task(f"reading {file.name}", total=total)
            parsed = parse_file(file, chosen, value_type=value_type, progress=lambda done: progress.advance(task, done))
            progress.update(task, description="storing")
            store = open_store()
            try:
                actor = cli_actor()
                report = lists.import_list(
                    store, parsed, tenant=tenant, name=list_name, fmt=chosen, source=file.name, actor=actor
                )
                lists.record_change(
                    store, action="intel.import", tenant=tenant, name=list_name, actor=actor, after=report.to_dict()
                )
            finally:
                store.close()
        for problem in report.skipped[:show]:
            out.print(f"[yellow]skipped[/] {problem.render()}", highlight=False)
        if len(report.skipped) > show:
            reasons = Counter(problem.reason.split(":")[0] for problem in report.skipped)
            out.print(f"… {len(report.skipped) - show} more skipped; by reason: {dict(reasons.most_common(10))}")
        scope = "province-wide" if report.tenant == "*" else f"agency {report.tenant}"
        out.print(
            f"list {report.name!r} ({scope}, {chosen}): {report.loaded} loaded, {report.updated} updated, "
            f"{report.removed} removed, {report.duplicates} duplicates, {len(report.skipped)} skipped; "
            f"{report.total} indicators now",
            highlight=False,
        )

    @app.command("lists")
    def list_lists(
        tenant: Annotated[
            str | None, typer.Option("--tenant", "-t", help="Only this agency's and the province-wide lists.")
        ] = None,
    ) -> None:
        """One line per list: scope, name, indicators by type, format, source, last import."""
        store = open_store()
        try:
            found = lists.lists(store, (tenant,) if tenant else None)
        finally:
            store.close()
        table = Table("scope", "list", "indicators", "by type", "format", "source", "updated")
        for item in found:
            counts = ", ".join(f"{kind} {count}" for kind, count in sorted(item.get("counts", {}).items()))
            table.add_row(
                item["tenant"],
                item["name"],
                str(item.get("count", 0)),
                counts,
                str(item.get("format", "")),
                str(item.get("source", "")),
                str(item.get("updated_at", "")),
            )
        out.print(table)
        out.print(f"{len(found)} lists")

    @app.command("delete")
    def delete(list_name: Annotated[str, typer.Argument(help="The list's name.")], tenant: Tenant) -> None:
        """Delete a list and its indicators (it stops matching at the engine's next reload)."""
        store = open_store()
        try:
            lists.delete_list(store, tenant=tenant, name=list_name)
            lists.record_change(store, action="intel.delete", tenant=tenant, name=list_name, actor=cli_actor())
        finally:
            store.close()
        out.print(f"deleted list {list_name!r} ({'province-wide' if tenant == '*' else f'agency {tenant}'})")

    return app


__all__ = ["build_intel_app"]
