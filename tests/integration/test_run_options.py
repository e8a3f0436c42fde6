"""`twload run` options as a user would use them: thresholds and requests per connection."""

import json
import time

import pytest

from tests.conftest import run_cli, time_wait_until


def run_json(*args, cwd):
    proc = run_cli("run", *args, "--json", "-w", "1", cwd=cwd)
    assert "Traceback" not in proc.stderr
    return proc, (json.loads(proc.stdout) if proc.stdout.strip() else None)


def test_thresholds_gate_the_exit_code(target, tmp_path):
    server = target()
    proc, summary = run_json(server.url, "-n", "500", "-c", "4", "--threshold", "rps>1",
                             "--threshold", "p99<30s", "--threshold", "errors<1%", *server.args, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert [t["passed"] for t in summary["thresholds"]] == [True, True, True]
    proc, summary = run_json(server.url, "-n", "500", "-c", "4", "--threshold", "rps>100000000",
                             "--threshold", "p50<30s", *server.args, cwd=str(tmp_path))
    assert proc.returncode == 1
    assert [t["passed"] for t in summary["thresholds"]] == [False, True]
    text = run_cli("run", server.url, "-n", "100", "-c", "2", "-w", "1", "--threshold", "p99<1us", *server.args,
                   cwd=str(tmp_path))
    assert text.returncode == 1 and "Threshold p99<1us: FAIL" in text.stdout


def test_bad_threshold_is_a_usage_error(tmp_path):
    proc = run_cli("run", "http://127.0.0.1:9/", "--threshold", "p99<fast", cwd=str(tmp_path))
    assert proc.returncode == 2 and "bad threshold" in proc.stderr


@pytest.mark.parametrize("close", ["fin", "server", "rst"])
def test_requests_per_connection_then_the_close_strategy(twload_server, tmp_path, close):
    server = twload_server()
    proc, summary = run_json(server.url, "-n", "300", "-c", "3", "--close", close,
                             "--requests-per-connection", "10", cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert summary["requests"] == 300 and summary["errors"] == {}
    # 10 requests on each connection, then the strategy; when the budget runs out mid-connection
    # (at most one per slot) that connection ends early and the client closes it
    opened = summary["connections_opened"]
    assert 30 <= opened <= 33
    tw = time_wait_until(server.port, lambda tw: tw["client"] + tw["server"] == opened or close == "rst")
    if close == "fin":
        assert tw == {"client": opened, "server": 0}
    elif close == "server":
        assert tw["server"] >= 30 - 3 and tw["client"] <= 3 and tw["client"] + tw["server"] == opened
    else:
        assert tw == {"client": 0, "server": 0}
    assert server.stop() == 300


def test_source_addresses_round_robin_on_loopback(target, tmp_path):
    """--close server: the server holds each connection's TIME_WAIT, addressed to the source the
    client bound (over TLS too, where the server's close_notify would turn a client's FIN into a
    RST against `twload serve`: test_tls_core.py)."""
    from twload.kernel import sockdiag

    server = target()
    proc, summary = run_json(server.url, "-n", "90", "-c", "3", "--close", "server",
                             "--source", "127.0.0.1-127.0.0.3", *server.args, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert summary["requests"] == 90 and summary["errors"] == {}
    time.sleep(0.3)
    socks, _ = sockdiag.sockets()
    sources = {s.dst for s in socks if s.state == "TIME_WAIT" and s.sport == server.port}
    assert sources == {"127.0.0.1", "127.0.0.2", "127.0.0.3"}


def test_non_local_source_is_one_line(tmp_path):
    proc = run_cli("run", "http://127.0.0.1:9/", "--source", "192.0.2.55", cwd=str(tmp_path))
    assert proc.returncode == 2 and "--source 192.0.2.55 is not an address of this host" in proc.stderr


@pytest.mark.parametrize("where", ["a-file", "a-file/run"])
def test_out_on_a_file_is_one_line(tmp_path, where):
    """--out naming a file (or a folder under one) cannot hold a run: one line, before any traffic."""
    (tmp_path / "a-file").write_text("not a folder\n")
    proc = run_cli("run", "http://127.0.0.1:9/", "-n", "1", "--out", str(tmp_path / where), cwd=str(tmp_path))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "is a file, not a folder" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_a_folder_holding_a_run_is_refused(twload_server, tmp_path):
    """One run per folder: a second run into the same --out is refused in one line, never appended."""
    server = twload_server()
    out = tmp_path / "run"
    proc, summary = run_json(server.url, "-n", "200", "-c", "2", "--out", str(out), cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = run_cli("run", server.url, "-n", "200", "-c", "2", "-w", "1", "--out", str(out), cwd=str(tmp_path))
    assert again.returncode == 1
    assert "Traceback" not in again.stderr
    assert f"{out} already holds a run" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1, again.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing appended
    empty = tmp_path / "empty"
    empty.mkdir()
    proc, summary = run_json(server.url, "-n", "50", "-c", "1", "--out", str(empty), cwd=str(tmp_path))
    assert proc.returncode == 0 and summary["requests"] == 50  # an empty folder is fine
