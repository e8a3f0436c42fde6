"""Many keep-alive connections on the core engine: how many were answered, whether the run ended on
time, and the generator's RSS per open connection.

The target is `twload serve` with enough workers for the file limit (a process may hold only
RLIMIT_NOFILE sockets). `twload run` spreads the connections over --workers processes and over
--source addresses in 127.0.0.0/8 (each address brings its own range of ephemeral ports).

RSS per connection: the engine workers' summed VmRSS (read from /proc while the connections are
open, the peak of a run) at N connections minus the same at BASE connections, divided by the
connections opened minus BASE (keep-alive: each stays open to the end):
what a connection costs in user space, free of the interpreter's own ~30 MB per worker. Kernel
socket memory is not in RSS (see /proc/net/sockstat for that; it is printed too).
    python benchmarks/many_connections.py [--connections 10000,100000] [--duration 10] [--io epoll]

Measured 2026-11-25 15:50 UTC, quiet 2-core box (hard RLIMIT_NOFILE 20,000, somaxconn 4096),
`--connections 10000,100000 --ramp 20 --duration 15 --timeout 30`, sources 127.0.0.2-21:
  10,000 conns, 2+2 workers:  epoll all opened, 1.87M requests, no errors, 110 B per connection;
                              io_uring all opened, 1.65M requests, no errors, 119 B
  100,000 conns, 6+6 workers: epoll all opened, 1.21M requests, 68,609 abandoned_at_stop, 120 B;
                              io_uring all opened, 1.14M requests, 97,471 abandoned_at_stop, 124 B
  (the server answers ~33k requests/s: with 100,000 connections each waits ~3 s for its turn, so
  most are still in flight when the 1 s drain ends.) Run 37.8 s for 35 s planned.
Before: 4 source addresses made 4 x 28,231 ports for 100,000 connections, and connect()'s port
search (net/ipv4/inet_hashtables.c: __inet_hash_connect) grew slow as that space filled; and
`twload serve` (uvloop) accepted one connection per turn of its loop, so its accept queues
overflowed and SYNs were dropped: 66,711 of 100,000 opened, ~20,000 connect timeouts. A worker's
heap also grew ~130 KB/s from hdrh's ctypes types, which the per-connection figure included.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE = 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def sockstat_tcp_pages() -> int:
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            fields = line.split()
            return int(fields[fields.index("mem") + 1])
    return 0


def run(url: str, connections: int, workers: int, sources: str, duration: int, io: str, ramp: int = 0,
        timeout: int = 10) -> dict:
    """One keep-alive run; the engine workers' peak summed RSS (kB) while it ran. With `ramp`, the
    connections grow over that many seconds (--stages), then hold for `duration`."""
    folder = tempfile.mkdtemp(prefix="twb-many-")
    started = time.monotonic()
    load = ["--stages", f"{ramp}s:{connections},{duration}s:{connections}"] if ramp else \
        ["-c", str(connections), "-d", f"{duration}s"]
    proc = subprocess.Popen([sys.executable, "-m", "twload", "run", url, *load, "-w", str(workers),
                             "--source", sources, "--timeout", f"{timeout}s", "--engine", "core", "--io", io,
                             "--json", "--out", folder + "/r"], stdout=subprocess.PIPE, text=True)
    peak_rss = peak_mem = 0
    while proc.poll() is None:
        time.sleep(0.5)
        peak_rss = max(peak_rss, sum(rss_kb(child) for child in children(proc.pid)))
        peak_mem = max(peak_mem, sockstat_tcp_pages())
    wall = time.monotonic() - started
    summary = json.loads(proc.stdout.read())
    return {"summary": summary, "rss_kb": peak_rss, "tcp_mem_pages": peak_mem, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", default="10000,100000")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--sources", default="127.0.0.2-127.0.0.21",
                        help="source addresses: each brings ~28k ports to the one server address:port")
    parser.add_argument("--io", default="auto", help="the core's I/O backend: auto, epoll or uring")
    parser.add_argument("--ramp", type=int, default=0,
                        help="open the connections over this many seconds (100,000 at once overflow accept queues)")
    parser.add_argument("--timeout", type=int, default=10, help="--timeout of the big run, seconds")
    args = parser.parse_args()
    import resource

    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    per_process = min(limit, 1 << 20) - 100
    for n in [int(x) for x in args.connections.split(",")]:
        workers = max(2, math.ceil(n * 1.1 / per_process))  # 10 % spare: SO_REUSEPORT spreads unevenly
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "twload", "serve", "-w", str(workers), "--port", str(port)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            print(server.stdout.readline().strip(), flush=True)
            url = f"http://127.0.0.1:{port}/"
            base = run(url, BASE, workers, args.sources, 3, args.io)
            big = run(url, n, workers, args.sources, args.duration, args.io, args.ramp, args.timeout)
        finally:
            server.terminate()
            server.wait(30)
        s = big["summary"]
        # per connection that was open (keep-alive: opened ones stay open to the end); the core's
        # connection array is allocated for -c but untouched pages are not resident
        opened = max(s["connections_opened"], BASE + 1)
        per_conn = (big["rss_kb"] - base["rss_kb"]) * 1024 / (opened - BASE)
        print(f"{n:>7,} connections, {workers} workers, io {s['io']}: opened {s['connections_opened']:,}, requests "
              f"{s['requests']:,}, errors {s['errors']}, run {s['duration_s']:.2f} s, "
              f"planned {args.ramp + args.duration}s (command {big['wall_s']:.1f} s)")
        print(f"         engine workers' RSS {big['rss_kb'] / 1024:.1f} MB (at {BASE}: {base['rss_kb'] / 1024:.1f} MB)"
              f" -> {per_conn:.0f} B per connection; kernel TCP memory peak "
              f"{big['tcp_mem_pages'] * os.sysconf('SC_PAGE_SIZE') / 2**20:.0f} MB (all sockets, both ends)",
              flush=True)


if __name__ == "__main__":
    main()
