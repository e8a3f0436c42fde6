"""Glue for one run: pre-flight, port budget, run folder, supervisor with live progress, summary."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from twload import preflight as pf
from twload import thresholds as gates
from twload.engine.supervisor import RunError, exit_code_for, preflight, run_to_folder
from twload.kernel.sysctl import gather
from twload.plan import Plan
from twload.progress import live_progress
from twload.results import default_run_dir

EXIT_STRICT = 2
EXIT_THRESHOLD = 1  # a failed --threshold: the run itself went fine, the target did not


def execute(plan: Plan, out: Path | None, show_progress: bool, console: Console,
            strict: bool = False, thresholds: list | None = None) -> tuple[dict, Path, int]:
    try:
        info = preflight(plan)
    except RunError as exc:
        console.print(f"[bold red]twload:[/] {exc}", soft_wrap=True)
        raise typer.Exit(1) from None
    kernel = gather()
    budget = pf.plan_budget(plan, kernel, info.timestamps, pf.sockets_to_target(plan))
    if pf.will_run_out(plan, budget):
        console.print(f"[yellow]{pf.warning(plan, budget, kernel, info.timestamps)}[/]", soft_wrap=True)
        if strict:
            console.print("[bold red]twload:[/] refusing to start (--strict)")
            raise typer.Exit(EXIT_STRICT)
    path = out or default_run_dir()

    def finish(summary: dict) -> None:
        summary["target_timestamps"] = info.timestamps
        summary["budget"] = pf.budget_block(budget)
        if "EADDRNOTAVAIL" in summary["errors"]:
            summary["advice"] = pf.advice(plan, kernel, info.timestamps)
        if thresholds:
            summary["thresholds"] = gates.evaluate(thresholds, summary)

    try:
        with live_progress(console, show_progress) as on_progress:
            summary = run_to_folder(plan, path, on_progress, pf.time_wait_probe(plan), finish)
    except RunError as exc:
        console.print(f"[bold red]twload:[/] {exc}", soft_wrap=True)
        raise typer.Exit(1) from None
    code = exit_code_for(summary)
    if code == 0 and any(not t["passed"] for t in summary.get("thresholds", [])):
        code = EXIT_THRESHOLD
    return summary, Path(path), code
