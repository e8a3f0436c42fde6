"""Distributed runs on loopback: a LocalCluster and external Dask clusters this test starts and stops by PID.

Every count is checked against the target's own count (twload serve's, nginx's access log), and
the run folder must read like a local run's: the seconds add up to the summary.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port, run_cli
from twload.metrics import Totals
from twload.results import HDRH_LOG, read_hdrh

DASK_START_S = 60.0  # a busy 2-core host starts a Dask process in seconds, not this long


class DaskCluster:
    """`dask scheduler` and `dask worker` processes on 127.0.0.1, stopped by PID."""

    def __init__(self, workers: int, tls: tuple[str, str, str] | None = None) -> None:
        self.procs: list[subprocess.Popen] = []
        scheme = "tls" if tls else "tcp"
        self.tls_args = ["--tls-ca-file", tls[0], "--tls-cert", tls[1], "--tls-key", tls[2]] if tls else []
        port = free_port()
        self.address = f"{scheme}://127.0.0.1:{port}"
        self.scheduler = self._start("scheduler", "--host", "127.0.0.1", "--port", str(port),
                                     "--no-dashboard", *(["--protocol", "tls"] if tls else []))
        self.workers = [self._start("worker", self.address, "--host", "127.0.0.1", "--nthreads", "1",
                                    "--no-nanny", "--no-dashboard") for _ in range(workers)]
        self.pids = self._wait_for_workers(workers)

    def _start(self, *args: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "dask", *args, *self.tls_args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def _security(self):
        if not self.tls_args:
            return None
        from distributed.security import Security

        ca, cert, key = self.tls_args[1], self.tls_args[3], self.tls_args[5]
        return Security(tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key, require_encryption=True)

    def _wait_for_workers(self, n: int) -> dict[str, int]:
        """Worker address -> PID, once all n have joined."""
        from distributed import Client

        with Client(self.address, security=self._security(), timeout=DASK_START_S) as client:
            client.wait_for_workers(n, timeout=DASK_START_S)
            return client.run(os.getpid)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture
def dask_cluster():
    clusters: list[DaskCluster] = []

    def start(workers: int, tls=None) -> DaskCluster:
        cluster = DaskCluster(workers, tls)
        clusters.append(cluster)
        return cluster

    yield start
    for cluster in clusters:
        cluster.stop()


def run_json(*args: str, timeout: float = 180) -> tuple[dict, subprocess.CompletedProcess]:
    proc = run_cli("run", *args, "--json", timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout), proc


def assert_folder_adds_up(out: Path, summary: dict) -> None:
    """The seconds on disk add up to the summary, and so do the workers' parts."""
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert sum(s["requests"] for s in samples) == summary["requests"]
    assert sum(s["connections_opened"] for s in samples) == summary["connections_opened"]
    assert sum(w["requests"] for w in summary["workers_detail"]) == summary["requests"]
    assert json.loads((out / "summary.json").read_text()) == summary


