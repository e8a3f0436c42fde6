"""`twload report` as a user calls it, on fixture run folders (no network)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import run_cli
from tests.unit.run_folders import Second, plan_json, summary_of, write_run

SECONDS = [Second(latencies_us=[200] * 50, connections_opened=2, time_wait=0),
           Second(latencies_us=[300] * 60, errors={"ECONNRESET": 1}, time_wait=1)]


def test_one_run_in_each_format(tmp_path):
    run = write_run(tmp_path / "a", SECONDS, summary=summary_of(SECONDS), plan=plan_json())
    text = run_cli("report", str(run))
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("Verdict: 110 requests in 2.0 s") and "requests in" in text.stdout
    data = json.loads(run_cli("report", str(run), "--format", "json").stdout)
    assert data["totals"]["requests"] == 110 and data["series"]["t"] == [1, 2]
    csv_text = run_cli("report", str(run), "-f", "csv").stdout.splitlines()
    assert len(csv_text) == 3 and csv_text[0].startswith("run,t,requests")
    html = run_cli("report", str(run), "--format", "html")
    assert html.returncode == 0 and (run / "report.html").exists()
    assert "report.html" in html.stderr


def test_two_runs_compared_within_80_columns(tmp_path):
    a = write_run(tmp_path / "a", SECONDS, summary=summary_of(SECONDS))
    b = write_run(tmp_path / "b", SECONDS[:1], summary=summary_of(SECONDS[:1]))
    proc = subprocess.run([sys.executable, "-m", "twload", "report", str(a), str(b)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    assert "2 runs compared" in proc.stdout and "-55%" in proc.stdout  # requests 110 -> 50
    assert all(len(line) <= 80 for line in proc.stdout.splitlines()), proc.stdout
    out = tmp_path / "both.csv"
    assert run_cli("report", str(a), str(b), "-f", "csv", "-o", str(out)).returncode == 0
    assert len(out.read_text().splitlines()) == 4


def test_not_a_run_folder_is_one_line(tmp_path):
    proc = run_cli("report", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "not a twload run folder" in proc.stderr
    assert "Traceback" not in proc.stderr
