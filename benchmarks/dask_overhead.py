"""Overhead of the Dask path: `twload run --cluster local:1` against a local `-w 1` run at the same load.

Target: within 5 % of the local run's req/s and CPU per request. Both runs use one engine
process against nginx (one worker, access log off), keep-alive, -c 20. CPU per request is
marginal: each mode runs for a short and a long duration, and (CPU_long - CPU_short) /
(requests_long - requests_short) cancels what does not grow with the load (imports, the
Dask cluster's start and stop). CPU is user + sys of the command and all its waited-for
descendants (RUSAGE_CHILDREN), so the Dask scheduler, worker, task relay and shard
supervisor count against the Dask path. The modes alternate, `--rounds` times; on a shared,
busy machine the spread between rounds says how far to trust the ratio.
    python benchmarks/dask_overhead.py [--short 3] [--long 9] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from vs_wrk import Nginx  # noqa: E402

MODES = {"local": ["-w", "1"], "dask": ["--cluster", "local:1", "-w", "1"]}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_run(url: str, mode: str, secs: int) -> tuple[dict, float]:
    before = children_cpu()
    proc = subprocess.run([sys.executable, "-m", "twload", "run", url, "-c", "20", "-d", f"{secs}s", "--json",
                           "--out", tempfile.mkdtemp(prefix="twb-dask-"), *MODES[mode]],
                          capture_output=True, text=True, timeout=secs + 120)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} run failed: {proc.stderr.strip()[-300:]}")
    return json.loads(proc.stdout), children_cpu() - before


def measure(url: str, mode: str, short: int, long: int) -> tuple[float, float]:
    """(req/s of the long run, marginal CPU µs per request)."""
    s_short, cpu_short = one_run(url, mode, short)
    s_long, cpu_long = one_run(url, mode, long)
    extra = s_long["requests"] - s_short["requests"]
    cpu_us = (cpu_long - cpu_short) * 1e6 / extra if extra > 0 else float("nan")
    return s_long["rps"], cpu_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=int, default=3)
    parser.add_argument("--long", type=int, default=9)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    nginx = Nginx(workers=1, cpus=None)
    results: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
    try:
        for r in range(args.rounds):
            for mode in (MODES if r % 2 == 0 else reversed(MODES)):  # alternate the order
                rps, cpu_us = measure(nginx.url, mode, args.short, args.long)
                results[mode].append((rps, cpu_us))
                print(f"round {r + 1} {mode:5}  {rps:10.1f} req/s  {cpu_us:6.1f} us CPU/request", flush=True)
    finally:
        nginx.stop()
    med = {mode: (statistics.median(r for r, _ in v), statistics.median(c for _, c in v))
           for mode, v in results.items()}
    rps_ratio = med["dask"][0] / med["local"][0]
    cpu_ratio = med["dask"][1] / med["local"][1]
    print(f"\nmedian over {args.rounds} rounds: dask/local req/s {rps_ratio:.3f}, CPU/request {cpu_ratio:.3f} "
          f"(target: req/s >= 0.95, CPU/request <= 1.05)")
    print(f"  {'pass' if rps_ratio >= 0.95 and cpu_ratio <= 1.05 else 'outside the target'}"
          " (a shared machine: compare with the spread between rounds above)")


if __name__ == "__main__":
    main()
