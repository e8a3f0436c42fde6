"""Ctrl-C and SIGTERM during a run still leave a valid run folder and summary."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest


def start_run(url: str, duration: str, out, *args: str):
    """`twload run` with two workers, returned once its first sample is on disk."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "twload", "run", url, "-d", duration, "-c", "4", "-w", "2", "--out", str(out), "--json",
         *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    samples = out / "samples.jsonl"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (not samples.exists() or samples.stat().st_size == 0):
        time.sleep(0.1)
    assert samples.exists(), "no sample was streamed within 20 s"
    return proc, samples


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_leaves_valid_run_folder(target, tmp_path, sig, code):
    server = target()
    out = tmp_path / "run"
    proc, samples = start_run(server.url, "60s", out, *server.args)
    os.kill(proc.pid, sig)  # only the supervisor: it must stop its workers itself
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary == json.loads(stdout)
    assert summary["interrupted"] == sig.name
    assert summary["requests"] > 0
    assert summary["duration_s"] < 30
    lines = [json.loads(line) for line in samples.read_text().splitlines()]
    assert sum(s["requests"] for s in lines) == summary["requests"]


def test_killed_worker_is_reported_and_others_kept(twload_server, tmp_path):
    server = twload_server()
    proc, _ = start_run(server.url, "3s", tmp_path / "run")
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    # workers are spawn children; the resource tracker, also a child, is not one of them
    workers = [int(pid) for pid in children if "spawn_main" in open(f"/proc/{pid}/cmdline").read()]
    assert len(workers) == 2, children
    victim = workers[0]
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 3, stderr  # a worker lost, the others' results kept
    summary = json.loads(stdout)
    assert any("died" in failure for failure in summary["worker_failures"])
    assert summary["requests"] > 0


def test_report_rebuilds_a_killed_run_from_its_streams(twload_server, tmp_path):
    """SIGKILL gives the supervisor no chance to write summary.json: `twload report` rebuilds it."""
    server = twload_server()
    out = tmp_path / "run"
    proc, samples = start_run(server.url, "60s", out)
    time.sleep(1.5)
    workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    proc.kill()
    proc.wait(timeout=10)
    time.sleep(0.5)  # the workers follow their supervisor (PR_SET_PDEATHSIG): no orphan keeps loading
    assert all(not os.path.exists(f"/proc/{pid}") or "spawn_main" not in open(f"/proc/{pid}/cmdline").read()
               for pid in workers)
    assert not (out / "summary.json").exists()
    lines = [json.loads(line) for line in samples.read_text().splitlines()]
    report = subprocess.run([sys.executable, "-m", "twload", "report", str(out), "--json"],
                            capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    rebuilt = json.loads(report.stdout)
    assert rebuilt["rebuilt_from_samples"] is True
    # plan.json, written at the start, says what the run was
    described = (rebuilt["url"], rebuilt["close"], rebuilt["connections"], rebuilt["workers"])
    assert described == (server.url, "keepalive", 4, 2)
    assert rebuilt["duration_planned_s"] == 60.0
    record = json.loads((out / "plan.json").read_text())
    assert record["command"][1:3] == ["run", server.url]
    assert record["plan"]["method"] == "GET" and record["plan"]["body_bytes"] == 0
    assert record["started_utc"].endswith("Z") and record["host"] and record["kernel"] == os.uname().release
    assert record["sysctls"]["net.ipv4.ip_local_port_range"]
    assert record["preflight"]["target_timestamps"] in (True, False)
    assert record["preflight"]["budget"]["ports"] > 0
    assert rebuilt["requests"] == sum(s["requests"] for s in lines) > 0
    assert rebuilt["latency_us"]["p50"] > 0
    assert rebuilt["connect_us"]["p50"] > 0  # hdrh-connect.log streams it too
    text = subprocess.run([sys.executable, "-m", "twload", "report", str(out)], capture_output=True, text=True)
    assert "requests in" in text.stdout and "rebuilt" in text.stderr
    assert f"twload @ {server.url}" in text.stdout
    assert "4 connections" in text.stdout and "close=keepalive" in text.stdout
