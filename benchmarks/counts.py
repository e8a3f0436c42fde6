"""Per-request counts, twload against wrk (https) and h2load (HTTP/2): syscalls, and CPU.

Wall-clock req/s moves with whatever else the host runs; the syscalls a generator makes per request
(`strace -c -f`, of the whole tool) hardly do, so this compares the tools on a shared machine where
vs_wrk.py and vs_h2load.py cannot. Beside them, user + sys CPU per request of the whole tool, from
runs apart (noisy on a shared host: read it as a hint). Each figure is the difference of a short and
a long run divided by the difference of their requests, so start-up (twload's interpreter, the
connections' handshakes on keep-alive) cancels out for every tool alike. strace slows the tools (wrk,
whose level-triggered loop retries SSL_connect on every write event, reads far more often under it):
only its counts are used. Same servers as vs_wrk.py (nginx with TLS, RSA 2048, 1 worker on CPU 1,
session cache off, tickets off unless resumed) and vs_h2load.py; generator on CPU 0. Hosts like this
VM expose no hardware counters, so `perf stat -e instructions` counts nothing there.

Not a test, and no speed: counts per request, which is what a change to the hot path moves.
    python benchmarks/counts.py [--only https|h2|http] [--case NAME] [--twload-only]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import vs_h2load
import vs_wrk

PIN = ["taskset", "-c", "0"]
ANCHORS = True  # --twload-only: twload's rows alone (another build of it against the same anchors' rows)


@dataclass
class Count:
    syscalls: float
    cpu_us: float
    top: dict[str, float]


def strace(cmd: list[str]) -> tuple[str, dict[str, int]]:
    """stdout, and calls per syscall of cmd and its children (with "total")."""
    with tempfile.NamedTemporaryFile(prefix="twb-strace-", suffix=".txt") as out:
        stdout = subprocess.run(["strace", "-c", "-f", "-o", out.name, *cmd], capture_output=True, text=True,
                                timeout=900).stdout
        calls = {}
        for line in Path(out.name).read_text().splitlines():
            fields = line.split()
            if len(fields) >= 5 and fields[3].isdigit():
                calls[fields[-1]] = int(fields[3])
    return stdout, calls


def cpu(cmd: list[str]) -> tuple[str, float]:
    """stdout, and user + sys seconds of cmd and its children."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return out, usage.ru_utime + usage.ru_stime


@dataclass
class Run:
    """A tool's run: its command for a size (requests or seconds), how many requests its stdout says it
    made, and the two sizes (the small one's counts are subtracted)."""
    command: Callable[[int], list[str]]
    requests: Callable[[str], int]
    sizes: tuple[int, int]


def measure(run: Run) -> Count:
    small, large = run.sizes
    (s1, c1), (s2, c2) = strace(run.command(small)), strace(run.command(large))
    m = run.requests(s2) - run.requests(s1)
    (t1, u1), (t2, u2) = cpu(run.command(small)), cpu(run.command(large))
    r = run.requests(t2) - run.requests(t1)
    if m <= 0 or r <= 0:
        raise SystemExit(f"no requests counted: {run.command(large)} ({m}, {r})")
    top = {name: (c2.get(name, 0) - c1.get(name, 0)) / m for name in c2 if name != "total"}
    top = dict(sorted(((k, v) for k, v in top.items() if v >= 0.05), key=lambda kv: -kv[1]))
    return Count((c2.get("total", 0) - c1.get("total", 0)) / m, (u2 - u1) / r * 1e6, top)


def twload_run(url: str, extra: list[str], sizes: tuple[int, int]) -> Run:
    def args(n: int) -> list[str]:
        return ["run", url, "-n", str(n), "-w", "1", *extra, "-q", "--json", "--out", tempfile.mkdtemp(prefix="twb-")]

    def requests(out: str) -> int:
        match = re.search(r'"requests":\s*(\d+)', out)
        return int(match.group(1)) if match else 0

    return Run(lambda n: [*PIN, sys.executable, "-m", "twload", *args(n)], requests, sizes)


def wrk_run(url: str, extra: list[str], seconds: tuple[int, int]) -> Run:
    def requests(out: str) -> int:
        match = re.search(r"(\d+) requests in", out)
        return int(match.group(1)) if match else 0

    def command(s: int) -> list[str]:
        return ["wrk", "-t1", *extra, f"-d{s}s", url]

    return Run(lambda s: [*PIN, *command(s)], requests, seconds)


