"""--metrics-listen against a real Prometheus (Debian's `prometheus`), scraping every second during a
run against the embedded target: the target is up, the exposition parses, and the last
twload_requests_total Prometheus stored agrees with summary.json (the endpoint lingers after the
run for that last scrape)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port, run_cli

PROMETHEUS = shutil.which("prometheus")
DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-twload.json"


class Prometheus:
    """A Prometheus server on loopback with its own config and storage under tmp; stopped by PID."""

    def __init__(self, tmp, target: str) -> None:
        self.port = free_port()
        config = tmp / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n"
            "scrape_configs:\n  - job_name: twload\n    static_configs:\n"
            f"      - targets: ['{target}']\n")
        self.log = open(tmp / "prometheus.log", "w")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {(tmp / 'prometheus.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("prometheus was not ready within 30 s")

    def wait_scraping(self, timeout_s: float = 30) -> None:
        """Until the scrape loop has tried the target once. Prometheus hands discovered targets to its
        scrape manager at most every 5 s (discovery/manager.go: updatert), so a run started on
        readiness alone would end before its first scrape; the target answers nothing yet (down)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            url = f"http://127.0.0.1:{self.port}/api/v1/targets?state=active"
            with urllib.request.urlopen(url, timeout=5) as response:
                targets = json.loads(response.read())["data"]["activeTargets"]
            if any(not t["lastScrape"].startswith("0001-") for t in targets):
                return
            time.sleep(0.2)
        raise RuntimeError(f"prometheus scraped nothing within {timeout_s:.0f} s")

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        params = {"query": expr} | ({"time": f"{at:.3f}"} if at is not None else {})
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, expr: str, at: float | None = None) -> float | None:
        result = self.query(expr, at)
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()


@pytest.fixture
def prometheus_for(tmp_path):
    if PROMETHEUS is None:
        pytest.skip("SKIPPED LOUDLY: prometheus is not installed (Debian package prometheus; `make test` installs "
                    "it as root)")
    servers = []

    def start(target: str) -> Prometheus:
        server = Prometheus(tmp_path, target)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def fetch(url: str, openmetrics: bool = False) -> str:
    headers = {"Accept": "application/openmetrics-text; version=1.0.0"} if openmetrics else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:
        return response.read().decode()


