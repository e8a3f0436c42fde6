"""The asyncio engine against servers that surprise it (issue #28, docs/ARCHITECTURE.md "Server
surprises"): 1xx interim heads, 101 to a plain GET, bytes nobody asked for, framing edge cases, a
body that never ends.

The count oracle: the client never reports more answers than the peer received requests, every
surprise is named in errors{}, and every request taken has exactly one result (closed loop, -n N:
responses + the errors that are request results == N; unsolicited_response is not one of those)."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time

import pytest

from tests.conftest import run_cli
from twload.engine.supervisor import run_to_folder
from twload.kernel.resolve import parse_target
from twload.plan import Plan

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
# errors that describe a connection, not a request: they are no request's result
# (docs/ARCHITECTURE.md "Every request one result")
CLOSE_ERRORS = {"unsolicited_response", "no_server_close"}


class Requests:
    """What a peer received: requests in all, and per connection (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.per_connection: list[int] = []

    def connection(self) -> int:
        with self.lock:
            self.per_connection.append(0)
            return len(self.per_connection) - 1

    def add(self, index: int, count: int) -> None:
        with self.lock:
            self.per_connection[index] += count

    @property
    def total(self) -> int:
        with self.lock:
            return sum(self.per_connection)


def serve(received: Requests, answer, conn: socket.socket, stopped: threading.Event) -> None:
    """Read requests (heads without a body, as the engine sends them) and answer each with
    answer(conn, n), n counting from 1 on this connection; until the client closes."""
    index = received.connection()
    pending = b""
    n = 0
    while not stopped.is_set():
        data = conn.recv(65536)
        if not data:
            return
        pending += data
        while b"\r\n\r\n" in pending:
            _, pending = pending.split(b"\r\n\r\n", 1)
            n += 1
            received.add(index, 1)
            if answer(conn, n) is False:
                return


def run(url: str, tmp_path, name: str = "run", **kw) -> dict:
    kw.setdefault("timeout_s", 5.0)
    plan = Plan(target=parse_target(url), url=url, engine="asyncio", workers=1, **kw)
    return run_to_folder(plan, tmp_path / name)


def assert_oracle(summary: dict, received: Requests, taken: int | None = None) -> None:
    answers = sum(summary["status"].values()) if "status" in summary else summary["requests"]
    assert summary["requests"] <= received.total, (summary["requests"], received.total)
    assert answers == summary["requests"]
    if taken is not None:  # closed loop, -n: every request taken has exactly one result
        results = summary["requests"] + sum(v for k, v in summary["errors"].items() if k not in CLOSE_ERRORS)
        assert results == taken, summary["errors"]


# -- 1xx interim heads --------------------------------------------------------------------


INTERIMS = (b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 102 Processing\r\n\r\n",
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")


def test_interim_heads_are_skipped_and_the_final_response_answers(raw_peer, tmp_path):
    """Each request gets 100, 102 and 103 before its 200, in one write or piece by piece (the head of
    the final response then spans reads); only the 200s are answers, one per request."""
    received = Requests()

    def answer(conn, n):
        whole = b"".join(INTERIMS) + OK
        if n % 3 == 0:
            conn.sendall(whole)
        else:  # split inside the interim heads and inside the final head
            for i in range(0, len(whole), 17 if n % 3 == 1 else 40):
                conn.sendall(whole[i:i + (17 if n % 3 == 1 else 40)])
                time.sleep(0.0005)

    peer = raw_peer(lambda conn, stopped: serve(received, answer, conn, stopped))
    summary = run(peer.url, tmp_path, connections=2, requests=60, duration_s=None)
    assert_oracle(summary, received, taken=60)
    assert summary["status"] == {"200": 60}
    assert summary["errors"] == {}
    assert received.total == 60


def test_after_interim_heads_the_final_heads_framing_decides_what_eof_means(raw_peer, tmp_path):
    """100 Continue, then a final head whose body ends at the server's close (no length): an answer at
    EOF. With a Content-Length the close comes too early: eof_before_response, not an answer (the
    kept head must be the final one, not the interim head that declares no length)."""
    received = Requests()

    def answer(conn, n):
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
        time.sleep(0.01)  # the final head spans reads: its kept copy must start after the 100
        framing = b"Content-Length: 50\r\n" if received.total % 2 else b""
        conn.sendall(framing + b"Connection: close\r\n\r\npart of the body")
        time.sleep(0.01)
        return False  # close

    peer = raw_peer(lambda conn, stopped: serve(received, answer, conn, stopped))
    summary = run(peer.url, tmp_path, connections=1, requests=10, duration_s=None)
    assert_oracle(summary, received, taken=10)
    assert summary["status"] == {"200": 5}
    assert summary["errors"] == {"eof_before_response": 5}


# -- 101 Switching Protocols to a plain GET --------------------------------------------------


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\n\r\n",  # without the fields llhttp stops with another error
], ids=["with-upgrade-fields", "bare"])
def test_a_101_to_a_plain_get_is_unexpected_upgrade_and_no_fatal_error(raw_peer, tmp_path, head):
    """The connection now speaks something else (here: a websocket frame follows): the request's one
    result is unexpected_upgrade, the connection is closed; uvloop has no exception to report."""
    received = Requests()

    def answer(conn, n):
        conn.sendall(head + b"\x81\x02hi")
        conn.recv(4096)  # until the client closes
        return False

    peer = raw_peer(lambda conn, stopped: serve(received, answer, conn, stopped))
    proc = run_cli("run", peer.url, "--json", "-w", "1", "--engine", "asyncio", "-n", "6", "-c", "2",
                   "--out", str(tmp_path / "run"), timeout=60)
    assert "Traceback" not in proc.stderr and "Fatal error" not in proc.stderr, proc.stderr
    summary = json.loads(proc.stdout)
    assert_oracle(summary, received, taken=6)
    assert (summary["requests"], summary["errors"]) == (0, {"unexpected_upgrade": 6})


