"""`twload demo`: every close strategy against the embedded target, side by side.

Each strategy gets its own `twload serve` on a fresh loopback port, so the
TIME_WAIT sockets counted after its run belong to that run alone (TIME_WAIT
lasts 60 s: a shared port would mix in the previous strategy's leftovers).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from twload.cli import EXIT_USAGE, app, err, fail, terminal_width
from twload.engine.strategies import WHY
from twload.engine.supervisor import run_to_folder
from twload.kernel.procnet import time_wait_by_side
from twload.plan import CLOSE_STRATEGIES, Plan, PlanError, parse_duration, parse_target
from twload.report.text import fmt_us
from twload.report.wrap import wrap_line
from twload.results import RunFolderError, claim_run_dir
from twload.serve.embedded import EmbeddedServer


def run_strategy(close: str, duration_s: float, connections: int, workers: int, folder: Path) -> dict:
    with EmbeddedServer() as server:
        plan = Plan(
            target=parse_target(server.url), url=server.url, connections=connections,
            workers=workers, duration_s=duration_s, close=close,
        )
        summary = run_to_folder(plan, folder / close)
        time.sleep(0.2)  # let the last FIN/ACK exchanges settle into their states
        summary["time_wait"] = time_wait_by_side(server.port)
    return summary


def explain_port_wall() -> str:
    low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = high - low + 1
    reuse = Path("/proc/sys/net/ipv4/tcp_tw_reuse").read_text().strip()
    text = (
        f"Why: with `fin` every connection leaves the client a TIME_WAIT socket for 60 s. This host has "
        f"{ports} ephemeral ports per destination, so a client that closes first sustains only "
        f"{ports} / 60 s = {ports // 60} new connections per second before connect() fails with "
        f"EADDRNOTAVAIL. Here tcp_tw_reuse={reuse}"
        + (" lets loopback reuse those ports after 1 s, which is why `fin` keeps going "
           "on 127.0.0.1 but not against a remote host or a load balancer without TCP timestamps."
           if reuse in ("1", "2") else ".")
    )
    return "\n".join([*wrap_line(text, terminal_width(), hang=0),
                      *wrap_line("`server` and `rst` leave no TIME_WAIT on the client and never hit that wall.",
                                 terminal_width(), hang=0)])


def run_demo(duration_s: float, connections: int, workers: int, console: Console) -> int:
    try:
        folder = claim_run_dir(prefix="demo-")
    except RunFolderError as exc:
        fail(str(exc))
    table = Table(title=f"twload demo: {duration_s:g}s per strategy, {connections} connections, loopback")
    for column in ("strategy", "req/s", "p99", "errors", "TIME_WAIT client", "TIME_WAIT server"):
        table.add_column(column, justify="right" if column != "strategy" else "left")
    table.add_column("why")
    interrupted = False
    for close in CLOSE_STRATEGIES:
        console.print(f"running --close {close} for {duration_s:g}s ...")
        summary = run_strategy(close, duration_s, connections, workers, folder)
        errors = sum(summary["errors"].values())
        tw = summary["time_wait"]
        table.add_row(
            close, f"{summary['rps']:.0f}", fmt_us(summary["latency_us"]["p99"]),
            str(errors) if not errors else f"{errors} ({', '.join(summary['errors'])})",
            str(tw["client"]), str(tw["server"]), WHY[close],
        )
        if summary.get("interrupted"):
            interrupted = True
            break
    Console().print(table)  # the terminal's width: the "why" column wraps
    print(explain_port_wall())
    print(f"runs: {folder}{os.sep}")
    return 130 if interrupted else 0


@app.command()
def demo(
    duration: Annotated[str, typer.Option("-d", "--duration", help="Length of each strategy's run.")] = "5s",
    connections: Annotated[int, typer.Option("-c", "--connections", help="Connections per run.")] = 20,
    workers: Annotated[int, typer.Option("-w", "--workers", help="Load worker processes per run.")] = 1,
) -> None:
    """Start `twload serve`, run each close strategy against it, compare who keeps TIME_WAIT."""
    try:
        seconds = parse_duration(duration)
    except PlanError as exc:
        fail(str(exc), EXIT_USAGE)
    code = run_demo(seconds, connections, workers, console=err)
    raise typer.Exit(code)