def test_a_real_prometheus_scrapes_the_run_and_ends_with_summary_json(twload_server, prometheus_for, tmp_path):
    server = twload_server()
    port = free_port()
    prometheus = prometheus_for(f"127.0.0.1:{port}")
    prometheus.wait_scraping()
    out = tmp_path / "run"
    run = subprocess.Popen(
        [sys.executable, "-m", "twload", "run", server.url, "-d", "4s", "-c", "4", "-w", "2", "--close", "fin",
         "--out", str(out), "--json", "--metrics-listen", f"127.0.0.1:{port}", "--metrics-linger", "3s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # mid-run: the exposition, as both formats, parses; Prometheus sees the target up
        up = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and up != 1.0:
            time.sleep(0.5)
            up = prometheus.value('up{job="twload"}')
        assert up == 1.0, "Prometheus never saw the twload endpoint up"
        names: set[str] = set()
        deadline = time.monotonic() + 3  # the socket gauges come with the first merged second
        while time.monotonic() < deadline and "twload_time_wait_sockets" not in names:
            names = {f.name for f in text_string_to_metric_families(fetch(f"http://127.0.0.1:{port}/metrics"))}
            time.sleep(0.1)
        assert {"twload_requests", "twload_errors", "twload_latency_seconds", "twload_connect_seconds",
                "twload_time_wait_sockets", "twload_ports_in_use", "twload_port_budget", "twload_run_info"} <= names
        om = {f.name: f for f in parse_openmetrics(fetch(f"http://127.0.0.1:{port}/metrics", openmetrics=True))}
        assert om["twload_run"].type == "info"
        assert om["twload_run"].samples[0].labels["close"] == "fin"
        stdout, stderr = run.communicate(timeout=60)
        ended = time.time()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, stderr
    assert f"metrics: http://127.0.0.1:{port}/metrics" in stderr
    summary = json.loads(stdout)
    assert summary == json.loads((out / "summary.json").read_text())
    stored = prometheus.value('sum(max_over_time(twload_requests_total{job="twload"}[5m]))')
    assert stored == summary["requests"], f"Prometheus' last twload_requests_total {stored} != {summary['requests']}"
    count = prometheus.value('max_over_time(twload_latency_seconds_count{job="twload"}[5m])')
    assert count == summary["requests"]
    budget = prometheus.value('max_over_time(twload_port_budget{job="twload"}[5m])')
    assert budget == summary["budget"]["ports"]
    peak = prometheus.value('max_over_time(twload_time_wait_sockets{job="twload"}[5m])')
    assert peak is not None and 0 < peak <= summary["time_wait_peak"]  # --close fin: the client holds them
    # scraped while the run went, not only in the linger: a stored count short of the run's total
    scrapes = [(float(t), float(v)) for t, v in
               prometheus.query('twload_requests_total{job="twload",status="200"}[5m]', at=ended)[0]["values"]]
    assert scrapes[0][1] < summary["requests"], "Prometheus stored no scrape from while the run went"
    # every query of the Grafana dashboard answers at the last stored scrape; Grafana's $__rate_interval
    # is four scrape intervals (its default), so a rate finds two samples with one scrape missed
    last_scrape = scrapes[-1][0]
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "4s").replace('job=~"$job"', 'job="twload"')
            result = prometheus.query(expr, at=last_scrape)
            if "twload_target_rate" in expr or "twload_lag_seconds" in expr:
                assert result == [], expr  # closed loop: no such series
            elif "twload_errors_total" in expr and not summary["errors"]:
                assert result == [], expr  # no error counted: no series
            else:
                assert result, f"the dashboard's {panel['title']!r}: {expr} found nothing"
    # the endpoint is gone once the linger is over: nothing left listening
    with pytest.raises(OSError):
        fetch(f"http://127.0.0.1:{port}/metrics")


def test_beyond_loopback_is_refused_in_one_line(twload_server, tmp_path):
    result = run_cli("run", "http://127.0.0.1:9/", "-d", "1s", "--metrics-listen", "0.0.0.0:9464",
                     "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--metrics-allow-remote" in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_bad_linger_is_one_line(tmp_path):
    result = run_cli("run", "http://127.0.0.1:9/", "--metrics-listen", "127.0.0.1:0", "--metrics-linger", "soon",
                     "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "--metrics-linger" in result.stderr and not (tmp_path / "run").exists()


def test_a_port_taken_is_one_line_before_the_run(twload_server, tmp_path):
    import socket

    server = twload_server()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run_cli("run", server.url, "-d", "1s", "--metrics-listen", f"127.0.0.1:{taken.getsockname()[1]}",
                         "--out", str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr
    assert "in use" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_dask_run_serves_the_coordinators_merged_numbers(twload_server, tmp_path):
    """--cluster: the coordinator's merged seconds feed the endpoint; read during the linger, its last
    numbers are summary.json's, and the budget is the workers' merged pre-flight budget."""
    server = twload_server()
    port = free_port()
    out = tmp_path / "run"
    run = subprocess.Popen(
        [sys.executable, "-m", "twload", "run", server.url, "--cluster", "local:2", "-c", "4", "-d", "2s",
         "--out", str(out), "--metrics-listen", f"127.0.0.1:{port}", "--metrics-linger", "10s", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (out / "summary.json").exists():
            time.sleep(0.2)
        time.sleep(0.5)  # written once, then again with the cluster's keys
        summary = json.loads((out / "summary.json").read_text())
        families = {f.name: f for f in text_string_to_metric_families(fetch(f"http://127.0.0.1:{port}/metrics"))}
        requests = sum(s.value for s in families["twload_requests"].samples if s.name == "twload_requests_total")
        assert requests == summary["requests"] > 0
        assert families["twload_port_budget"].samples[0].value == summary["budget"]["ports"]
        run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0