# -- bytes nobody asked for ----------------------------------------------------------------


def two_responses(conn, n):
    conn.sendall(OK + OK)  # one write: the client reads both at once


def garbage_after(conn, n):
    conn.sendall(OK + b"xyz")  # not even a response


def after_a_closing_response(conn, n):
    # llhttp refuses bytes after a response that closes the connection ("Data after Connection: close")
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok" + OK)
    conn.recv(4096)  # until the client closes
    return False


@pytest.mark.parametrize("answer", [two_responses, garbage_after, after_a_closing_response])
@pytest.mark.parametrize("plan", [
    {"requests": 40, "duration_s": None},  # a budget: the worker hands out each next request
    {"duration_s": 0.5},  # free-running: the next request used to be written from the parser's callback
    {"rate": 200.0, "open_loop": True, "requests": 40, "duration_s": None},
], ids=["budget", "free-run", "open-loop"])
def test_bytes_after_a_complete_response_are_unsolicited_and_close_the_connection(raw_peer, tmp_path, answer,
                                                                                 plan):
    received = Requests()
    peer = raw_peer(lambda conn, stopped: serve(received, answer, conn, stopped))
    summary = run(peer.url, tmp_path, connections=2, max_connections=2, **plan)
    assert_oracle(summary, received, taken=plan.get("requests"))
    errors = summary["errors"]
    assert summary["requests"] >= 2
    assert errors.pop("unsolicited_response") == summary["requests"]  # each answer had its surplus
    assert set(errors) <= {"abandoned_at_stop"}  # free-running: what the stop caught in flight
    assert set(received.per_connection) <= {0, 1}  # a connection is done after its surplus


def test_bytes_while_the_servers_close_is_awaited_are_unsolicited(raw_peer, tmp_path):
    """--close server: the response is counted, then comes a second response instead of the FIN."""
    received = Requests()

    def answer(conn, n):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        time.sleep(0.05)
        conn.sendall(OK)
        conn.recv(4096)
        return False

    peer = raw_peer(lambda conn, stopped: serve(received, answer, conn, stopped))
    summary = run(peer.url, tmp_path, connections=2, close="server", requests=10, duration_s=None)
    assert_oracle(summary, received, taken=10)
    assert (summary["requests"], summary["errors"]) == (10, {"unsolicited_response": 10})


