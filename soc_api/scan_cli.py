"""The ``soc scan`` command (the work is in :mod:`soc_api.scan`).

Exit status: 0 nothing matched, 1 something matched, 2 the scan could not run (no input,
bad option, no rule compiled). Files that cannot be read and rules that do not compile are
listed (stderr, and in the JSON outputs) and do not change the status.

Standard output carries only results; progress goes to standard error, and only when that is
a terminal.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from detections.evaluation import Evaluator, compile_ruleset
from detections.loader import shipped_rules_dir
from detections.rulecache import RuleCache
from soc_core.config import Settings
from soc_core.errors import RuleError

from .scan import FileResult, ScanResult, discover, match_record, run_scan, summary_rows

EXIT_CLEAN = 0
EXIT_MATCHED = 1
EXIT_ERROR = 2


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


def build_scan_command(settings: Callable[[], Settings]) -> Callable[..., None]:
    def scan(
        paths: Annotated[
            list[Path], typer.Argument(help="EVTX, pcap, JSON lines, Winlogbeat JSON or log files, or folders of them.")
        ],
        rules: Annotated[
            list[Path] | None,
            typer.Option("--rules", help="Sigma rule file or folder (repeat it); default: the shipped rules."),
        ] = None,
        output: Annotated[
            OutputFormat, typer.Option("--format", help="table, json, jsonl or csv.")
        ] = OutputFormat.table,
        parser: Annotated[
            str | None, typer.Option(help="Parser for every non-EVTX, non-pcap file (default: picked per file).")
        ] = None,
        workers: Annotated[
            int | None, typer.Option(min=1, help="Processes matching files (default: one per core).")
        ] = None,
    ) -> None:
        """Run Sigma rules over files, once, with no server, store or tenant.

        Exit status: 0 nothing matched, 1 matches found, 2 the scan could not run.
        """
        err = Console(stderr=True)
        started = time.perf_counter()
        inputs, missing = discover(paths, parser=parser)
        if not inputs:
            for absent in missing:
                err.print(f"[red]error:[/red] {escape(absent.path)}: {escape(absent.error or '')}")
            err.print("[red]error:[/red] nothing to scan: no file found under the paths given")
            raise typer.Exit(EXIT_ERROR)
        cache = RuleCache.in_data_dir(settings().data_dir, workers=workers)
        with err.status("compiling rules…") if err.is_terminal else _quiet():
            ruleset = cache.load(rules or [shipped_rules_dir()])
            compiled = compile_ruleset(ruleset, only_enabled=False)
        rule_errors = [*ruleset.errors, *compiled.errors]
        for error in rule_errors:
            err.print(f"[yellow]rule not used:[/yellow] {escape(error.render())}", highlight=False, soft_wrap=True)
        if not compiled.rules:
            err.print("[red]error:[/red] no rule compiled; nothing to scan with")
            raise typer.Exit(EXIT_ERROR)
        evaluator = Evaluator(compiled)
        if err.is_terminal:
            columns = (TextColumn("scanning"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, console=err, transient=True) as progress:
                task = progress.add_task("scan", total=len(inputs))
                result = run_scan(evaluator, inputs, workers=workers, progress=lambda _done: progress.advance(task))
        else:
            result = run_scan(evaluator, inputs, workers=workers)
        result.files[:0] = missing
        for broken in result.files:
            if broken.error is not None:
                err.print(
                    f"[yellow]file skipped:[/yellow] {escape(broken.path)}: {escape(broken.error)}", highlight=False
                )
        _write(output, result, rule_errors, sys.stdout)
        if output is not OutputFormat.table or err.is_terminal:
            events = sum(f.events for f in result.files)
            err.print(
                f"{len(result.files)} files, {events:,} events, {len(compiled.rules):,} rules, "
                f"{len(result.detections):,} matches in {time.perf_counter() - started:.1f}s",
                highlight=False,
            )
        raise typer.Exit(EXIT_MATCHED if result.detections else EXIT_CLEAN)

    return scan


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


def _write(output: OutputFormat, result: ScanResult, rule_errors: list[RuleError], stream: TextIO) -> None:
    matches = [match_record(d, result.events_by_id) for d in result.detections]
    summary = summary_rows(result.detections)
    if output is OutputFormat.json:
        document = {
            "matches": matches,
            "summary": summary,
            "files": [_file_record(f) for f in result.files],
            "rule_errors": [_error_record(e) for e in rule_errors],
        }
        stream.write(json.dumps(document, ensure_ascii=False, default=str) + "\n")
    elif output is OutputFormat.jsonl:
        for match in matches:
            stream.write(json.dumps({"type": "match", **match}, ensure_ascii=False, default=str) + "\n")
        for row in summary:
            stream.write(json.dumps({"type": "summary", **row}, ensure_ascii=False) + "\n")
        for file in result.files:
            if file.error is not None:
                stream.write(json.dumps({"type": "file_error", **_file_record(file)}, ensure_ascii=False) + "\n")
        for error in rule_errors:
            stream.write(json.dumps({"type": "rule_error", **_error_record(error)}, ensure_ascii=False) + "\n")
    elif output is OutputFormat.csv:
        writer = csv.writer(stream)
        writer.writerow(
            ["rule_id", "title", "level", "attack", "count", "first_seen", "last_seen", "files", "event_ids", "events"]
        )
        for match, detection in zip(matches, result.detections, strict=True):
            rule = match["rule"]
            writer.writerow(
                [
                    rule["id"],
                    rule["title"],
                    rule["level"] or "",
                    " ".join(match["attack"]),
                    match["count"],
                    match["first_seen"],
                    match["last_seen"],
                    " ".join(match["files"]),
                    " ".join(detection.event_ids),
                    json.dumps(match["events"], ensure_ascii=False, default=str),
                ]
            )
    else:
        _tables(matches, summary, stream)


def _tables(matches: list[dict[str, Any]], summary: list[dict[str, Any]], stream: TextIO) -> None:
    console = Console(file=stream, width=200 if not stream.isatty() else None)
    detail = Table(title="matches")
    for column in ("time", "level", "rule", "ATT&CK", "file", "event"):
        detail.add_column(column)
    for match in matches:
        first = match["events"][0] if match["events"] else {}
        detail.add_row(
            str(match["first_seen"]),
            str(match["rule"]["level"] or ""),
            escape(match["rule"]["title"]),
            " ".join(match["attack"]),
            escape(", ".join(match["files"])),
            escape(str(first.get("event.code") or first.get("event.dataset") or "")),
        )
    console.print(detail)
    table = Table(title="summary")
    for column in ("rule", "level", "ATT&CK", "matches", "events"):
        table.add_column(column)
    for row in summary:
        table.add_row(
            escape(row["title"]),
            str(row["level"] or ""),
            " ".join(row["attack"]),
            str(row["matches"]),
            str(row["events"]),
        )
    console.print(table)


def _file_record(result: FileResult) -> dict[str, Any]:
    return {"path": result.path, "events": result.events, "read_failures": result.read_failures, "error": result.error}


def _error_record(error: RuleError) -> dict[str, Any]:
    return {"message": error.message, "where": error.where, "hint": error.hint}


__all__ = ["EXIT_CLEAN", "EXIT_ERROR", "EXIT_MATCHED", "OutputFormat", "build_scan_command"]
