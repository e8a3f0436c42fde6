"""`twload doctor` and `twload watch` against real sockets on loopback."""

import json
import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import free_port, run_cli


def test_doctor_probes_a_loopback_target(twload_server):
    server = twload_server()
    proc = run_cli("doctor", server.url, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["target"]["timestamps"] is True  # loopback negotiates them by default
    assert report["target"]["server_closes_first"] is True
    assert report["target"]["keepalive"] is True
    assert report["sysctl"]["net.ipv4.tcp_tw_recycle"] is None
    assert report["budget"]["ports"] > 0
    ids = {f["id"] for f in report["findings"]}
    assert {"tw_recycle", "port_budget", "target_timestamps", "server_close"} <= ids


def test_doctor_text_and_unreachable_target():
    proc = run_cli("doctor", f"http://127.0.0.1:{free_port()}/")
    assert proc.returncode == 2  # a problem was found
    assert "cannot reach" in proc.stdout and "Traceback" not in proc.stderr
    assert "NOT the TIME_WAIT length" in proc.stdout


def test_doctor_sees_a_server_that_never_closes(raw_peer):
    def keeps_open(conn, stopped):
        while conn.recv(4096):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    peer = raw_peer(keeps_open)
    report = json.loads(run_cli("doctor", peer.url, "--json").stdout)
    assert report["target"]["server_closes_first"] is False
    assert any(f["id"] == "server_close" and f["level"] == "warning" for f in report["findings"])


def client_closes(port: int, times: int) -> None:
    """Connections the client closes first: one client TIME_WAIT socket each, there when this returns.

    The client's FIN goes first; reading the server's FIN before close() means the socket has reached
    TIME_WAIT (FIN_WAIT2 + FIN), so no count below races the server's close (it did, under load)."""
    for _ in range(times):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(4096)
            s.shutdown(socket.SHUT_WR)
            while s.recv(4096):
                pass


def test_watch_counts_time_wait_per_destination(twload_server):
    server = twload_server()
    client_closes(server.port, 5)
    proc = run_cli("watch", "--dst", f"127.0.0.1:{server.port}", "--count", "2", "--interval", "100ms", "--json")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == 2
    rows = lines[-1]["destinations"]
    assert len(rows) == 1
    assert rows[0]["dst"] == f"127.0.0.1:{server.port}" and rows[0]["time_wait"] == 5
    assert lines[-1]["source"] == "netlink"


def test_watch_table_renders(twload_server):
    proc = run_cli("watch", "--count", "1")
    assert proc.returncode == 0 and "TIME_WAIT" in proc.stdout
    assert run_cli("watch", "--dst", "nonsense").returncode == 2


def test_kernel_filtered_time_wait_count_matches_the_full_dump(twload_server):
    from twload.kernel import sockdiag

    server = twload_server()
    client_closes(server.port, 7)
    socks, _ = sockdiag.sockets()
    full = sum(1 for s in socks if s.state == "TIME_WAIT" and s.dst == "127.0.0.1" and s.dport == server.port)
    assert sockdiag.count_time_wait_to("127.0.0.1", server.port) == full == 7


def test_ipv6_target_time_wait_is_counted(twload_server, tmp_path):
    """An IPv6 loopback target: serve prints a bracketed URL, run connects to it, and the
    client TIME_WAIT it leaves is counted by the kernel-filtered netlink dump (AF_INET6)."""
    from twload.kernel import sockdiag

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    server = twload_server("--host", "::1")
    assert server.url.startswith("http://[::1]:")
    proc = run_cli("run", server.url, "-c", "3", "-n", "12", "--close", "fin", "--json", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["requests"] == 12 and not summary["errors"]
    assert summary["time_wait_peak"] == 12  # fin: one client TIME_WAIT per connection
    socks, _ = sockdiag.sockets()
    full = sum(1 for s in socks if s.state == "TIME_WAIT" and s.dst == "::1" and s.dport == server.port)
    assert sockdiag.count_time_wait_to("::1", server.port) == full == 12


def restore_with_state(tmp_path, saved: dict) -> subprocess.CompletedProcess:
    """`twload doctor --restore` with `saved` as the state file an earlier --fix would have left."""
    netns = os.readlink("/proc/self/ns/net").strip("net:[]")  # the name state_file() gives it
    state = tmp_path / "twload" / f"saved-sysctls-netns-{netns}.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps(saved))
    return subprocess.run([sys.executable, "-m", "twload", "doctor", "--restore"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "XDG_STATE_HOME": str(tmp_path), "COLUMNS": "200"})


# Every key here is harmless if written (the escape lands in tmp_path, the last name does not exist):
# the test runs as root, and before the fix restore wrote whatever the file named.
@pytest.mark.parametrize("key", ["/{escaped}", "net/../../..{escaped}", "net.ipv4.twload_no_such_sysctl"])
def test_restore_refuses_a_state_file_key_doctor_never_sets(tmp_path, key):
    """A key beginning with / once made /proc/sys / key an absolute path: restore wrote anywhere. Only
    the names doctor --fix sets are written back; anything else is refused, naming the key, and
    nothing is written."""
    escaped = tmp_path / "escaped"
    key = key.format(escaped=escaped)
    proc = restore_with_state(tmp_path, {key: "pwned"})
    assert not escaped.exists()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and repr(key) in lines[0] and "nothing was written" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and "restored" not in proc.stdout
