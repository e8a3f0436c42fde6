"""The soak: twload for a long time against nginx, at 80 % of the capacity it first measures.

    python benchmarks/soak.py [--minutes 60] [--rss-every 60] [--fraction 0.8] [--json]

1. Capacity: a closed-loop keep-alive run (--capacity-seconds, default 20) against a local nginx,
   then an open-loop run asked for that closed loop's rate, with the soak's bounded pool: the rate it
   achieves is the capacity (the open loop costs more per request than the closed loop, on the
   generator and on nginx, so the closed loop's rate overstates what an open loop can sustain).
2. The soak: an open-loop run (`twload run --rate <fraction x capacity>`, keep-alive) for --minutes.
   Every --rss-every seconds the RSS of every twload process (the run's process and all its
   descendants: workers, the resource tracker) is read from /proc.
3. Checked at the end (each a line of the table, pass or FAIL; exit 1 if one fails):
   - samples.jsonl has one line for every second, t = 1, 2, ... with no gap, and as many as the run lasted;
   - the answers twload counted equal the lines nginx logged for the soak, exactly;
   - no error but `not_sent` (the open loop's backlog when the run ended, shown with its count);
   - RSS is flat: every reading in the last sixth of the run (the last ten minutes of an hour) is
     within +-5 % of the mean of the readings from 1/12 to 1/4 of it (minutes 5-15 of an hour),
     summed over the processes (a worker's own RSS is printed beside it).
   Latency percentiles are given per 5 minutes (from hdrh.log: the HdrHistogram intervals merged).
   The tables are Markdown, with the host and the date, for benchmarks/RESULTS.md.

twload runs one worker pinned to CPU 0 and nginx on CPU 1; on a host shared with other work, run the
script under `nice -n -20` (its children inherit it). Timings are printed, not checked:
tests/integration/test_soak.py runs this script for 2 minutes and checks the invariants only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from twload.lab.nginx import LocalNginx, NginxError, nginx_config
from twload.metrics import new_histogram, percentiles_us
from twload.report.numbers import read_interval_log

TWLOAD = [sys.executable, "-m", "twload"]
# nginx on CPU 1, twload (one worker) on CPU 0, as the other benchmarks: unpinned, the two share both
# cores and the capacity measured first is not what the open loop then meets.
SERVER_CPU, PIN_GEN, GEN_CPUS = "1", ["taskset", "-c", "0"], {0}
GEN_ARGS = ["-w", "1"]
# The open loop opens a connection for each request due while the others are busy; past a hiccup on a
# busy host it would open thousands, and nginx with thousands of connections serves fewer: a spiral.
# A bounded pool queues the due requests instead (their latency still counts from the intended time).
SOAK_MAX_CONNECTIONS = 500
WINDOW_S = 300  # latency percentiles per 5 minutes
FLAT_TOLERANCE = 0.05
BASELINE = (1 / 12, 1 / 4)  # minutes 5-15 of an hour
LAST = 1 / 6  # the last 10 minutes of an hour


class Nginx(LocalNginx):
    """A local nginx that logs one short line ($status) per request: an hour at tens of thousands of
    requests a second stays a few hundred MB. Buffered (64 KB, flushed every second); its graceful
    stop writes what is left."""

    def __init__(self) -> None:
        super().__init__("twload-soak-nginx-")
        self.log = self.dir / "access.log"
        try:
            self.start(nginx_config(
                str(self.dir), workers=1, connections=20000, main="worker_rlimit_nofile 40000;", error_level="crit",
                http=f"log_format soak '$status'; access_log {self.log} soak buffer=64k flush=1s; "
                     "keepalive_requests 1000000000;",
                server=f"listen 127.0.0.1:{self.port} reuseport backlog=8192; "
                       'location / { return 200 "hello from nginx\\n"; }'),
                cpus=SERVER_CPU)
        except NginxError as e:
            sys.exit(f"soak: {e}")

    def lines(self) -> int:
        """Lines logged so far; nginx is reloaded-free, so a graceful stop (quit_and_count()) flushes the rest."""
        try:
            with open(self.log, "rb") as fh:
                return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
        except FileNotFoundError:
            return 0

    def quit_and_count(self) -> int:
        """Graceful stop (it writes every buffered line); the lines logged in all."""
        self.quit(timeout_s=30)
        return self.lines()


def run_json(args: list[str], timeout: float) -> dict:
    proc = subprocess.run([*PIN_GEN, *TWLOAD, "run", *args, *GEN_ARGS, "--json", "-q"],
                          capture_output=True, text=True, timeout=timeout)
    if not proc.stdout.strip():
        sys.exit(f"soak: twload run failed (exit {proc.returncode}): {proc.stderr.strip()[-600:]}")
    return json.loads(proc.stdout)


def descendants(pid: int) -> list[int]:
    """pid and every process below it (read from /proc: no process group assumed)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return sorted(found)


def rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return 0  # a zombie has no VmRSS line


def cmd_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            words = fh.read().split(b"\0")
    except OSError:
        return "?"
    joined = b" ".join(words)
    if b"resource_tracker" in joined:
        return "resource tracker"
    if b"spawn_main" in joined:
        return "worker"
    return "twload run" if b"twload" in words else os.path.basename(words[0].decode(errors="replace"))


def flat(readings: list[dict], seconds: float) -> dict:
    """The RSS verdict: readings of the last sixth against the mean of those from 1/12 to 1/4."""
    base = [r["total_kb"] for r in readings if BASELINE[0] * seconds <= r["at_s"] <= BASELINE[1] * seconds]
    last = [r["total_kb"] for r in readings if r["at_s"] >= (1 - LAST) * seconds]
    if not base or not last:
        return {"passed": False, "why": f"too few readings: {len(base)} in the baseline, {len(last)} at the end"}
    mean = sum(base) / len(base)
    worst = max(abs(v - mean) / mean for v in last)
    return {"passed": worst <= FLAT_TOLERANCE, "baseline_kb": round(mean), "last_kb": last,
            "worst_change": round(worst, 4)}


def windows(folder: Path) -> list[dict]:
    """Latency percentiles per WINDOW_S seconds, from hdrh.log."""
    per_second = read_interval_log(folder / "hdrh.log")
    out = []
    for start in range(0, max(per_second, default=0), WINDOW_S):
        hist = new_histogram()
        for t in range(start + 1, start + WINDOW_S + 1):
            if t in per_second:
                hist.add(per_second[t])
        if hist.get_total_count():
            out.append({"from_s": start, "to_s": min(start + WINDOW_S, max(per_second)),
                        "requests": hist.get_total_count(), **percentiles_us(hist)})
    return out


