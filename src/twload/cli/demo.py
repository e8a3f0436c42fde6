"""`twload demo`: every close strategy against the embedded target, side by side, then HTTP/2.

Each strategy gets its own `twload serve` on a fresh loopback port, so the
TIME_WAIT sockets counted after its run belong to that run alone (TIME_WAIT
lasts 60 s: a shared port would mix in the previous strategy's leftovers). The last row is `--http2`
against `twload serve --http2` (python h2: slow, so its req/s is the embedded server's, not the
client's): its point is the connections and the TIME_WAIT, the third way out of the port wall.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from twload.cli import EXIT_USAGE, app, err, fail, terminal_width
from twload.engine.supervisor import run_into_folder
from twload.kernel.procnet import time_wait_by_side
from twload.kernel.resolve import parse_target
from twload.merge.summary import Summary
from twload.plan import CLOSE_STRATEGIES, Plan, PlanError, parse_duration
from twload.plan.close import WHY
from twload.report.text import fmt_us
from twload.report.wrap import wrap_line
from twload.results import RunFolderError, claim_run_dir
from twload.serve.embedded import EmbeddedServer

HTTP2 = "http2"  # the demo's last row: --http2, keep-alive, -c connections x 10 streams


def run_strategy(close: str, duration_s: float, connections: int, workers: int,
                 folder: Path) -> tuple[Summary, dict[str, int]]:
    """The run's summary, and the TIME_WAIT sockets on each side (client, server) after it."""
    http2 = close == HTTP2
    with EmbeddedServer(*(["--http2"] if http2 else [])) as server:
        plan = Plan(
            target=parse_target(server.url), url=server.url, connections=connections,
            workers=workers, duration_s=duration_s, close="keepalive" if http2 else close, http2=http2,
        )
        summary = run_into_folder(plan, folder / close)
        time.sleep(0.2)  # let the last FIN/ACK exchanges settle into their states
        time_wait = time_wait_by_side(server.port)
    return summary, time_wait


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
                      *wrap_line("`server` and `rst` leave no TIME_WAIT on the client and never hit that wall; "
                                 "nor does `http2`, whose requests share the -c connections as streams.",
                                 terminal_width(), hang=0)])


# Short enough that a row fits 80 columns; the whole reason (plan.close.WHY) goes in a numbered note.
LABEL = {
    "keepalive": "reuses connections",
    "fin": "client closes first",
    "server": "server closes first",
    "rst": "RST: no TIME_WAIT",
    HTTP2: "HTTP/2 streams",
}
# the reasons: the close strategies' (plan/close.py), and the HTTP/2 row's
WHY_ROW = {**WHY, HTTP2: "--http2: requests share the -c connections as streams: no TIME_WAIT per request"}
GAP = "  "


@dataclass(frozen=True)
class DemoRow:
    close: str
    rps: float
    p99_us: float
    errors: dict[str, int]
    time_wait_client: int
    time_wait_server: int


def demo_table(rows: list[DemoRow], width: int) -> list[str]:
    """The strategies side by side in at most `width` columns where it can be done (pure): the "why"
    column holds the whole reason when the terminal has room, else a short label with a numbered note
    under the table (a row's error names go in its note too), else only the note's number."""
    numbers = [[r.close, f"{r.rps:.0f}", fmt_us(r.p99_us), str(sum(r.errors.values())),
                str(r.time_wait_client), str(r.time_wait_server)] for r in rows]
    heads = ["strategy", "req/s", "p99", "errors", "client", "server"]
    widths = [max(len(cell) for cell in column) for column in zip(heads, *numbers, strict=True)]
    fixed = sum(widths) + len(GAP) * len(widths)
    named = [", ".join(f"{name} {count}" for name, count in r.errors.items()) for r in rows]

    def layout(why: dict[str, str], notes_why: bool) -> tuple[list[str], list[str]]:
        cells: list[str] = []
        notes: list[str] = []
        for r, errors in zip(rows, named, strict=True):
            parts = ([WHY_ROW[r.close]] if notes_why else []) + ([f"errors: {errors}"] if errors else [])
            if parts:
                notes.append(f"[{len(notes) + 1}] " + "; ".join(parts))
            cells.append(" ".join(filter(None, [why[r.close], f"[{len(notes)}]" if parts else ""])))
        return cells, notes

    choices = [layout(WHY_ROW, False), layout(LABEL, True), layout({close: "" for close in WHY_ROW}, True)]
    fits = (choice for choice in choices if fixed + max([len("why"), *map(len, choice[0])]) <= width)
    why_cells, notes = next(fits, choices[-1])  # the first that fits; the last is the narrowest there is
    aligned = [str.ljust] + [str.rjust] * 5  # the strategy's name to the left, numbers to the right
    time_wait = sum(widths[4:]) + len(GAP)
    lines = [" " * (fixed - time_wait - len(GAP)) + "TIME_WAIT".center(time_wait).rstrip()]
    for cells, why in [(heads, "why"), *zip(numbers, why_cells, strict=True)]:
        lines.append(GAP.join([*(align(c, w) for align, c, w in zip(aligned, cells, widths, strict=True)), why]))
    return lines + ([""] if notes else []) + [line for note in notes for line in wrap_line(note, width, hang=4)]


def run_demo(duration_s: float, connections: int, workers: int, console: Console) -> int:
    try:
        folder = claim_run_dir(prefix="demo-")
    except RunFolderError as exc:
        fail(str(exc))
    rows = []
    interrupted = False
    for close in (*CLOSE_STRATEGIES, HTTP2):
        console.print(f"running {'--http2' if close == HTTP2 else f'--close {close}'} for {duration_s:g}s ...")
        summary, tw = run_strategy(close, duration_s, connections, workers, folder)
        rows.append(DemoRow(close, summary.rps, summary.latency_us.p99, dict(summary.errors),
                            tw["client"], tw["server"]))
        if summary.interrupted:
            interrupted = True
            break
    print(f"twload demo: {duration_s:g}s per strategy, {connections} connections, loopback\n")
    print("\n".join(demo_table(rows, terminal_width())) + "\n")
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