def h2load_run(url: str, conns: int, streams: int, sizes: tuple[int, int]) -> Run:
    def requests(out: str) -> int:
        match = re.search(r"requests: \d+ total, \d+ started, (\d+) done", out)
        return int(match.group(1)) if match else 0

    def command(n: int) -> list[str]:
        return ["h2load", "-t1", f"-c{conns}", f"-m{streams}", "-n", str(n), url]

    return Run(lambda n: [*PIN, *command(n)], requests, sizes)


def rows_of(ours: Run, theirs: tuple[str, Run]) -> dict[str, Count]:
    rows = {"twload": measure(ours)}
    if ANCHORS:
        rows[theirs[0]] = measure(theirs[1])
    return rows


def show(case: str, rows: dict[str, Count]) -> None:
    print(f"\n{case}")
    print(f"  {'tool':<8} {'syscalls/req':>13} {'CPU us/req':>11}  syscalls per request")
    for tool, c in rows.items():
        top = ", ".join(f"{name} {v:.2f}" for name, v in list(c.top.items())[:7])
        print(f"  {tool:<8} {c.syscalls:>13.2f} {c.cpu_us:>11.1f}  {top}")
    names = list(rows)
    if len(names) == 2:
        a, b = rows[names[0]], rows[names[1]]
        print(f"  {names[0]} / {names[1]}: "
              f"{a.syscalls / b.syscalls:.2f}x syscalls, {a.cpu_us / b.cpu_us:.2f}x CPU (noisy) per request")
    sys.stdout.flush()


def https_cases(only_case: str | None) -> None:
    cases = [  # name, Connection: close, nginx's tickets, twload's options, its sizes (requests), wrk's (seconds)
        ("https keep-alive", False, False, ["-c", "50", "-k"], (20000, 120000), (1, 3)),
        ("https short, full handshakes", True, False, ["-c", "50", "-k", "--close", "server"], (300, 3300), (1, 3)),
        ("https short, resumed", True, True, ["-c", "50", "-k", "--close", "server", "--tls-resume"], (500, 8500),
         (1, 3)),
    ]
    for name, close, tickets, extra, sizes, seconds in cases:
        if only_case and only_case != name:
            continue
        nginx = vs_wrk.Nginx(workers=1, cpus="1", tls=True, tickets=tickets)
        try:
            wrk_extra = ["-c50", *(["-H", "Connection: close"] if close else [])]
            show(name, rows_of(twload_run(nginx.url, extra, sizes), ("wrk", wrk_run(nginx.url, wrk_extra, seconds))))
        finally:
            nginx.stop()


def http_cases(only_case: str | None) -> None:
    nginx = vs_wrk.Nginx(workers=1, cpus="1")
    try:
        for name, extra, sizes, wrk_extra in (
                ("http keep-alive", ["-c", "50"], (20000, 220000), ["-c50"]),
                ("http short", ["-c", "50", "--close", "server"], (2000, 22000), ["-c50", "-H", "Connection: close"])):
            if only_case and only_case != name:
                continue
            show(name, rows_of(twload_run(nginx.url, extra, sizes), ("wrk", wrk_run(nginx.url, wrk_extra, (1, 3)))))
    finally:
        nginx.stop()


def h2_cases(only_case: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="twload-bench-certs-") as certs:
        cert, key, ca = vs_h2load.certificate(Path(certs))
        for scheme, tls in (("h2c", None), ("h2", (cert, key))):
            nginx = vs_h2load.Nginx(tls)
            try:
                for conns, streams in vs_h2load.CASES:
                    name = f"{scheme} -c {conns} --streams {streams}"
                    if only_case and only_case != name:
                        continue
                    extra = ["--http2", "-c", str(conns), "--streams", str(streams),
                             *(["--cacert", str(ca)] if tls else [])]
                    sizes = (20000, 120000)
                    show(name, rows_of(twload_run(nginx.url, extra, sizes),
                                       ("h2load", h2load_run(nginx.url, conns, streams, sizes))))
            finally:
                nginx.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("https", "h2", "http"))
    parser.add_argument("--case", help="one case by its printed name, e.g. 'https keep-alive'")
    parser.add_argument("--twload-only", action="store_true", help="twload's rows alone (PYTHONPATH picks its build)")
    args = parser.parse_args()
    global ANCHORS
    ANCHORS = not args.twload_only
    if args.only in (None, "https"):
        https_cases(args.case)
    if args.only in (None, "http"):
        http_cases(args.case)
    if args.only in (None, "h2"):
        h2_cases(args.case)


if __name__ == "__main__":
    main()
