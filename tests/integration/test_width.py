"""Every command's output fits the terminal: at COLUMNS=80 and 100 no line is wider (long lines wrap)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

COMMANDS = ("run", "serve", "demo", "doctor", "watch", "report", "simulate", "lab")


def cli(columns: int, *args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")} | {"COLUMNS": str(columns)}
    return subprocess.run([sys.executable, "-m", "twload", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env=env)


def widest(proc: subprocess.CompletedProcess) -> int:
    return max((len(line) for line in (proc.stdout + proc.stderr).splitlines()), default=0)


@pytest.mark.parametrize("columns", [80, 100])
def test_help_fits_and_names_arguments_plainly(columns):
    for command in (None, *COMMANDS):
        proc = cli(columns, *([command] if command else []), "--help")
        assert proc.returncode == 0, proc.stderr
        assert widest(proc) <= columns, (command, proc.stdout)
        assert "<bool>" not in proc.stdout and "{url}" not in proc.stdout
    assert "[OPTIONS] [URL]" in cli(columns, "run", "--help").stdout  # optional with --targets


@pytest.mark.parametrize("columns", [80, 100])
def test_run_report_doctor_watch_simulate_lab_fit(columns, twload_server, tmp_path):
    server = twload_server()
    folder = tmp_path / f"run{columns}"
    runs = [
        ("run", server.url, "-n", "300", "-c", "2", "-w", "1", "--rate", "300", "-d", "1s", "--close", "fin",
         "--out", str(folder)),
        ("report", str(folder)),
        ("doctor", server.url, "--rate", "5000", "--source", "127.0.0.2-127.0.0.5"),
        ("watch", "--count", "1"),
        ("simulate", "list"),
        ("simulate", "run", "client-close-exhaustion"),
        ("lab", "list"),
    ]
    for args in runs:
        proc = cli(columns, *args, cwd=str(tmp_path))
        assert "Traceback" not in proc.stderr, proc.stderr
        assert widest(proc) <= columns, (args, proc.stdout, proc.stderr)


def test_demo_fits_80_columns(tmp_path):
    proc = cli(80, "demo", "-d", "300ms", "-c", "2", cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert widest(proc) <= 80, proc.stdout
    assert "TIME_WAIT" in proc.stdout
    # a table: one line per strategy with every cell on it (a cell wrapped one word per line would push
    # the next strategy down), its reason a numbered note under the table
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["strategy"])
    rows = lines[header + 1:header + 5]
    assert [row.split()[0] for row in rows] == ["keepalive", "fin", "server", "rst"], proc.stdout
    for number, row in enumerate(rows, 1):
        assert len(row.split()) >= 8 and row.endswith(f"[{number}]"), proc.stdout
        assert any(line.startswith(f"[{number}] ") for line in lines[header + 5:]), proc.stdout