def test_local_cluster_counts_equal_the_servers(twload_server, tmp_path):
    server = twload_server()
    out = tmp_path / "run"
    summary, proc = run_json(server.url, "--cluster", "local:2", "-c", "4", "-d", "2s", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert summary["errors"] == {}
    assert summary["requests"] > 0
    assert server.stop() == summary["requests"]  # the server's own count
    assert summary["dask_workers"] == 2 and summary["cluster"] == "local:2"
    detail = summary["workers_detail"]
    assert len({w["dask_worker"] for w in detail}) == 2
    assert all(w["requests"] > 0 and w["host"] and w["sources"] == ["127.0.0.1"] for w in detail)
    assert all(w["dask_worker"].startswith("tcp://127.0.0.1:") for w in detail)  # the cluster stays on loopback
    assert all(w["preflight"]["target_timestamps"] is True for w in detail)
    assert_folder_adds_up(out, summary)
    # the per-second histograms on disk (hdrh.log, read with hdrh's own reader), added, are the run's
    # histogram: its percentiles come out the same
    totals = Totals()
    for hist in read_hdrh(out, HDRH_LOG):
        totals.latency.add(hist)
    assert totals.latency.get_total_count() == summary["requests"]
    for name, p in (("p50", 50), ("p99", 99), ("p99_9", 99.9)):
        assert totals.latency.get_value_at_percentile(p) == summary["latency_us"][name]
    plan = json.loads((out / "plan.json").read_text())
    assert plan["cluster"] == "local:2" and len(plan["dask_workers"]) == 2


def test_local_cluster_against_nginx_access_log(nginx, tmp_path):
    # 127.0.0.0/8 is all on lo: two source addresses, one per Dask worker, each with its own ports
    summary, proc = run_json(nginx.url, "--cluster", "local:2", "-n", "600", "-c", "6", "--close", "fin",
                             "--source", "127.0.0.1,127.0.0.2", "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    assert summary["requests"] == 600 and summary["errors"] == {}, summary
    assert [w["requests"] for w in summary["workers_detail"]] == [300, 300]
    assert [w["sources"] for w in summary["workers_detail"]] == [["127.0.0.1"], ["127.0.0.2"]]
    assert summary["budget"]["ports"] == sum(w["preflight"]["budget"]["ports"] for w in summary["workers_detail"])
    assert nginx.access_lines() == 600


def test_external_cluster(dask_cluster, twload_server, tmp_path):
    cluster = dask_cluster(2)
    server = twload_server()
    out = tmp_path / "run"
    summary, proc = run_json(server.url, "--scheduler", cluster.address, "-n", "2000", "-c", "4", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert summary["requests"] == 2000 and server.stop() == 2000
    assert sorted(w["dask_worker"] for w in summary["workers_detail"]) == sorted(cluster.pids)
    assert_folder_adds_up(out, summary)
    # the coordinator's run folder (the shards write none) is private as a local run's
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {0o600}


def test_external_cluster_over_dask_tls(dask_cluster, twload_server, tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file = tmp_path / "ca.pem", tmp_path / "cert.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))  # key and chain in one file
    tls = (str(ca_file), str(cert_file), str(cert_file))
    cluster = dask_cluster(1, tls=tls)
    server = twload_server()
    summary, proc = run_json(server.url, "--scheduler", cluster.address, "-n", "300", "-c", "2",
                             "--tls-ca-file", tls[0], "--tls-cert", tls[1], "--tls-key", tls[2],
                             "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    assert summary["requests"] == 300 == server.stop()
    assert summary["workers_detail"][0]["dask_worker"].startswith("tls://")
    # without the client certificate the scheduler does not let us in: one line, no traceback
    bad = run_cli("run", server.url, "--scheduler", cluster.address, "-n", "10", "--tls-ca-file", tls[0], timeout=60)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "cannot reach the Dask scheduler" in bad.stderr


class OpensAFile:
    """Loading this pickle creates a file: what anyone who reaches the scheduler could send the coordinator."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_an_event_from_another_client_is_counted_never_run(dask_cluster, twload_server, tmp_path):
    """Another client of the same scheduler logs a pickle on the run's topic while the run goes on: the
    coordinator counts it by name in the summary and the run's numbers are those of the server."""
    from distributed import Client

    cluster = dask_cluster(1)
    server = twload_server()
    marker = tmp_path / "pwned"
    with Client(cluster.address, timeout=DASK_START_S) as rogue:
        proc = subprocess.Popen([sys.executable, "-m", "twload", "run", server.url, "--scheduler", cluster.address,
                                 "-c", "2", "-d", "4s", "--out", str(tmp_path / "run"), "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        topic = None
        deadline = time.monotonic() + 120
        while topic is None and proc.poll() is None and time.monotonic() < deadline:
            topic = next((t for t in rogue.get_events() if t.startswith("twload-")), None)  # every topic's events
            time.sleep(0.05)
        assert topic is not None, proc.communicate(timeout=60)
        rogue.log_event(topic, pickle.dumps(OpensAFile(str(marker))))
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert not marker.exists()
    summary = json.loads(stdout)
    assert summary["malformed_events"] == {"count": 1, "first": "payload is not JSON"}
    assert "were not shard messages and were ignored" in stderr
    abandoned = summary["errors"].get("abandoned_at_stop", 0)
    assert summary["requests"] <= server.stop() <= summary["requests"] + abandoned


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_lost_worker_run_ends_with_the_others_data(dask_cluster, twload_server, tmp_path):
    cluster = dask_cluster(3)
    server = twload_server()
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "twload", "run", server.url, "--scheduler", cluster.address,
                             "-c", "3", "-d", "6s", "--out", str(out), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples = out / "samples.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not samples.exists() or len(samples.read_text().splitlines()) < 2):
        time.sleep(0.1)
    victim, victim_pid = sorted(cluster.pids.items())[1]
    os.kill(victim_pid, signal.SIGKILL)  # the Dask worker process itself, mid-run
    stdout, stderr = proc.communicate(timeout=120)
    assert "Traceback" not in stderr
    assert proc.returncode == 3, stderr  # the exit code says a worker was lost
    summary = json.loads(stdout)
    assert summary["lost_workers"] == [victim]
    assert any(victim in line and "lost" in line for line in summary["worker_failures"])
    by_address = {w["dask_worker"]: w for w in summary["workers_detail"]}
    lost = by_address.pop(victim)
    assert lost["requests"] > 0 and "lost_at_s" in lost  # its seconds until then are kept
    assert all(w["requests"] > 0 and "lost_at_s" not in w and w["duration_s"] > 5 for w in by_address.values())
    assert_folder_adds_up(out, summary)
    served = server.stop()
    assert served >= summary["requests"]  # the lost worker's last second never reached us
    # the lost worker's shard program stopped too (the kernel told it, PR_SET_PDEATHSIG): no load goes on unseen
    deadline = time.monotonic() + 15
    while pid_alive(lost["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(lost["pid"])


def test_unreachable_scheduler_is_one_line(tmp_path):
    proc = run_cli("run", "http://127.0.0.1:9/", "--scheduler", f"tcp://127.0.0.1:{free_port()}", "-n", "1",
                   timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "cannot reach the Dask scheduler" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_bad_cluster_options_are_usage_errors():
    for args in (["--cluster", "local:0"], ["--cluster", "local:2", "--scheduler", "tcp://127.0.0.1:1"],
                 ["--tls-cert", "x.pem"]):
        proc = run_cli("run", "http://127.0.0.1:9/", *args, "-n", "1")
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_a_distributed_run_sends_credentials_but_its_folder_redacts_them(raw_peer, tmp_path):
    from tests.integration.test_run_folder import CREDENTIAL_ARGS, folder_text, recording_peer

    peer, heads = recording_peer(raw_peer)
    out = tmp_path / "run"
    summary, proc = run_json(peer.url, "--cluster", "local:1", "-n", "20", "-c", "2", *CREDENTIAL_ARGS,
                             "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert summary["requests"] == 20
    sent = [h.decode() for h in heads if h.startswith(b"GET ")]
    assert len(sent) == 20 and all("\r\nAuthorization: Bearer s3cr3t-t0ken\r\n" in h for h in sent)
    assert "s3cr3t" not in folder_text(out)
    assert ["Authorization", "<redacted, 19 bytes>"] in json.loads((out / "plan.json").read_text())["plan"]["headers"]


def test_plain_scheduler_beyond_loopback_is_refused_before_any_connection():
    """Refused while parsing (nothing is sent to 192.0.2.7, a documentation address), in one line, exit 2
    as other plan errors; --help names the flag that allows it."""
    proc = run_cli("run", "http://127.0.0.1:9/", "--scheduler", "tcp://192.0.2.7:8786", "-n", "1")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "--allow-insecure-scheduler" in proc.stderr and "tls://" in proc.stderr
    assert "--allow-insecure-scheduler" in run_cli("run", "--help").stdout


def test_ctrl_c_stops_every_worker_and_keeps_the_folder(twload_server, tmp_path):
    server = twload_server()
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "twload", "run", server.url, "--cluster", "local:2", "-c", "2",
                             "-d", "60s", "--out", str(out), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples = out / "samples.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not samples.exists() or samples.stat().st_size == 0):
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGINT)  # the coordinator only: it must stop every worker's run itself
    stdout, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    summary = json.loads(stdout)
    assert summary["interrupted"] == "SIGINT" and summary["duration_s"] < 40
    assert all(w.get("interrupted") == "SIGINT" and w["requests"] > 0 for w in summary["workers_detail"])
    assert "lost_workers" not in summary
    assert_folder_adds_up(out, summary)
    abandoned = summary["errors"].get("abandoned_at_stop", 0)  # written, no response within the drain bound
    assert summary["requests"] <= server.stop() <= summary["requests"] + abandoned


def test_a_folder_holding_a_run_is_refused_before_the_cluster_starts(tmp_path):
    (tmp_path / "summary.json").write_text("{}")
    proc = run_cli("run", "http://127.0.0.1:9/", "--cluster", "local:1", "-n", "1", "--out", str(tmp_path))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "already holds a run" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
