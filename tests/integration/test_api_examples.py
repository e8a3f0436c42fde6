"""docs/examples/ run as a user runs them (docs/api.md): the pytest gate, the close comparison, the folder
reader; against the target they start themselves (`twload.serve()`) or one given."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def run_example(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=180, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **(env or {})})


def gate(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run_example("-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                       str(EXAMPLES / "test_perf_gate.py"), cwd=tmp_path, env=env)


def test_the_gate_passes_against_the_embedded_target(tmp_path):
    proc = gate(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


def test_the_gate_fails_when_p99_is_over_its_bound(twload_server, tmp_path):
    slow = twload_server("--delay", "20ms")  # every response waits 20 ms: p99 cannot be under 5 ms
    proc = gate(tmp_path, TWLOAD_URL=slow.url, P99_BOUND_MS="5")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "p99 over 5.0 ms" in proc.stdout


def test_the_gate_fails_when_errors_are_over_their_bound(twload_server, tmp_path):
    server = twload_server()
    proc = gate(tmp_path, TWLOAD_URL=server.url, ERROR_RATE_BOUND="-1")  # no run can be under it
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "errors over -100.00%" in proc.stdout


def test_compare_close_prints_one_line_per_strategy(tmp_path):
    proc = run_example(str(EXAMPLES / "compare_close.py"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()}
    assert list(lines) == ["keepalive", "fin", "server", "rst"]
    peaks = {close: int(re.search(r"TIME_WAIT peak (\d+)", line).group(1)) for close, line in lines.items()}
    assert peaks["fin"] > 0 and peaks["rst"] == 0  # the client closes first: its ports wait; a reset leaves none
    assert len(list((tmp_path / "twload-runs").iterdir())) == 4  # a run folder each


def test_read_folder_describes_a_run_it_makes(tmp_path):
    proc = run_example(str(EXAMPLES / "read_folder.py"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Run(")
    assert re.search(r"^  second +1: +\d+ requests", proc.stdout, re.M)
    assert "p99.9 from the histograms:" in proc.stdout


def test_read_folder_reads_a_folder_the_command_line_wrote(twload_server, tmp_path):
    server = twload_server()
    out = tmp_path / "run"
    made = run_example("-m", "twload", "run", server.url, "-n", "100", "-c", "2", "-w", "1", "-q", "--out", str(out),
                       cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    proc = run_example(str(EXAMPLES / "read_folder.py"), str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "100 requests in" in proc.stdout and "over 100 responses" in proc.stdout
