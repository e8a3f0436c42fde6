"""`twload lab`: list, run (print their checks, clean up on every exit path) and clean scenarios."""

from __future__ import annotations

import json
import os
import signal
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from twload.cli import app, err, fail, terminal_width
from twload.lab import topology
from twload.report.wrap import wrap_line


def stop_on_sigterm(owner: int):
    """A SIGTERM handler for the lab's process. pyroute2 forks helpers that inherit it and
    stops them with SIGTERM: in a helper it must end that helper, not unwind a copy of the
    lab's stack there (whose cleanup would remove the namespaces the real lab still uses)."""

    def handler(signum, frame) -> None:
        if os.getpid() != owner:
            os._exit(128 + signum)
        signal.default_int_handler(signum, frame)  # raises KeyboardInterrupt

    return handler


def run_lab(names: list[str], run_all: bool, compare_sim: bool, as_json: bool, err: Console) -> int:
    from twload.lab.scenarios import SCENARIOS

    if not run_all and not names:
        err.print("[red]twload:[/] give a scenario name or --all (see `twload lab list`)")
        return 2
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        err.print(f"[red]twload:[/] unknown lab scenario {unknown[0]!r}: see `twload lab list`")
        return 2
    try:
        topology.require_root()
    except topology.LabError as exc:
        err.print(f"[red]twload:[/] {exc}")
        return 1
    # SIGTERM ends the run like Ctrl-C, so the namespaces are removed by the same path
    signal.signal(signal.SIGTERM, stop_on_sigterm(os.getpid()))
    names = list(SCENARIOS) if run_all else list(dict.fromkeys(names))  # in the order given, each once
    results, failed = {}, False
    try:
        for scenario in names:
            if not as_json:
                err.print(f"lab: {scenario} (~{SCENARIOS[scenario].seconds}s) ...")
            try:
                checks = SCENARIOS[scenario].run()
            except topology.LabError as exc:
                err.print(f"[red]twload:[/] {scenario}: {exc}")
                failed = True
                continue
            results[scenario] = checks
            failed = failed or not all(c.passed for c in checks)
            if compare_sim:
                failed = failed or any(c.sim_agrees is False for c in checks)
    except KeyboardInterrupt:  # each topology's context manager has removed its namespaces
        err.print("interrupted; namespaces removed")
        return 130
    if as_json:
        print(json.dumps({n: [c.as_dict() for c in checks] for n, checks in results.items()}, indent=2))
    else:
        table = Table(show_lines=True)
        for column in ("scenario", "claim", "expected", "measured", "verdict"):
            table.add_column(column)
        if compare_sim:
            table.add_column("simulator (6.x)")
            table.add_column("agree")
        for scenario, checks in results.items():
            for c in checks:
                row = [scenario, c.claim, c.expected, c.measured,
                       f"[green]{c.verdict}[/]" if c.passed else f"[red]{c.verdict}[/]"]
                if compare_sim:
                    row += [c.sim or "(not modelled)",
                            "" if c.sim_agrees is None else ("yes" if c.sim_agrees else "[red]NO[/]")]
                table.add_row(*row)
        Console().print(table)  # the terminal's width: the columns wrap
    return 1 if failed else 0


lab_app = typer.Typer(help="Prove each TIME_WAIT claim on the real kernel, in network namespaces (root).",
                      no_args_is_help=True)
app.add_typer(lab_app, name="lab")


@lab_app.command("list")
def lab_list() -> None:
    """The lab scenarios, one line each."""
    from twload.lab.scenarios import SCENARIOS

    width = max(len(name) for name in SCENARIOS)
    for s in SCENARIOS.values():
        print("\n".join(wrap_line(f"{s.name:<{width}}  ~{s.seconds:>2}s  {s.summary}", terminal_width(), width + 7)))


@lab_app.command("run")
def lab_run(
    names: Annotated[list[str] | None, typer.Argument(help="Scenario names (twload lab list), run in turn.",
                                                      show_default=False)] = None,
    run_all: Annotated[bool, typer.Option("--all", help="Run every scenario.")] = False,
    compare_sim: Annotated[bool, typer.Option("--compare-sim", help="Show the simulator's prediction beside each measurement.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
) -> None:
    """Build the scenario's namespaces, measure, print claim / expected / measured / verdict."""
    code = run_lab(names or [], run_all, compare_sim, as_json, err)
    raise typer.Exit(code)


@lab_app.command("clean")
def lab_clean() -> None:
    """Remove what a lab that crashed left: its processes, namespaces and temp folders (never a running lab's)."""
    try:
        topology.require_root()
        cleaned = topology.clean()
    except topology.LabError as exc:
        fail(str(exc))
    if cleaned.processes:
        print("ended: " + ", ".join(f"{name} (PID {pid})" for pid, name in cleaned.processes))
    print("removed: " + (", ".join(cleaned.namespaces) if cleaned.namespaces else "nothing"))
    if cleaned.folders:
        print("removed folders: " + ", ".join(cleaned.folders))
