"""`twload watch`: live TCP state counts per destination, TIME_WAIT first, from sock_diag.

The rows are pure functions of two snapshots (now and the previous one), so the
table and the --json lines are the same numbers.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from twload.cli import EXIT_USAGE, app, fail
from twload.kernel import sockdiag
from twload.kernel.sysctl import gather
from twload.plan import PlanError, parse_duration


def destination_rows(socks, dst_filter: tuple[str, int] | None, ports: int) -> list[dict]:
    """One row per (local address, remote address:port) with client-side sockets, TIME_WAIT first."""
    listening = {s.sport for s in socks if s.state == "LISTEN"}
    states: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for s in socks:
        if s.state == "LISTEN" or s.sport in listening:
            continue  # server-side sockets use the listener's port, not the ephemeral budget
        if dst_filter and (s.dst, s.dport) != dst_filter:
            continue
        states[(s.src, f"{s.dst}:{s.dport}")][s.state] += 1
    rows = []
    for (src, dst), counts in states.items():
        held = sum(counts.values())  # every state but LISTEN holds its ephemeral port
        rows.append({
            "src": src, "dst": dst, "time_wait": counts.get("TIME_WAIT", 0),
            "established": counts.get("ESTABLISHED", 0),
            "other": held - counts.get("TIME_WAIT", 0) - counts.get("ESTABLISHED", 0),
            "budget_used": round(held / ports, 4) if ports else 1.0,
        })
    rows.sort(key=lambda r: (-r["time_wait"], -r["established"], r["dst"]))
    return rows


def parse_dst(text: str | None) -> tuple[str, int] | None:
    if not text:
        return None
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def render(rows: list[dict], previous: dict, interval: float, totals: Counter) -> Table:
    table = Table(title="TCP sockets by destination (client side)   "
                  + "  ".join(f"{k} {v}" for k, v in totals.most_common(4)), title_justify="left")
    for column in ("source", "destination", "TIME_WAIT", "trend/s", "ESTABLISHED", "other", "port budget"):
        table.add_column(column, justify="left" if column in ("source", "destination") else "right")
    for row in rows[:30]:
        key = (row["src"], row["dst"])
        trend = (row["time_wait"] - previous.get(key, row["time_wait"])) / interval
        gauge = row["budget_used"]
        style = "red" if gauge > 0.9 else "yellow" if gauge > 0.5 else ""
        table.add_row(row["src"], row["dst"], str(row["time_wait"]), f"{trend:+.0f}", str(row["established"]),
                      str(row["other"]), f"[{style}]{gauge:6.1%}[/]" if style else f"{gauge:6.1%}")
    if not rows:
        table.add_row("-", "(no client connections)", "0", "", "0", "0", "0%")
    return table


def watch_loop(dst: str | None, interval: float, count: int | None, as_json: bool, console: Console) -> None:
    ports = gather().ports
    if not console.is_terminal:
        console = Console(width=120, highlight=False)
    dst_filter = parse_dst(dst)
    previous: dict = {}
    n = 0

    def step():
        socks, source = sockdiag.sockets()
        rows = destination_rows(socks, dst_filter, ports)
        totals = sockdiag.state_counts(socks)
        return rows, totals, source

    live = None if as_json or not console.is_terminal else Live(console=console, auto_refresh=False)
    try:
        if live:
            live.start()
        while count is None or n < count:
            rows, totals, source = step()
            if as_json:
                print(json.dumps({"t": round(time.time(), 3), "source": source, "states": dict(totals),
                                  "destinations": rows}), flush=True)
            else:
                table = render(rows, previous, interval, totals)
                if live:
                    live.update(table, refresh=True)
                else:
                    console.print(table)
            previous = {(r["src"], r["dst"]): r["time_wait"] for r in rows}
            n += 1
            if count is None or n < count:
                time.sleep(interval)
    finally:
        if live:
            live.stop()


@app.command()
def watch(
    dst: Annotated[str | None, typer.Option("--dst", help="Only this destination, HOST:PORT.")] = None,
    interval: Annotated[str, typer.Option("--interval", help="Time between readings.")] = "1s",
    count: Annotated[int | None, typer.Option("--count", help="Stop after N readings.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per reading.")] = False,
) -> None:
    """Live TCP states per destination, TIME_WAIT first, with the share of the port budget in use."""
    try:
        seconds = parse_duration(interval)
        parse_dst(dst)
        if count is not None and count < 1:
            raise PlanError("--count must be at least 1")
    except (PlanError, ValueError):
        fail("bad --dst (HOST:PORT), --interval or --count", EXIT_USAGE)
    watch_loop(dst, seconds, count, as_json, Console(highlight=False))
