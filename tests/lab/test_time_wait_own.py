"""Issue 36 on a real kernel, against a non-loopback target: a client namespace and a server
namespace on a veth (each test makes and removes its own `twl-` namespaces). A run's own client
TIME_WAIT is told from what an earlier run left towards the same port, that earlier TIME_WAIT is
reported beside it, and the ones the run's connects took over (tcp_tw_reuse=1) are counted."""

import time

from tests.lab.conftest import client_json, start_server

N = 100


def run(topo, url: str, folder, close: str, *args: str) -> dict:
    summary, proc = client_json(topo, "run", url, "--close", close, "-w", "1", "--json", "-q", "--out", str(folder),
                                *args)
    assert proc.returncode == 0, proc.stderr
    return summary


def test_a_server_close_run_after_a_fin_run_owns_none_and_reports_what_it_found(direct, tmp_path):
    url = start_server(direct)
    fin = run(direct, url, tmp_path / "fin", "fin", "-n", str(N), "-c", "4")
    # towards 10.250.1.2 (not loopback) the namespace's default tcp_tw_reuse=2 reuses nothing
    assert direct.client.read_sysctl("net.ipv4.tcp_tw_reuse") == "2"
    assert fin["connections_opened"] == N
    assert fin["time_wait_peak"] == N  # one per connection it closed first (far below tcp_max_tw_buckets)
    assert fin["time_wait_at_start"] == 0
    server = run(direct, url, tmp_path / "server", "server", "-n", str(N), "-c", "4")
    assert server["requests"] == N and server["errors"] == {}
    assert server["time_wait_peak"] == 0
    assert server["time_wait_at_start"] == N and server["time_wait_found"] == N
    assert server["time_wait_found_reused"] == 0


def test_time_wait_taken_over_by_the_runs_connects_is_counted_as_reused(direct, tmp_path):
    """20 ports, all in TIME_WAIT after a fin run; with tcp_tw_reuse=1 a server-close run takes them over."""
    direct.client.sysctl("net.ipv4.ip_local_port_range", "40000 40019")
    direct.client.sysctl("net.ipv4.tcp_tw_reuse", 1)
    url = start_server(direct)
    fin = run(direct, url, tmp_path / "fin", "fin", "-n", "20", "-c", "1")
    assert fin["time_wait_peak"] == 20
    # tcp_tw_reuse_delay (1000 ms by default, net/ipv4/tcp_ipv4.c: tcp_twsk_unique): reuse waits this long
    time.sleep(1.2)
    server = run(direct, url, tmp_path / "server", "server", "-n", "40", "-c", "4")
    assert server["requests"] == 40 and server["errors"] == {}
    assert server["time_wait_peak"] == 0
    # the pre-flight's probe took one over before the start; no port was free for the run's first
    # connects but the probe's, so at least 3 of its 4 slots took one over too
    assert server["time_wait_at_start"] == 19
    assert server["time_wait_found_reused"] >= 3
    assert server["time_wait_found"] + server["time_wait_found_reused"] == 19


def test_ports_held_by_an_earlier_runs_time_wait_are_named_at_the_wall(direct, tmp_path):
    """15 of 20 ports in an earlier run's TIME_WAIT (tcp_tw_reuse=0): a server-close run's 10 connections
    meet the wall, and the advice names the found TIME_WAIT, not the run's open connections."""
    direct.client.sysctl("net.ipv4.ip_local_port_range", "40000 40019")
    direct.client.sysctl("net.ipv4.tcp_tw_reuse", 0)
    url = start_server(direct)
    run(direct, url, tmp_path / "fin", "fin", "-n", "15", "-c", "1")
    server = run(direct, url, tmp_path / "server", "server", "-d", "1s", "-c", "10")
    assert server["errors"].get("EADDRNOTAVAIL", 0) > 0
    assert server["time_wait_peak"] == 0 and server["time_wait_at_start"] == 15
    assert server["wall"].endswith("15 of them in TIME_WAIT left by earlier connections at the start.")
    assert any(line.startswith("15 ports towards this target were already in TIME_WAIT at the run's start")
               for line in server["advice"])
    assert not any("its open connections" in line for line in server["advice"])
