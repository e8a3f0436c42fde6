"""A run's own client TIME_WAIT, told from what earlier connections left towards the same port (#36).

`twload run` (the command, with its pre-flight and port probe) against one `twload serve` port per
test, back to back as a user comparing strategies would: a `--close fin` run leaves a client
TIME_WAIT socket per connection for 60 s, and the run after it finds them there.
"""

from __future__ import annotations

import json
import time

from tests.conftest import run_cli
from twload.lab.probes import counters

N = 300


def run(url: str, folder, close: str, requests: int = N) -> tuple[dict, dict, list[dict]]:
    """One run of `requests` connections (bounded: -n), its summary, plan.json and samples."""
    done = run_cli("run", url, "--close", close, "-n", str(requests), "-c", "4", "-w", "1",
                   "--json", "-q", "--out", str(folder))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    plan = json.loads((folder / "plan.json").read_text())
    samples = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    assert summary["requests"] == requests and summary["errors"] == {}
    return summary, plan, samples


def test_a_run_records_the_time_wait_it_found_at_its_start(twload_server, tmp_path):
    server = twload_server()
    first, first_plan, _ = run(server.url, tmp_path / "fin", "fin")
    assert first["time_wait_at_start"] == first_plan["preflight"]["time_wait_at_start"] == 0
    second, second_plan, _ = run(server.url, tmp_path / "fin-again", "fin")
    # the first run's TIME_WAIT (60 s each) is there before the second's first connection
    assert second["time_wait_at_start"] == second_plan["preflight"]["time_wait_at_start"] == N
    assert second_plan["preflight"]["ports_in_use_at_start"] >= N
    assert second["ports_in_use_at_start"] == second_plan["preflight"]["ports_in_use_at_start"]
    server.stop()


def test_a_server_close_run_right_after_a_fin_run_has_no_time_wait_of_its_own(twload_server, tmp_path):
    """The issue's case: the fin run's TIME_WAIT is reported as found, not as the server run's own."""
    server = twload_server()
    overflow = counters()["TcpExtTCPTimeWaitOverflow"]
    fin, _, _ = run(server.url, tmp_path / "fin", "fin")
    closed_first = fin["connections_opened"]
    after, _, samples = run(server.url, tmp_path / "server", "server")
    # beyond net.ipv4.tcp_max_tw_buckets (for the whole namespace) the kernel keeps none
    dropped = counters()["TcpExtTCPTimeWaitOverflow"] - overflow
    assert closed_first - dropped <= after["time_wait_at_start"] <= closed_first
    assert after["time_wait_peak"] == 0
    assert all(s["time_wait"] == 0 for s in samples)
    # each found socket is still there or was taken over by a connect (none times out within seconds)
    assert after["time_wait_found"] + after["time_wait_found_reused"] == after["time_wait_at_start"]
    assert samples[-1]["time_wait_found"] == after["time_wait_found"]
    server.stop()


def test_a_fin_run_owns_one_time_wait_per_connection_it_closed_first(twload_server, tmp_path):
    server = twload_server()
    overflow = counters()["TcpExtTCPTimeWaitOverflow"]
    fin, _, samples = run(server.url, tmp_path / "fin", "fin")
    # beyond net.ipv4.tcp_max_tw_buckets (for the whole namespace) the kernel keeps none
    dropped = counters()["TcpExtTCPTimeWaitOverflow"] - overflow
    assert fin["connections_opened"] == N
    assert N - dropped <= fin["time_wait_peak"] <= N
    assert fin["time_wait_peak"] == max(s["time_wait"] for s in samples)
    assert fin["time_wait_at_start"] == fin["time_wait_found"] == fin["time_wait_found_reused"] == 0
    server.stop()


def closes_late(conn, stopped) -> None:
    """Answers, then closes 0.2 s after the client's FIN: the client sits in FIN_WAIT2 until then."""
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    conn.recv(1)  # b"": the client closed first
    time.sleep(0.2)


def test_the_last_connections_closing_handshakes_are_counted(raw_peer, tmp_path):
    """A fin run ends as its last connections close; their TIME_WAIT comes once the server's FIN does."""
    peer = raw_peer(closes_late)
    fin, _, samples = run(peer.url, tmp_path / "fin", "fin", requests=20)
    assert fin["connections_opened"] == 20
    assert fin["time_wait_peak"] == samples[-1]["time_wait"] == 20