def test_bytes_on_an_idle_kept_alive_connection_are_unsolicited(raw_peer, tmp_path):
    """Open loop, a request every 0.5 s: the surplus comes while the connection waits for its next
    request, so the next one goes out on a new connection."""
    received = Requests()

    def answer(conn, n):
        conn.sendall(OK)
        time.sleep(0.02)
        conn.sendall(OK)

    peer = raw_peer(lambda conn, stopped: serve(received, answer, conn, stopped))
    summary = run(peer.url, tmp_path, rate=2.0, open_loop=True, requests=3, duration_s=None, max_connections=1,
                  connections=1)
    assert_oracle(summary, received)
    assert (summary["requests"], summary["errors"]) == (3, {"unsolicited_response": 3})
    assert received.per_connection == [1, 1, 1]


def test_bytes_after_a_response_to_head_are_unsolicited(raw_peer, tmp_path):
    """A response to HEAD ends at its blank line (its Content-Length says what a GET would get):
    what follows in the same read is a surplus, not the body of the response."""
    received = Requests()

    def answer(conn, n):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + (OK if received.total == 1 else b""))

    peer = raw_peer(lambda conn, stopped: serve(received, answer, conn, stopped))
    summary = run(peer.url, tmp_path, method="HEAD", connections=1, requests=6, duration_s=None)
    assert_oracle(summary, received, taken=6)
    assert (summary["requests"], summary["errors"]) == (6, {"unsolicited_response": 1})
    assert received.per_connection == [1, 5]


# -- framing: what the core decides too (docs/ARCHITECTURE.md "Server surprises") ------------------


@pytest.mark.parametrize("head", [b"Content-Length: 5\r\nContent-Length: 5\r\n", b"Content-Length: 5, 5\r\n"],
                         ids=["two-fields", "list"])
def test_a_duplicated_content_length_is_a_protocol_error(raw_peer, tmp_path, head):
    """Even identical: refused, as llhttp and nginx do (RFC 9110 section 8.6 allows it)."""
    received = Requests()

    def answer(conn, n):
        conn.sendall(b"HTTP/1.1 200 OK\r\n" + head + b"\r\nhello")

    peer = raw_peer(lambda conn, stopped: serve(received, answer, conn, stopped))
    summary = run(peer.url, tmp_path, connections=2, requests=6, duration_s=None)
    assert_oracle(summary, received, taken=6)
    assert (summary["requests"], summary["errors"]) == (0, {"protocol_error": 6})


BOTH_FRAMINGS = b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"


@pytest.mark.parametrize("method, status", [("GET", b"204 No Content"), ("GET", b"304 Not Modified"),
                                            ("HEAD", b"200 OK")])
def test_head_204_and_304_end_at_the_blank_line_even_with_both_framings(raw_peer, tmp_path, method, status):
    """RFC 9112 section 6.3 rule 1 comes before the Transfer-Encoding + Content-Length check: such a
    response has no body, so it is an answer and the connection stays alive. Every other request gets a
    100 Continue first, split from the final head, so the final head is found past it."""
    received = Requests()

    def answer(conn, n):
        if n % 2:
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 ")
            time.sleep(0.005)
            conn.sendall(status + b"\r\n" + BOTH_FRAMINGS)
        else:
            conn.sendall(b"HTTP/1.1 " + status + b"\r\n" + BOTH_FRAMINGS)

    peer = raw_peer(lambda conn, stopped: serve(received, answer, conn, stopped))
    summary = run(peer.url, tmp_path, method=method, connections=1, requests=8, duration_s=None)
    assert_oracle(summary, received, taken=8)
    assert (summary["status"], summary["errors"]) == ({status[:3].decode(): 8}, {})
    assert received.per_connection == [8]


def test_a_response_with_a_body_and_both_framings_is_a_protocol_error(raw_peer, tmp_path):
    received = Requests()

    def answer(conn, n):
        conn.sendall(b"HTTP/1.1 200 OK\r\n" + BOTH_FRAMINGS + b"5\r\nhello\r\n0\r\n\r\n")

    peer = raw_peer(lambda conn, stopped: serve(received, answer, conn, stopped))
    summary = run(peer.url, tmp_path, connections=1, requests=4, duration_s=None)
    assert_oracle(summary, received, taken=4)
    assert (summary["requests"], summary["errors"]) == (0, {"protocol_error": 4})


