"""Overhead of the Dask path: `twload run --cluster local:1` against a local `-w 1` run at the same load.

Target: within 5 % of the local run's req/s and CPU per request. Both runs use one engine
process against nginx (one worker, access log off), keep-alive, -c 20. Each run is measured
inside its own steady window (after its first second, before its end): the CPU of every
process of the run (read from /proc: the coordinator with the Dask scheduler and nanny, the
Dask worker, the shard program, the engines) and the requests of the seconds written in
that window. So startup and teardown do not count, and CPU per request is split into the
engines' and everything else's (the supervisor's, and Dask's). The modes alternate,
`--rounds` times. On a shared, busy machine the req/s of both modes swing with the load;
the CPU of the non-engine processes is the steadier measure of what Dask adds.
    python benchmarks/dask_overhead.py [--window 6] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from vs_wrk import Nginx  # noqa: E402

MODES = {"local": ["-w", "1"], "dask": ["--cluster", "local:1", "-w", "1"]}
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """pid and its descendants (children of every thread: a Dask task starts the shard from its own)."""
    found = [pid]
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in threads:
        try:
            children = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
        except OSError:
            continue
        for child in children:
            found += tree(int(child))
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def cpu_by_role(main: int) -> dict[str, float]:
    """CPU seconds so far of the run's processes: its engine processes, and all the others."""
    used = {"engine": 0.0, "other": 0.0}
    for pid in tree(main):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        fields = stat.rsplit(")", 1)[1].split()
        seconds = (int(fields[11]) + int(fields[12])) * TICK_S
        parent_cmd = cmdline(parent)
        engine = "spawn_main" in cmdline(pid) and ("twload.distributed.shard" in parent_cmd
                                                   or (parent == main and "--cluster" not in parent_cmd))
        used["engine" if engine else "other"] += seconds
    return used


def lines(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def one_run(url: str, mode: str, window: float) -> dict:
    out = Path(tempfile.mkdtemp(prefix="twb-dask-")) / "run"
    secs = int(window) + 4
    proc = subprocess.Popen([sys.executable, "-m", "twload", "run", url, "-c", "20", "-d", f"{secs}s", "-q",
                             "--json", "--out", str(out), *MODES[mode]], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    samples = out / "samples.jsonl"
    deadline = time.monotonic() + 120
    while len(lines(samples)) < 1 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    first, cpu_first, t_first = len(lines(samples)), cpu_by_role(proc.pid), time.monotonic()
    time.sleep(window)
    last, cpu_last, t_last = len(lines(samples)), cpu_by_role(proc.pid), time.monotonic()
    proc.communicate(timeout=secs + 120)
    requests = sum(s["requests"] for s in lines(samples)[first:last])
    return {
        "rps": requests / (t_last - t_first),
        "engine_us": (cpu_last["engine"] - cpu_first["engine"]) * 1e6 / max(1, requests),
        "other_us": (cpu_last["other"] - cpu_first["other"]) * 1e6 / max(1, requests),
        "other_cores": (cpu_last["other"] - cpu_first["other"]) / (t_last - t_first),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    nginx = Nginx(workers=1, cpus=None)
    results: dict[str, list[dict]] = {mode: [] for mode in MODES}
    try:
        for r in range(args.rounds):
            for mode in (list(MODES) if r % 2 == 0 else list(reversed(MODES))):  # alternate the order
                m = one_run(nginx.url, mode, args.window)
                results[mode].append(m)
                print(f"round {r + 1} {mode:5} {m['rps']:9.0f} req/s  CPU/request: engine {m['engine_us']:5.1f} us,"
                      f" other {m['other_us']:5.1f} us ({m['other_cores'] * 100:4.1f} % of a core)", flush=True)
    finally:
        nginx.stop()
    med = {mode: {k: statistics.median(m[k] for m in v) for k in v[0]} for mode, v in results.items()}
    rps = med["dask"]["rps"] / med["local"]["rps"]
    cpu = ((med["dask"]["engine_us"] + med["dask"]["other_us"])
           / (med["local"]["engine_us"] + med["local"]["other_us"]))
    print(f"\nmedian of {args.rounds}: dask/local req/s {rps:.3f}, CPU/request {cpu:.3f} "
          f"(target: req/s >= 0.95, CPU/request <= 1.05); non-engine CPU: local "
          f"{med['local']['other_cores'] * 100:.1f} %, dask {med['dask']['other_cores'] * 100:.1f} % of a core")
    print(f"  {'within the target' if rps >= 0.95 and cpu <= 1.05 else 'outside the target'}"
          " (a shared, busy machine: weigh it against the spread between rounds)")


if __name__ == "__main__":
    main()
