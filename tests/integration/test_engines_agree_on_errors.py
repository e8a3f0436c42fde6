"""The same bad peer against each of the core's backends gives identical error dicts (differential testing).

Decided (docs/ARCHITECTURE.md "Every request one result", close errors): with --close server, a
complete response is counted as a response; if the server then resets instead of closing with FIN,
the reset is counted as ECONNRESET as well (as no_server_close is when it never closes): both
describe the close, not the request, and both backends count them."""

import socket
import struct
import threading
import time

import pytest

from tests.integration.backends import ENGINE_IDS, ENGINES, USABLE_ENGINES
from tests.integration.peers import ListeningPeer
from twload.engine.supervisor import run_to_folder
from twload.kernel.resolve import parse_target
from twload.plan import Plan

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class ResettingPeer(ListeningPeer):
    """Answers each request completely, waits, then resets (SO_LINGER 0) instead of closing with FIN."""

    def __init__(self, wait_s: float = 0.1) -> None:
        self.wait_s = wait_s
        super().__init__()

    def accepted(self, conn: socket.socket) -> None:
        threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2)
            try:
                if conn.recv(4096):
                    conn.sendall(RESPONSE)
                    time.sleep(self.wait_s)  # the client now waits for our FIN
            except OSError:
                return
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST


@pytest.fixture
def resetting_peer():
    peer = ResettingPeer()
    yield peer
    peer.close()


def run(url, tmp_path, engine_io, name, **kw):
    engine, io = engine_io
    plan = Plan(target=parse_target(url), url=url, engine=engine, io=io, workers=1, **kw)
    return run_to_folder(plan, tmp_path / name)


def test_a_reset_after_a_complete_response_counts_the_same_on_each_backend(resetting_peer, tmp_path):
    results = {}
    for i, engine_io in enumerate(USABLE_ENGINES):
        summary = run(resetting_peer.url, tmp_path, engine_io, f"r{i}", close="server", requests=12,
                      duration_s=None, connections=3, timeout_s=5.0)
        results[engine_io] = (summary["requests"], summary["errors"])
    assert results  # epoll at least; io_uring too where it is usable
    assert all(value == (12, {"ECONNRESET": 12}) for value in results.values()), results


@pytest.mark.parametrize("engine_io", ENGINES, ids=ENGINE_IDS)
def test_a_close_pending_at_stop_gets_its_drain_time(resetting_peer, tmp_path, engine_io):
    """Responses complete at 0 s, the server's reset comes at 0.3 s, the stop at 0.2 s: the drain
    waits for it, so each connection counts its response and its reset, and nothing is abandoned."""
    resetting_peer.wait_s = 0.3
    summary = run(resetting_peer.url, tmp_path, engine_io, "r", close="server", connections=2, duration_s=0.2,
                  timeout_s=5.0)
    assert (summary["requests"], summary["errors"]) == (2, {"ECONNRESET": 2})


class ClosingKeepAlivePeer(ListeningPeer):
    """Answers each connection's first request as HTTP/1.1 keep-alive (no Connection: close) and
    closes at once: TCP_CORK holds the response until the shutdown, so its FIN rides on the same
    segment (net/ipv4/tcp_output.c: tcp_send_fin sets FIN on the last unsent skb, Linux 6.x) and the
    client sees the bytes and the close in one readiness event."""

    RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    def accepted(self, conn: socket.socket) -> None:  # one at a time, in the accept thread
        with conn:
            conn.settimeout(2)
            try:
                if conn.recv(4096):
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
                    conn.sendall(self.RESPONSE)
                    conn.shutdown(socket.SHUT_WR)
                    conn.recv(4096)  # until the client closes (or sends what it should not)
            except OSError:
                pass


def test_a_close_that_comes_with_the_response_is_not_reused_on_epoll(tmp_path):
    """epoll reports the FIN with the response's bytes (EPOLLRDHUP): the core does not write its next
    request onto that closed connection, so keep-alive against a server that closes unannounced
    counts every response and no error. (io_uring learns of the FIN only at the next read:
    for them it is the race every client has with a server closing an idle connection.)"""
    peer = ClosingKeepAlivePeer()
    try:
        summary = run(peer.url, tmp_path, ("core", "epoll"), "r", close="keepalive", requests=20,
                      duration_s=None, connections=2, timeout_s=5.0)
    finally:
        peer.close()
    assert (summary["requests"], summary["errors"]) == (20, {}), summary["errors"]
    assert summary["connections_opened"] == 20
