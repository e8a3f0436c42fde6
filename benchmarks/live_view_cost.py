"""What the live view and the metrics endpoint cost: CPU per request (supervisor and workers) with
each on, against `-q`, in alternated runs against the embedded target. Target: within 3 % of `-q`.

    python benchmarks/live_view_cost.py [--repeat 7] [--duration 5] [-c 50] [-w 1]

The view needs a terminal: each run's stdout and stderr are a pseudo-terminal (120x40) whose output
this script reads and drops. CPU is the run's and its workers' user + system time
(getrusage(RUSAGE_CHILDREN) around each run), divided by the requests in its summary.json.
Smoke run: --repeat 1 --duration 2 (says that it works, not what it costs: the lead runs it quiet).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
from pathlib import Path

from twload.serve.embedded import EmbeddedServer

MODES = {
    "-q": ["-q"],
    "view": [],
    "view + metrics": ["--metrics-listen", "127.0.0.1:0", "--metrics-linger", "0s"],
}


def on_a_terminal(argv: list[str], columns: int = 120, rows: int = 40) -> int:
    """Run argv with stdout and stderr on a new pseudo-terminal of that size; its output is read and
    dropped (a terminal that never reads would stall the view). The exit code."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")} | {"TERM": "xterm-256color"}
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env)
    os.close(slave)

    def drain() -> None:
        while True:
            try:
                if not os.read(master, 65536):
                    return
            except OSError:  # EIO: the child closed the terminal
                return

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    code = proc.wait()
    reader.join(timeout=5)
    os.close(master)
    return code


def cpu_per_request(url: str, mode: str, args: argparse.Namespace) -> float:
    out = Path(tempfile.mkdtemp(prefix="twb-live-")) / "run"
    argv = [sys.executable, "-m", "twload", "run", url, "-c", str(args.connections), "-w", str(args.workers),
            "-d", f"{args.duration}s", "--out", str(out), *MODES[mode]]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    code = on_a_terminal(argv)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        raise SystemExit(f"{mode}: twload run exited {code}")
    requests = json.loads((out / "summary.json").read_text())["requests"]
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu_s / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("-c", "--connections", type=int, default=50)
    parser.add_argument("-w", "--workers", type=int, default=1)
    args = parser.parse_args()
    results: dict[str, list[float]] = {mode: [] for mode in MODES}
    with EmbeddedServer("--workers", "1") as server:
        for round_ in range(args.repeat):
            order = list(MODES) if round_ % 2 == 0 else list(reversed(MODES))  # alternated: drift hits all
            for mode in order:
                results[mode].append(cpu_per_request(server.url, mode, args))
    base = statistics.median(results["-q"])
    print(f"CPU µs per request (median of {args.repeat}; {args.duration} s, -c {args.connections}, "
          f"-w {args.workers}, twload serve):")
    for mode, values in results.items():
        ratio = statistics.median(values) / base
        verdict = "" if mode == "-q" else ("  within 3 %" if ratio <= 1.03 else "  OVER 3 %")
        print(f"  {mode:<15} {statistics.median(values):7.2f}  ({ratio:.3f}x -q){verdict}")


if __name__ == "__main__":
    main()