@pytest.mark.parametrize("version, method, kept", [(b"1.0", "GET", False), (b"1.0", "HEAD", False),
                                                  (b"1.1", "GET", True)])
def test_an_http_1_0_response_with_transfer_encoding_closes_after_the_message(raw_peer, tmp_path, version, method,
                                                                              kept):
    """RFC 9112 section 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing: read it by
    the chunked coding, then close, even though it says keep-alive. The peer waits 0.3 s for another
    request on the connection, then closes; HTTP/1.1 chunked stays kept alive."""
    received = Requests()
    body = b"2\r\nok\r\n0\r\n\r\n" if method == "GET" else b""

    def answer(conn, n):
        conn.sendall(b"HTTP/" + version + b" 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + body)
        conn.settimeout(0.3)  # then serve() ends on its recv's timeout, and the connection closes

    peer = raw_peer(lambda conn, stopped: serve(received, answer, conn, stopped))
    summary = run(peer.url, tmp_path, method=method, connections=1, requests=4, duration_s=None)
    assert_oracle(summary, received, taken=4)
    assert (summary["status"], summary["errors"]) == ({"200": 4}, {})
    assert received.per_connection == ([4] if kept else [1, 1, 1, 1])


# -- a body that never ends ------------------------------------------------------------------


def endless_body(conn, stopped):
    """Answers the first request with a chunked body streamed as fast as the socket takes it, forever
    (until the client closes or the test ends)."""
    conn.recv(4096)
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n" % 65536 + b"a" * 65536 + b"\r\n"
    while not stopped.is_set():
        conn.sendall(chunk)


def test_a_body_that_never_ends_times_out_and_the_run_ends_on_time(raw_peer, tmp_path):
    """Reads are bounded per wake-up (uvloop reads through libuv: src/unix/stream.c, uv__read stops
    after 32 reads "to prevent loop starvation"), so --timeout and the run's end still come: each
    request is a timeout, none is an answer, the run does not overrun."""
    peer = raw_peer(endless_body)
    started = time.monotonic()
    summary = run(peer.url, tmp_path, connections=2, duration_s=2.0, timeout_s=0.5)
    assert time.monotonic() - started < 15
    assert summary["requests"] == 0
    errors = summary["errors"]
    assert errors.pop("timeout") >= 2  # two slots, each timed out at least once in 2 s
    assert set(errors) <= {"abandoned_at_stop"}


def test_a_body_that_never_ends_is_abandoned_at_the_runs_end(raw_peer, tmp_path):
    peer = raw_peer(endless_body)
    started = time.monotonic()
    summary = run(peer.url, tmp_path, connections=2, duration_s=1.0, timeout_s=30.0)
    assert time.monotonic() - started < 15
    assert (summary["requests"], summary["errors"]) == (0, {"abandoned_at_stop": 2})


@pytest.mark.parametrize("coding", [b"gzip", b"chunked, gzip"])
def test_a_body_whose_last_coding_is_not_chunked_ends_at_the_servers_close(raw_peer, tmp_path, coding):
    """RFC 9112 section 6.3 rule 4, as the core reads it: an answer at EOF, not eof_before_response."""
    received = Requests()

    def answer(conn, n):
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + coding + b"\r\n\r\nsome bytes")
        return False  # close

    peer = raw_peer(lambda conn, stopped: serve(received, answer, conn, stopped))
    summary = run(peer.url, tmp_path, connections=1, requests=3, duration_s=None)
    assert_oracle(summary, received, taken=3)
    assert (summary["status"], summary["errors"]) == ({"200": 3}, {})


def test_a_reset_in_the_middle_of_a_body_is_econnreset(raw_peer, tmp_path):
    received = Requests()

    def answer(conn, n):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nten bytes.")
        time.sleep(0.02)  # the head and part of the body are read first
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST
        return False

    peer = raw_peer(lambda conn, stopped: serve(received, answer, conn, stopped))
    summary = run(peer.url, tmp_path, connections=2, requests=6, duration_s=None)
    assert_oracle(summary, received, taken=6)
    assert (summary["requests"], summary["errors"]) == (0, {"ECONNRESET": 6})
