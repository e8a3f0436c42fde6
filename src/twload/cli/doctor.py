"""`twload doctor`: gather facts, print findings, apply and restore sysctl fixes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from twload.api.diagnosis import diagnose, doctor_plan
from twload.cli import EXIT_USAGE, app, err, fail
from twload.doctor import rules
from twload.kernel import sysctl
from twload.kernel.resolve import parse_target
from twload.plan import PlanError, Target

MARK = {rules.OK: "[green]ok     [/]", rules.WARNING: "[yellow]warning[/]", rules.PROBLEM: "[red]problem[/]"}


def state_file() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    netns = os.readlink("/proc/self/ns/net").strip("net:[]")  # sysctls are per network namespace
    return Path(base) / "twload" / f"saved-sysctls-netns-{netns}.json"


def findings_table(findings: list[rules.Finding]) -> Padding:
    """One row per finding; a long message wraps under itself, beside its mark."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for f in findings:
        grid.add_row(MARK[f.level], Text(f.message))
    return Padding(grid, (0, 0, 0, 2))


def run_doctor(url: str | None, target: Target | None, plan: rules.DoctorPlan, as_json: bool, fix: bool, yes: bool,
               restore: bool, err: Console) -> int:
    out = Console(highlight=False)
    saved = sysctl.SavedSysctls(state_file())
    if restore:
        try:
            restored = saved.restore()
        except PermissionError:
            err.print("[red]twload:[/] restoring sysctls needs root")
            return 1
        except sysctl.RefusedSysctl as exc:
            err.print(f"[red]twload:[/] {escape(f'refusing to restore from {saved.path}: {exc}; nothing was written')}",
                      soft_wrap=True, highlight=False)
            return 1
        out.print("restored: " + (", ".join(f"{k}={v}" for k, v in restored.items()) or "nothing was saved"))
        return 0
    found = diagnose(url, plan, target)  # what twload.doctor() returns
    kernel, values, findings = found.kernel, found.sysctls, list(found.findings)
    if as_json:
        print(json.dumps(found.to_dict(), indent=2))
    else:
        out.print(f"twload doctor — kernel {kernel.kernel_release}"
                  + (f", target {url}" if url else " (give a URL to probe a target)"), soft_wrap=True)
        for name, value in values.items():
            note = "  (FIN_WAIT2 timeout, NOT the TIME_WAIT length)" if name.endswith("tcp_fin_timeout") else ""
            out.print(f"  {name} = {value if value is not None else '(absent)'}{note}")
        out.print(f"  open files limit = {kernel.nofile_soft}")
        out.print(findings_table(findings))
    fixes = rules.proposed_fixes(findings)
    if fix:
        if not fixes:
            out.print("nothing to fix")
            return 0
        out.print("will set: " + ", ".join(f"{k}={v}" for k, v in fixes.items()))
        if not yes and not typer.confirm("apply these sysctl changes?", default=False):
            out.print("left unchanged")
            return 1
        try:
            saved.save({name: sysctl.read_sysctl(name) or "" for name in fixes})
            for name, value in fixes.items():
                sysctl.write_sysctl(name, value)
        except PermissionError:
            err.print("[red]twload:[/] changing sysctls needs root")
            return 1
        out.print(f"applied; `twload doctor --restore` puts the previous values back ({saved.path})")
    elif fixes and not as_json:
        out.print("suggested (twload doctor --fix applies them):")
        for k, v in fixes.items():
            out.print(f"  sysctl -w {k}='{v}'")
    return 2 if any(f.level == rules.PROBLEM for f in findings) else 0


@app.command()
def doctor(
    url: Annotated[str | None, typer.Argument(help="Target to probe (optional): timestamps, who closes first, keep-alive.")] = None,
    close: Annotated[str, typer.Option("--close", help="The close strategy you plan to use.", rich_help_panel="Plan")] = "fin",
    rate: Annotated[float | None, typer.Option("--rate", help="Planned new connections per second.", rich_help_panel="Plan")] = None,
    connections: Annotated[int, typer.Option("-c", "--connections", help="Planned concurrent connections.", rich_help_panel="Plan")] = 50,
    source: Annotated[str | None, typer.Option("--source", help="Source addresses you plan to use, as for `run --source`: 10.0.0.2,10.0.0.3 or 10.0.0.2-10.0.0.9 or 10.0.0.0/29.", rich_help_panel="Plan")] = None,
    sources: Annotated[int | None, typer.Option("--sources", hidden=True, help="Old spelling: how many source addresses.", rich_help_panel="Plan")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.", rich_help_panel="Output")] = False,
    fix: Annotated[bool, typer.Option("--fix", help="Apply the suggested sysctl changes (asks first).", rich_help_panel="Fix")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="With --fix: do not ask.", rich_help_panel="Fix")] = False,
    restore: Annotated[bool, typer.Option("--restore", help="Put back the sysctls an earlier --fix changed.", rich_help_panel="Fix")] = False,
) -> None:
    """Say what will fail in a short-connection load test, why, and what to change."""
    try:
        plan = doctor_plan(close, rate, connections, source, sources)
        target = parse_target(url) if url else None
    except PlanError as exc:
        fail(str(exc), EXIT_USAGE)
    code = run_doctor(url, target, plan, as_json, fix, yes, restore, err)
    raise typer.Exit(code)
