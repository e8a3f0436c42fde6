"""`twload report` as a user calls it, on fixture run folders (no network)."""

from __future__ import annotations

import json
import os
import stat
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


def test_report_files_are_private_and_a_device_is_written_in_place(tmp_path):
    """A report shows the run's command line: the files it writes are 0600 whatever the umask (one that
    was there before too); `-o /dev/stdout` writes through the device, never renames over it."""
    run = write_run(tmp_path / "a", SECONDS, summary=summary_of(SECONDS), plan=plan_json())
    (run / "report.html").write_text("old")
    os.chmod(run / "report.html", 0o644)
    old = os.umask(0o022)
    try:
        assert run_cli("report", str(run), "-f", "html").returncode == 0
        csv_out = tmp_path / "rows.csv"
        assert run_cli("report", str(run), "-f", "csv", "-o", str(csv_out)).returncode == 0
        piped = run_cli("report", str(run), "-f", "csv", "-o", "/dev/stdout")
    finally:
        os.umask(old)
    assert stat.S_IMODE((run / "report.html").stat().st_mode) == 0o600
    assert (run / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert stat.S_IMODE(csv_out.stat().st_mode) == 0o600
    assert piped.returncode == 0 and piped.stdout.startswith("run,t,requests"), piped.stderr
    assert os.path.islink("/dev/stdout") or os.path.exists("/dev/stdout")
