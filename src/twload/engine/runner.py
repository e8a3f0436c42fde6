"""Glue for one run: pre-flight, run folder, supervisor with live progress, summary."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from twload.engine.supervisor import RunError, Supervisor, exit_code_for, preflight
from twload.plan import Plan
from twload.progress import live_progress
from twload.results import RunFolder, default_run_dir


def execute(plan: Plan, out: Path | None, show_progress: bool, console: Console) -> tuple[dict, Path, int]:
    try:
        preflight(plan)
    except RunError as exc:
        console.print(f"[bold red]twload:[/] {exc}", soft_wrap=True)
        raise typer.Exit(1) from None
    folder = RunFolder(out or default_run_dir())
    try:
        with live_progress(console, show_progress) as on_progress:
            summary = Supervisor(plan, folder, on_progress).run()
        folder.write_summary(summary)
    except RunError as exc:
        console.print(f"[bold red]twload:[/] {exc}", soft_wrap=True)
        raise typer.Exit(1) from None
    finally:
        folder.close()
    return summary, folder.path, exit_code_for(summary)
