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


SECRET_BEARER, SECRET_COOKIE = "Bearer s3cr3t-t0ken", "sid=c00kie-s3cr3t"
CREDENTIAL_ARGS = ("-H", f"Authorization: {SECRET_BEARER}", f"--header=Cookie: {SECRET_COOKIE}",
                   "-H", "X-Request-Id: visible-42")


def recording_peer(raw_peer) -> tuple[object, list[bytes]]:
    """A loopback HTTP/1.1 peer that answers every request 200 and keeps each request head it got."""
    heads: list[bytes] = []

    def handler(conn, stopped) -> None:
        data = b""
        while not stopped.is_set():
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, data = data.partition(b"\r\n\r\n")
            heads.append(head)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    return raw_peer(handler), heads


def folder_text(folder) -> str:
    return "".join(p.read_text(encoding="utf-8", errors="replace") for p in folder.iterdir())


def test_credential_headers_go_on_the_wire_but_not_into_the_run_folder(raw_peer, tmp_path):
    peer, heads = recording_peer(raw_peer)
    out = tmp_path / "run"
    proc = run_cli("run", peer.url, "-n", "20", "-c", "2", "-w", "1", *CREDENTIAL_ARGS,
                   "--report", "--json", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == {"200": 20}
    sent = [h.decode() for h in heads if h.startswith(b"GET ")]
    assert len(sent) == 20
    assert all(f"\r\nAuthorization: {SECRET_BEARER}\r\n" in h and f"\r\nCookie: {SECRET_COOKIE}" in h for h in sent)
    text = folder_text(out)  # plan.json, samples, logs, summary and report.html
    assert "s3cr3t" not in text
    plan = json.loads((out / "plan.json").read_text())
    assert plan["plan"]["headers"] == [["Authorization", "<redacted, 19 bytes>"], ["Cookie", "<redacted, 17 bytes>"],
                                       ["X-Request-Id", "visible-42"]]
    at = plan["command"].index("-H")
    assert plan["command"][at:at + 5] == ["-H", "Authorization: <redacted, 19 bytes>",
                                          "--header=Cookie: <redacted, 17 bytes>", "-H", "X-Request-Id: visible-42"]
    assert "credentials" not in plan
    assert "Authorization: &lt;redacted, 19 bytes&gt;" in (out / "report.html").read_text()


def test_keep_credentials_writes_them_verbatim(raw_peer, tmp_path):
    peer, heads = recording_peer(raw_peer)
    out = tmp_path / "run"
    proc = run_cli("run", peer.url, "-n", "5", "-c", "1", "-w", "1", *CREDENTIAL_ARGS, "--keep-credentials",
                   "--report", "--json", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    plan = json.loads((out / "plan.json").read_text())
    assert plan["credentials"] == "kept"
    assert ["Authorization", SECRET_BEARER] in plan["plan"]["headers"]
    assert f"Authorization: {SECRET_BEARER}" in plan["command"]
    assert SECRET_COOKIE in (out / "report.html").read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o700  # still private
    assert "--keep-credentials" in run_cli("run", "--help").stdout
