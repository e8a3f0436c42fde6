"""`twload watch`: live TCP state counts per destination, TIME_WAIT first, from sock_diag.

The rows are pure functions of two snapshots (now and the previous one, twload.watch.rows), so
the table and the --json lines are the same numbers. Two views: the client side (by destination,
against the port budget) and the listener side (by local listening port: a server or a load
balancer that closes first keeps its TIME_WAIT there).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Annotated

import typer
from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from twload.cli import EXIT_USAGE, app, fail
from twload.kernel import sockdiag
from twload.kernel.sysctl import gather
from twload.live.screen import Screen
from twload.live.watch_view import WatchHistory, render_watch
from twload.plan import PlanError, parse_duration
from twload.watch.rows import destination_rows, header_totals, listener_rows, trend

ROWS_SHOWN = 30


def parse_dst(text: str | None) -> tuple[str, int] | None:
    if not text:
        return None
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def new_table(title: str, columns: tuple[str, ...], left: int) -> Table:
    """A compact table: at 80 columns an IPv4 row fits, and a longer address wraps instead of being cut."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i < left else "right", overflow="fold")
    return table


def client_table(rows: list[dict], previous: dict, interval: float) -> Table:
    table = new_table("Client side, by destination (budget: share of ephemeral ports used)",
                      ("source", "destination", "TIME_WAIT", "Δ/s", "ESTAB", "other", "budget"), left=2)
    for row in rows[:ROWS_SHOWN]:
        gauge = row["budget_used"]
        style = "red" if gauge > 0.9 else "yellow" if gauge > 0.5 else ""
        table.add_row(row["src"], row["dst"], str(row["time_wait"]),
                      f"{trend(row, previous, interval, (row['src'], row['dst'])):+.0f}", str(row["established"]),
                      str(row["other"]), f"[{style}]{gauge:.1%}[/]" if style else f"{gauge:.1%}")
    if not rows:
        table.add_row("-", "(no client connections)", "0", "", "0", "0", "0%")
    return table


def listener_table(rows: list[dict], previous: dict, interval: float) -> Table:
    table = new_table("Listener side, by local port (connections accepted here)",
                      ("listening on", "TIME_WAIT", "Δ/s", "ESTAB", "other", "peers"), left=1)
    for row in rows[:ROWS_SHOWN]:
        table.add_row(row["local"], str(row["time_wait"]), f"{trend(row, previous, interval, row['local']):+.0f}",
                      str(row["established"]), str(row["other"]), str(row["peers"]))
    return table


def header(totals: Counter, dst: str | None) -> Text:
    scope = f"TCP sockets of {dst}" if dst else "TCP sockets (all)"
    return Text(f"{scope}: " + (", ".join(f"{k} {v}" for k, v in totals.most_common(5)) or "none"))


def render(rows: list[dict], listeners: list[dict], previous: dict, interval: float, totals: Counter,
           dst: str | None) -> Group:
    parts = [header(totals, dst), client_table(rows, previous, interval)]
    if listeners:
        parts.append(listener_table(listeners, previous, interval))
    return Group(*parts)


def watch_loop(dst: str | None, interval: float, count: int | None, as_json: bool, console: Console,
               full_screen: bool = False) -> None:
    ports = gather().ports
    dst_filter = parse_dst(dst)
    previous: dict = {}
    n = 0

    def step():
        socks, source = sockdiag.sockets()
        rows = destination_rows(socks, dst_filter, ports)
        listeners = listener_rows(socks, dst_filter)
        return rows, listeners, header_totals(socks, dst_filter), source

    if full_screen:
        full_screen_loop(step, dst, interval, count, console)
        return
    live = None if as_json or not console.is_terminal else Live(console=console, auto_refresh=False)
    try:
        if live:
            live.start()
        while count is None or n < count:
            rows, listeners, totals, source = step()
            if as_json:
                print(json.dumps({"t": round(time.time(), 3), "source": source, "states": dict(totals),
                                  "destinations": rows, "listeners": listeners}), flush=True)
            else:
                view = render(rows, listeners, previous, interval, totals, dst)
                if live:
                    live.update(view, refresh=True)
                else:
                    console.print(view)
            previous = {(r["src"], r["dst"]): r["time_wait"] for r in rows}
            previous.update({r["local"]: r["time_wait"] for r in listeners})
            n += 1
            if count is None or n < count:
                time.sleep(interval)
    finally:
        if live:
            live.stop()


def full_screen_loop(step, dst: str | None, interval: float, count: int | None, console: Console) -> None:
    """On a terminal: TIME_WAIT per destination over time (twload.live.watch_view), until `q`, Ctrl-C or --count."""
    history = WatchHistory()
    stop = threading.Event()
    latest: dict = {"rows": [], "listeners": [], "header": header(Counter(), dst).plain}

    def draw(width: int, height: int):
        return render_watch(latest["rows"], latest["listeners"], history, latest["header"], interval, width, height,
                            "q or Ctrl-C: stop" if screen.keys.reading else "Ctrl-C: stop")

    screen = Screen(console, draw, on_stop=stop.set)
    screen.start()
    try:
        while not stop.is_set() and (count is None or history.readings < count):
            rows, listeners, totals, _ = step()
            history.add(rows, listeners)
            latest.update(rows=rows, listeners=listeners, header=header(totals, dst).plain)
            screen.refresh()
            stop.wait(interval)
    finally:
        screen.close()


@app.command()
def watch(
    dst: Annotated[str | None, typer.Option("--dst", help="Only this destination, HOST:PORT (or this local listening address).")] = None,
    interval: Annotated[str, typer.Option("--interval", help="Time between readings.")] = "1s",
    count: Annotated[int | None, typer.Option("--count", help="Stop after N readings.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per reading.")] = False,
    table: Annotated[bool, typer.Option("--table", help="On a terminal, the tables redrawn in place instead of the full-screen view (TIME_WAIT per destination over time).")] = False,
) -> None:
    """Live TCP states per destination and per listening port, TIME_WAIT first, with the share of the port budget
    in use."""
    try:
        seconds = parse_duration(interval)
        parse_dst(dst)
        if count is not None and count < 1:
            raise PlanError("--count must be at least 1")
    except (PlanError, ValueError):
        fail("bad --dst (HOST:PORT), --interval or --count", EXIT_USAGE)
    console = Console(highlight=False)
    full_screen = not as_json and not table and console.is_terminal and not console.is_dumb_terminal
    watch_loop(dst, seconds, count, as_json, console, full_screen)
