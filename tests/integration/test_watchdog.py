"""Waits have bounds: a stuck worker is killed by the watchdog, and the summary is written whatever
happens while the workers' data is collected."""

import json
import os
import signal
import subprocess
import sys
import time

from twload.engine.supervisor import WATCHDOG_GRACE_S, run_to_folder
from twload.kernel.resolve import parse_target
from twload.plan import Plan
from twload.results import read_summary


def worker_pids(supervisor_pid: int) -> list[int]:
    children = subprocess.run(["pgrep", "-P", str(supervisor_pid)], capture_output=True, text=True).stdout.split()
    # workers are spawn children; the resource tracker, also a child, is not one of them
    return [int(pid) for pid in children if "spawn_main" in open(f"/proc/{pid}/cmdline").read()]


def test_a_stuck_worker_is_killed_at_the_planned_end_plus_grace(twload_server, tmp_path):
    server = twload_server()
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "twload", "run", server.url, "-d", "2s", "-c", "4", "-w", "2",
                             "--out", str(out), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stuck = None
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(worker_pids(proc.pid)) < 2:
            time.sleep(0.05)
        stuck = worker_pids(proc.pid)[0]
        samples = out / "samples.jsonl"
        while time.monotonic() < deadline and (not samples.exists() or samples.stat().st_size == 0):
            time.sleep(0.05)
        os.kill(stuck, signal.SIGSTOP)  # alive, but it will never answer again: stuck
        stdout, stderr = proc.communicate(timeout=2 + WATCHDOG_GRACE_S + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if stuck is not None and os.path.exists(f"/proc/{stuck}"):
            os.kill(stuck, signal.SIGKILL)
    assert proc.returncode == 3, stderr  # a worker lost: docs/ARCHITECTURE.md "Exit codes"
    summary = json.loads(stdout)
    watchdog = [f for f in summary.get("worker_failures", []) if "killed by the watchdog" in f]
    assert len(watchdog) == 1 and watchdog[0].startswith("worker "), summary.get("worker_failures")
    assert summary["requests"] > 0  # the other worker's data, and what the stuck one sent before
    assert read_summary(out) == summary


def test_summary_is_written_when_collecting_fails(twload_server, tmp_path):
    server = twload_server()
    plan = Plan(target=parse_target(server.url), url=server.url, duration_s=2.0, connections=2, workers=2)
    calls = []

    def display_breaks(progress) -> None:
        calls.append(progress.totals.requests)
        if len(calls) == 6:  # mid-run, once some data is in
            raise RuntimeError("the display broke")

    summary = run_to_folder(plan, tmp_path / "run", on_progress=display_breaks)
    assert read_summary(tmp_path / "run") == summary
    assert any("collecting the workers' data failed: RuntimeError: the display broke" in f
               for f in summary["worker_failures"])
