"""Bad input and misbehaving peers: one clear line and an exit code, or a counted error.

Never a traceback, never a hang.
"""

import json
import socket
import time

import pytest

from tests.conftest import free_port, run_cli


def assert_one_clean_line(proc, code, words):
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert words in lines[0]


@pytest.mark.parametrize(
    "args, words",
    [
        (["127.0.0.1:8080"], "give a scheme"),
        (["gopher://127.0.0.1/"], "unsupported scheme"),
        (["http://127.0.0.1:99999/"], "bad port"),
        (["http://127.0.0.1/", "-d", "ten"], "bad duration"),
        (["http://127.0.0.1/", "-H", "nocolon"], "bad header"),
        (["http://127.0.0.1/", "--close", "linger"], "--close must be one of"),
        (["http://127.0.0.1/", "-c", "0"], "--connections"),
        (["http://127.0.0.1/", "--body-file", "/nonexistent/file"], "cannot read --body-file"),
    ],
)
def test_user_mistakes(args, words, tmp_path):
    assert_one_clean_line(run_cli("run", *args, cwd=str(tmp_path)), 2, words)


def test_refused_port_is_one_line(tmp_path):
    port = free_port()
    proc = run_cli("run", f"http://127.0.0.1:{port}/", "-d", "1s", cwd=str(tmp_path))
    assert_one_clean_line(proc, 1, "ECONNREFUSED")


def json_run(url, tmp_path, *args):
    proc = run_cli("run", url, "--json", "-w", "1", "--out", str(tmp_path / "run"), *args,
                   timeout=60)
    assert "Traceback" not in proc.stderr
    summary = json.loads(proc.stdout)
    assert proc.returncode == (0 if summary["requests"] else 1), proc.stderr  # 1: nothing succeeded
    return summary


def test_non_http_peer_counts_protocol_errors(raw_peer, tmp_path):
    def ssh_banner(conn, stopped):
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
        time.sleep(0.01)

    peer = raw_peer(ssh_banner)
    summary = json_run(peer.url, tmp_path, "-n", "20", "-c", "2")
    assert summary["requests"] == 0
    assert summary["errors"].get("protocol_error", 0) >= 1


def test_broken_framing_counts_eof_before_response(raw_peer, tmp_path):
    def truncated(conn, stopped):
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")

    peer = raw_peer(truncated)
    summary = json_run(peer.url, tmp_path, "-n", "10", "-c", "2")
    assert summary["requests"] == 0
    assert summary["errors"] == {"eof_before_response": 10}


def test_oversized_headers_are_counted(raw_peer, tmp_path):
    def huge(conn, stopped):
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        time.sleep(0.2)

    peer = raw_peer(huge)
    summary = json_run(peer.url, tmp_path, "-n", "4", "-c", "2")
    assert summary["errors"] == {"response_head_too_large": 4}


def test_stalling_peer_times_out_and_run_ends(raw_peer, tmp_path):
    def stall(conn, stopped):
        conn.recv(4096)
        stopped.wait(10)

    peer = raw_peer(stall)
    started = time.monotonic()
    summary = json_run(peer.url, tmp_path, "-n", "3", "-c", "3", "--timeout", "500ms")
    assert time.monotonic() - started < 20
    assert summary["requests"] == 0
    assert summary["errors"] == {"timeout": 3}


def test_server_that_ignores_connection_close(raw_peer, tmp_path):
    """--close server against a peer that keeps the connection open: counted, never a hang."""

    def keeps_open(conn, stopped):
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        stopped.wait(10)

    peer = raw_peer(keeps_open)
    summary = json_run(peer.url, tmp_path, "-n", "2", "-c", "2", "--close", "server", "--timeout", "500ms")
    assert summary["requests"] == 2
    assert summary["errors"] == {"no_server_close": 2}


def test_peer_resetting_connections_counts_econnreset(raw_peer, tmp_path):
    def reset(conn, stopped):
        conn.recv(4096)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    peer = raw_peer(reset)
    summary = json_run(peer.url, tmp_path, "-n", "10", "-c", "2")
    assert summary["requests"] == 0
    assert summary["errors"] == {"ECONNRESET": 10}


@pytest.fixture
def full_backlog():
    """A listener that never accepts, with its accept queue full: further SYNs go unanswered.

    net/ipv4/tcp_ipv4.c: tcp_v4_conn_request drops the SYN when sk_acceptq_is_full,
    so connect() hangs as it would against an unreachable host.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)  # the kernel queues backlog + 1 = 1 connection
    fillers = [socket.create_connection(listener.getsockname(), timeout=2)]
    yield listener.getsockname()[1], fillers
    for s in fillers:
        s.close()
    listener.close()


def test_unanswered_connect_is_one_line(full_backlog, tmp_path):
    port, _ = full_backlog
    proc = run_cli("run", f"http://127.0.0.1:{port}/", "-d", "1s", "--connect-timeout", "300ms",
                   cwd=str(tmp_path))
    assert_one_clean_line(proc, 1, "no answer within 0.3s")


def test_connect_timeouts_are_counted(raw_peer, tmp_path):
    """The target answers the pre-flight, then stops answering SYNs: timeouts are counted, the run ends."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    try:
        started = time.monotonic()
        # the pre-flight's connection fills the queue (it is never accepted), so workers' SYNs go unanswered
        summary = json_run(f"http://127.0.0.1:{port}/", tmp_path, "-n", "3", "-c", "3",
                           "--connect-timeout", "300ms")
        assert time.monotonic() - started < 20
        assert summary["requests"] == 0
        assert summary["errors"] == {"connect_timeout": 3}
    finally:
        listener.close()