def soak(minutes: float, rss_every: float, fraction: float, capacity_s: float, folder: Path) -> dict:
    nginx = Nginx()
    try:
        closed = run_json([nginx.url, "-d", f"{capacity_s:g}s", "-c", "50", "--out", str(folder / "capacity-closed")],
                          timeout=capacity_s + 120)["rps"]
        probe = run_json([nginx.url, "--rate", str(round(closed)), "-d", f"{capacity_s:g}s",
                          "--max-connections", str(SOAK_MAX_CONNECTIONS), "--out", str(folder / "capacity-open")],
                         timeout=capacity_s + 120)
        capacity = probe.get("rate_achieved") or probe["rps"]
        time.sleep(1.5)  # nginx flushes its log buffer every second
        before = nginx.lines()
        rate = max(1, round(capacity * fraction))
        seconds = minutes * 60
        out = folder / "soak"
        # Pinned by the pid, not by a taskset in front: Popen returns once its child has exec'd, and
        # through taskset that child is taskset, and the first reading found taskset, not twload (1 in 50).
        proc = subprocess.Popen([*TWLOAD, "run", nginx.url, "--rate", str(rate), "-d", f"{seconds:g}s",
                                 *GEN_ARGS, "--max-connections", str(SOAK_MAX_CONNECTIONS), "--json", "-q",
                                 "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        os.sched_setaffinity(proc.pid, GEN_CPUS)  # before its workers are spawned, which inherit it
        started = time.monotonic()
        readings = []
        while proc.poll() is None:
            at = time.monotonic() - started
            if at <= seconds:  # after the planned end the workers are stopping: not the steady state
                procs = {pid: rss for pid in descendants(proc.pid) if (rss := rss_kb(pid)) is not None}
                readings.append({"at_s": round(at, 1), "total_kb": sum(procs.values()),
                                 "processes": {f"{cmd_name(pid)} {pid}": kb for pid, kb in procs.items()}})
            next_at = started + len(readings) * rss_every
            while proc.poll() is None and time.monotonic() < next_at:
                time.sleep(min(0.5, max(0.0, next_at - time.monotonic())))
        stdout, stderr = proc.communicate()
        if not stdout.strip():
            sys.exit(f"soak: the soak run failed (exit {proc.returncode}): {stderr.strip()[-600:]}")
        summary = json.loads(stdout)
        logged = nginx.quit_and_count() - before
    finally:
        nginx.quit(timeout_s=30)
        nginx.remove()
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    ts = [s["t"] for s in samples]
    gaps = [(a, b) for a, b in zip(ts, ts[1:], strict=False) if b != a + 1]
    checks = {
        "no_gap": {"passed": ts[:1] == [1] and not gaps and len(ts) >= int(seconds),
                   "samples": len(ts), "first": ts[:1], "gaps": gaps[:10], "planned_s": seconds},
        "exact_counts": {"passed": summary["requests"] == logged
                         and sum(s["requests"] for s in samples) == summary["requests"],
                         "twload": summary["requests"], "nginx": logged},
        # not_sent: requests the schedule had due when the run ended, still queued behind a moment the
        # host could not keep up (the open loop's backlog); never sent, so nginx never saw them. Any
        # other error fails the soak.
        "no_errors": {"passed": not {k: v for k, v in summary["errors"].items() if k != "not_sent"},
                      "errors": summary["errors"]},
        "rss_flat": flat(readings, seconds),
    }
    return {"host": platform.node(), "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "kernel": platform.release(), "minutes": minutes, "capacity_rps": capacity, "closed_loop_rps": closed,
            "fraction": fraction,
            "rate": rate,
            "rate_achieved": summary.get("rate_achieved"), "engine": summary.get("engine"),
            "workers": summary["workers"], "duration_s": summary["duration_s"], "checks": checks,
            "passed": all(c["passed"] for c in checks.values()), "latency_windows": windows(out),
            "rss": readings, "summary": summary}


def fmt_ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def table(result: dict) -> str:
    lines = [f"Soak on {result['host']} (kernel {result['kernel']}), {result['date']}: {result['minutes']:g} min, "
             f"open loop at {result['rate']} req/s ({result['fraction'] * 100:g} % of the "
             f"{result['capacity_rps']:.0f} req/s an open loop achieved first, asked for the closed loop's "
             f"{result['closed_loop_rps']:.0f}), "
             f"achieved {result['rate_achieved']} req/s, {result['workers']} workers, engine {result['engine']}.",
             "", "| check | verdict | measured |", "|---|---|---|"]
    for name, check in result["checks"].items():
        shown = {k: v for k, v in check.items() if k != "passed"}
        lines.append(f"| {name} | {'pass' if check['passed'] else 'FAIL'} | {json.dumps(shown)} |")
    lines += ["", "| minutes | requests | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |",
              "|---|---|---|---|---|---|---|"]
    for w in result["latency_windows"]:
        lines.append(f"| {w['from_s'] / 60:.1f}-{w['to_s'] / 60:.1f} | {w['requests']} | {fmt_ms(w['p50'])} | "
                     f"{fmt_ms(w['p90'])} | {fmt_ms(w['p99'])} | {fmt_ms(w['p99_9'])} | {fmt_ms(w['max'])} |")
    lines += ["", "| at min | RSS of all twload processes, MB |", "|---|---|"]
    for r in result["rss"]:
        lines.append(f"| {r['at_s'] / 60:.1f} | {r['total_kb'] / 1024:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/soak.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--rss-every", type=float, default=60.0, help="seconds between RSS readings")
    parser.add_argument("--fraction", type=float, default=0.8, help="of the measured capacity")
    parser.add_argument("--capacity-seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, help="where the runs go (default: a temporary folder, removed)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of tables")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.rss_every <= 0 or not 0 < args.fraction <= 1 or args.capacity_seconds <= 0:
        parser.error("--minutes, --rss-every, --capacity-seconds must be > 0 and --fraction in (0, 1]")
    folder = args.out or Path(tempfile.mkdtemp(prefix="twload-soak-"))
    try:
        result = soak(args.minutes, args.rss_every, args.fraction, args.capacity_seconds, folder)
    finally:
        if args.out is None:
            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
