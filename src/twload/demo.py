"""`twload demo`: every close strategy against the embedded target, side by side.

Each strategy gets its own `twload serve` on a fresh loopback port, so the
TIME_WAIT sockets counted after its run belong to that run alone (TIME_WAIT
lasts 60 s: a shared port would mix in the previous strategy's leftovers).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from twload.engine.closing import WHY
from twload.engine.supervisor import run_to_folder
from twload.kernel.procnet import time_wait_by_side
from twload.plan import CLOSE_STRATEGIES, Plan, parse_target
from twload.report.text import fmt_us
from twload.results import default_run_dir

SERVE_START_TIMEOUT_S = 15.0


class EmbeddedServer:
    """`twload serve --port 0` in a child process; stopped by PID on exit."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> EmbeddedServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "twload", "serve", "--port", "0", *self.args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + SERVE_START_TIMEOUT_S
        line = self.proc.stdout.readline()  # "twload serve listening on URL (...)"
        if "listening on" not in line or time.monotonic() > deadline:
            self.__exit__()
            raise RuntimeError(f"twload serve did not start: {line.strip() or 'no output'}")
        self.url = line.split("listening on ", 1)[1].split()[0]
        return self

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].strip("/"))

    def stop(self) -> int:
        """Stop the server; return how many requests it served (its own count)."""
        if self.proc is None or self.proc.poll() is not None:
            return -1
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            return -1
        for line in out.splitlines():
            if "served" in line:
                return int(line.split("served", 1)[1].split()[0])
        return -1

    def __exit__(self, *exc) -> None:
        self.stop()


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
    return (
        f"Why: with `fin` every connection leaves the client a TIME_WAIT socket for 60 s. This host has\n"
        f"{ports} ephemeral ports per destination, so a client that closes first sustains only\n"
        f"{ports} / 60 s = {ports // 60} new connections per second before connect() fails with\n"
        f"EADDRNOTAVAIL. Here tcp_tw_reuse={reuse}"
        + (" lets loopback reuse those ports after 1 s, which is why `fin` keeps going\n"
           "on 127.0.0.1 but not against a remote host or a load balancer without TCP timestamps."
           if reuse in ("1", "2") else ".")
        + "\n`server` and `rst` leave no TIME_WAIT on the client and never hit that wall."
    )


def run_demo(duration_s: float, connections: int, workers: int, console: Console) -> int:
    folder = default_run_dir(prefix="demo-")
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
    Console(width=max(140, Console().width)).print(table)
    print(explain_port_wall())
    print(f"runs: {folder}{os.sep}")
    return 130 if interrupted else 0
