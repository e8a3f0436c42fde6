"""The doctor's I/O: gather facts, print findings, apply and restore sysctl fixes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console

from twload import doctor
from twload.kernel import sysctl
from twload.plan import Target

MARK = {doctor.OK: "[green]ok     [/]", doctor.WARNING: "[yellow]warning[/]", doctor.PROBLEM: "[red]problem[/]"}


def state_file() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    netns = os.readlink("/proc/self/ns/net").strip("net:[]")  # sysctls are per network namespace
    return Path(base) / "twload" / f"saved-sysctls-netns-{netns}.json"


def run_doctor(target: Target | None, url: str | None, close: str, rate: float | None, connections: int,
               sources: int, as_json: bool, fix: bool, yes: bool, restore: bool, err: Console) -> int:
    out = Console(highlight=False)
    saved = sysctl.SavedSysctls(state_file())
    if restore:
        try:
            restored = saved.restore()
        except PermissionError:
            err.print("[red]twload:[/] restoring sysctls needs root")
            return 1
        out.print("restored: " + (", ".join(f"{k}={v}" for k, v in restored.items()) or "nothing was saved"))
        return 0
    kernel = sysctl.gather()
    facts = doctor.probe(target) if target else None
    plan = doctor.DoctorPlan(close=close, rate=rate, connections=connections, sources=sources)
    findings = doctor.diagnose(kernel, facts, plan)
    values = sysctl.sysctl_values()
    if as_json:
        print(json.dumps(doctor.report(kernel, values, facts, plan, findings), indent=2))
    else:
        out.print(f"twload doctor — kernel {kernel.kernel_release}"
                  + (f", target {url}" if url else " (give a URL to probe a target)"), soft_wrap=True)
        for name, value in values.items():
            note = "  (FIN_WAIT2 timeout, NOT the TIME_WAIT length)" if name.endswith("tcp_fin_timeout") else ""
            out.print(f"  {name} = {value if value is not None else '(absent)'}{note}")
        out.print(f"  open files limit = {kernel.nofile_soft}")
        for f in findings:
            out.print(f"  {MARK[f.level]}  {f.message}", soft_wrap=True)
    fixes = doctor.proposed_fixes(findings)
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
        out.print("suggested: " + ", ".join(f"sysctl -w {k}='{v}'" for k, v in fixes.items())
                  + "   (twload doctor --fix applies them)")
    return 2 if any(f.level == doctor.PROBLEM for f in findings) else 0
