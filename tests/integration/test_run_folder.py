"""The run folder's streams as other tools read them: hdrh.log is a standard HdrHistogram interval log."""

import json
import os
import stat
import subprocess
import sys

from hdrh.log import HistogramLogReader

from tests.conftest import run_cli
from twload.metrics import new_histogram
from twload.results import HDRH_CONNECT_LOG, HDRH_LOG, read_samples


def read_with_hdrh(path) -> list:
    """Every interval of a log, read by the hdrhistogram package's own reader (no code of ours)."""
    reader = HistogramLogReader(str(path), new_histogram())
    intervals = []
    while (hist := reader.get_next_interval_histogram()) is not None:
        intervals.append(hist)
    reader.close()
    return intervals


def test_interval_logs_hold_every_response_and_connect(twload_server, tmp_path):
    server = twload_server()
    out = tmp_path / "run"
    proc = run_cli("run", server.url, "-d", "2500ms", "-c", "4", "-w", "2", "--close", "fin", "--json",
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    samples = read_samples(out)
    text = (out / HDRH_LOG).read_text()
    assert text.startswith("#[Histogram log format version 1.2]\n")
    assert "#[StartTime: " in text and "#[BaseTime: " in text
    assert '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"' in text
    latency = read_with_hdrh(out / HDRH_LOG)
    # one interval per second that had responses, each with that second's count
    assert [h.get_total_count() for h in latency] == [s["requests"] for s in samples if s["requests"]]
    assert sum(h.get_total_count() for h in latency) == summary["requests"] > 0
    # intervals are in order, whole seconds apart, on the run's clock
    starts = [h.get_start_time_stamp() - latency[0].get_start_time_stamp() for h in latency]
    assert [round(ms / 1000.0, 3) for ms in starts] == list(range(len(starts)))
    connect = read_with_hdrh(out / HDRH_CONNECT_LOG)
    assert sum(h.get_total_count() for h in connect) == summary["connections_opened"] > 0
    for s in samples:
        if s["requests"]:
            assert set(s["latency_us"]) == {"p50", "p90", "p99", "p99_9", "max"}
            assert 0 < s["latency_us"]["p50"] <= s["latency_us"]["p90"] <= s["latency_us"]["p99"]
            assert s["latency_us"]["p99"] <= s["latency_us"]["p99_9"] <= s["latency_us"]["max"]
            assert 0 < s["connect_us"]["p50"] <= s["connect_us"]["p99"]
    assert not (out / "latency.hdr").exists()


def test_runs_started_together_without_out_each_get_a_folder(twload_server, tmp_path):
    """Two terminals (or a CI matrix) starting runs in the same second with the default --out: each run
    gets its own folder under ./twload-runs, none is refused."""
    server = twload_server()
    procs = [subprocess.Popen([sys.executable, "-m", "twload", "run", server.url, "-n", "40", "-c", "1", "-w", "1",
                               "--json"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    results = [proc.communicate(timeout=120) for proc in procs]
    for proc, (_, stderr) in zip(procs, results, strict=True):
        assert proc.returncode == 0, stderr
    folders = sorted((tmp_path / "twload-runs").iterdir())
    assert len(folders) == 4
    assert sorted(sum(s["requests"] for s in read_samples(f)) for f in folders) == [40] * 4


def test_a_run_folder_and_its_report_are_private_under_a_shared_umask(twload_server, tmp_path):
    """umask 022 (the usual one) made run folders 0755 and their files 0644: plan.json holds the command
    line, headers and all. The folder is 0700, every file in it 0600, report.html too."""
    server = twload_server()
    old = os.umask(0o022)
    try:
        proc = run_cli("run", server.url, "-n", "50", "-c", "1", "-w", "1", "--report", "--json", cwd=str(tmp_path))
    finally:
        os.umask(old)
    assert proc.returncode == 0, proc.stderr
    (folder,) = (tmp_path / "twload-runs").iterdir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert {"plan.json", "samples.jsonl", "summary.json", "hdrh.log", "report.html"} <= set(files)
    assert set(files.values()) == {0o600}, files
