"""What a request file costs (issue #32): twload's plain URL run against the same run from a targets
file of 1 target and of 100 targets (varied paths and headers, templated ids), against one nginx.

The protocol of benchmarks/vs_wrk.py, whose helpers it uses: nginx with 1 worker pinned to core 1,
the generator (1 engine process) pinned to core 0, 50 connections, keep-alive and short connections
(--close server); the three runs alternate within each round, so a noisy minute hits all three
alike. Printed: each one's median run (req/s, generator CPU per request, user + sys, less the CPU of
a one-request run with the same options: start-up, imports, reading the file), and each file's ratio
to the plain URL, of the median runs and paired by round, beside the issue's targets: 1 target
>= 0.97x req/s, 100 targets >= 0.95x, CPU per request within 5 %.

Not a test: numbers on a shared machine vary; compare the ratios of one run.
    python benchmarks/vs_targets.py [--duration 5] [--repeat 5] [--only keepalive|short] [--connections 50]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from rounds import rotated
from vs_wrk import Nginx, median_run, paired, per_request, row, twload

TARGETS_GOAL = {"1 target": 0.97, "100 targets": 0.95}  # req/s, as a ratio to the plain URL run
CPU_GOAL = 1.05  # CPU per request, as a ratio to the plain URL run


def one_target(url: str) -> str:
    return f"GET {url}\n"


def hundred_targets(url: str) -> str:
    """100 targets: their own paths and queries, a mix of headers (a repeated one, a templated one),
    and templated ids in the path, the query or a header; GETs, and a POST with a small templated body
    every tenth (nginx's `return 200` answers any method and path)."""
    out = []
    for i in range(100):
        lines = [f"# name: t{i:03d}"]
        if i % 10 == 9:
            lines.append(f"POST {url}orders/{i}?trace={{{{seq}}}}")
            lines.append("Content-Type: application/json")
            lines.append(f"@body{i % 2}.json")
        else:
            path = [f"items/{i}?id={{{{seq}}}}", f"users/{{{{rand 100000}}}}/cart?v={i}",
                    f"search?q=term{i}&page={i % 7}", f"static/{i}.css"][i % 4]
            lines.append(f"GET {url}{path}")
            lines.append(f"X-Tenant: tenant-{i % 13}")
            if i % 3 == 0:
                lines.append("X-Request-Id: {{uuid}}")
            if i % 5 == 0:
                lines += ["Accept: text/html", "Accept: application/json"]  # a repeated name, kept in order
        out.append("\n".join(lines))  # a body file's line comes last: it ends the target
    return "\n\n".join(out) + "\n"


def files(folder: Path, url: str) -> dict[str, Path]:
    (folder / "body0.json").write_text('{"order": {{seq}}, "qty": {{rand 10}}}')
    (folder / "body1.json").write_text('{"sku": "A-1", "qty": 1}')
    made = {"1 target": folder / "one.txt", "100 targets": folder / "hundred.txt"}
    made["1 target"].write_text(one_target(url))
    made["100 targets"].write_text(hundred_targets(url))
    return made


def compare(duration: int, repeat: int, only: str | None, conns: int) -> None:
    nginx = Nginx(workers=1, cpus="1")
    pin = ["taskset", "-c", "0"]
    folder = Path(tempfile.mkdtemp(prefix="twload-bench-targets-"))
    here = os.getcwd()
    os.chdir(folder)  # a target's @body path is relative to the working directory, as vegeta reads it
    try:
        targets = files(folder, nginx.url)
        for label, close in (("keepalive", False), ("short", True)):
            if only and only != label:
                continue
            print(f"\n{label}, 1 process, {conns} connections, {duration}s, median of {repeat}"
                  " (generator on core 0, nginx on core 1)")
            variants = {"plain URL": ()} | {name: ("--targets", str(path)) for name, path in targets.items()}
            runs: dict[str, list] = {name: [] for name in variants}
            names = list(variants)
            for r in range(repeat):
                for name in rotated(names, r):
                    runs[name].append(twload(nginx.url, conns, 1, duration, close, pin, "core-epoll", None,
                                             variants[name]))
            results = {name: median_run(r) for name, r in runs.items()}
            for name, result in results.items():
                print(row(name, result))
            base = results["plain URL"]
            for name, goal in TARGETS_GOAL.items():
                t = results[name]
                if not (base and base[0] and t):
                    continue
                rps, cpu = t[0] / base[0], per_request(t) / per_request(base)
                verdict = "meets" if rps >= goal and cpu <= CPU_GOAL else "misses"
                print(f"  ratio {name} / plain URL: {rps:.3f}x req/s, {cpu:.3f}x CPU per request "
                      f"({verdict} >= {goal}x req/s, <= {CPU_GOAL}x CPU); {paired(runs[name], runs['plain URL'])}")
    finally:
        os.chdir(here)
        nginx.stop()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5, help="rounds, each running the three variants in turn")
    parser.add_argument("--only", choices=["keepalive", "short"])
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    for tool in ("nginx", "taskset"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            sys.exit(f"benchmark needs {tool} (make bench installs the Debian packages)")
    compare(args.duration, args.repeat, args.only, args.connections)


if __name__ == "__main__":
    main()
