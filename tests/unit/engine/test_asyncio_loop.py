"""The client's response handling, fed byte splits the network could produce.

The Connection protocol is driven directly (sans-IO style): a recording transport
stands in for the socket so every split point of a response can be tried.
"""

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twload.engine.asyncio_loop import Worker
from twload.engine.http1 import build_request, head_declares_length
from twload.kernel.resolve import parse_target
from twload.plan import MAX_HEADER_BYTES, Plan


class RecordingTransport:
    def __init__(self):
        self.written = []
        self.closed = None  # "close" or "abort"

    def write(self, data):
        self.written.append(data)

    def close(self):
        self.closed = self.closed or "close"

    def abort(self):
        self.closed = self.closed or "abort"

    def is_closing(self):
        return self.closed is not None


@pytest.fixture(scope="module")
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def make_conn(loop, close="keepalive", requests=1, method="GET"):
    """requests=None: a run bound by its duration, whose kept-alive connections run free."""
    plan = Plan(target=parse_target("http://127.0.0.1:9/"), url="http://127.0.0.1:9/",
                close=close, requests=requests, duration_s=None if requests else 1.0, method=method)
    worker = Worker(plan, 0, 1, requests)
    worker.loop = loop
    worker.follow_plan()
    assert worker.take()  # the slot takes the first request's token before connecting
    conn = worker.connection_class(worker)
    transport = RecordingTransport()
    conn.connection_made(transport)
    return worker, conn, transport


def feed(conn, data, cuts):
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for a, b in zip(points, points[1:], strict=False):
        if b > a:
            conn.data_received(data[a:b])


CL = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello"
CHUNKED = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
CLOSE_DELIMITED = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody until EOF"
cuts = st.lists(st.integers(0, 10_000), max_size=8)


@settings(max_examples=60, deadline=None)
@given(cuts=cuts, response=st.sampled_from([CL, CHUNKED]))
def test_length_framed_response_any_split(loop, cuts, response):
    worker, conn, transport = make_conn(loop, close="fin")
    feed(conn, response, cuts)
    assert worker.iv.requests == 1
    assert not worker.iv.errors
    assert transport.closed == "close"  # fin: the client closes as soon as the response is complete


@settings(max_examples=40, deadline=None)
@given(cuts=cuts)
def test_close_delimited_body_completes_at_eof(loop, cuts):
    worker, conn, transport = make_conn(loop, close="server")
    feed(conn, CLOSE_DELIMITED, cuts)
    assert worker.iv.requests == 0  # not complete until the server's FIN
    assert conn.eof_received() is False
    assert worker.iv.requests == 1 and not worker.iv.errors


@settings(max_examples=40, deadline=None)
@given(cuts=cuts)
def test_server_close_waits_for_eof_after_content_length(loop, cuts):
    worker, conn, transport = make_conn(loop, close="server")
    feed(conn, CL.replace(b"Server: x", b"Connection: close"), cuts)
    assert worker.iv.requests == 1
    assert transport.closed is None  # must not close before the server's FIN: that would race it
    assert conn.awaiting_eof
    conn.eof_received()
    assert not worker.iv.errors


@settings(max_examples=40, deadline=None)
@given(cuts=cuts, keep=st.integers(1, 40))
def test_truncated_length_framed_body_is_an_error(loop, cuts, keep):
    worker, conn, _ = make_conn(loop, close="server")
    data = CL[: len(CL) - 5 + min(keep, 4)]  # head plus at most 4 of 5 body bytes
    feed(conn, data, cuts)
    conn.eof_received()
    assert worker.iv.requests == 0
    assert worker.iv.errors == {"eof_before_response": 1}


@settings(max_examples=40, deadline=None)
@given(garbage=st.binary(min_size=1, max_size=64).filter(lambda b: b[:1] not in (b"H", b"\r", b"\n")))
def test_non_http_peer_is_a_protocol_error(loop, garbage):
    worker, conn, transport = make_conn(loop)
    conn.data_received(garbage + b"\r\n\r\n")
    assert worker.iv.requests == 0
    assert worker.iv.errors == {"protocol_error": 1}
    assert transport.closed == "abort"


def test_oversized_head_is_counted(loop):
    worker, conn, transport = make_conn(loop)
    conn.data_received(b"HTTP/1.1 200 OK\r\n")
    for _ in range(MAX_HEADER_BYTES // 1000 + 1):
        conn.data_received(b"X-Filler: " + b"a" * 988 + b"\r\n")
    assert worker.iv.errors == {"response_head_too_large": 1}
    assert transport.closed == "abort"


@settings(max_examples=60, deadline=None)
@given(cuts=cuts)
def test_free_running_keepalive_any_split(loop, cuts):
    worker, conn, transport = make_conn(loop, requests=None)
    assert worker.free_run
    # each after its request: one read never holds two (docs/ARCHITECTURE.md "Server surprises")
    for response in (CL, CHUNKED, CL):
        feed(conn, response, cuts)
    assert worker.iv.requests == 3 and not worker.iv.errors
    assert transport.written == [worker.request] * 4  # the first request, then one per response
    assert len(worker.iv.latency) == 3
    assert worker.iv.snapshot().status == {200: 2, 201: 1}
    worker.stop()  # the run ends: the response in flight is the connection's last
    conn.data_received(CL)
    assert worker.iv.requests == 4 and len(transport.written) == 4
    assert transport.closed == "close"


@settings(max_examples=40, deadline=None)
@given(cut=st.integers(1, len(CL) - 1))
def test_a_response_read_with_the_previous_one_is_unsolicited(loop, cut):
    """Two responses in one read: the second was sent before its request could have arrived."""
    worker, conn, transport = make_conn(loop, requests=None)
    conn.data_received(CL + CL[:cut])
    assert worker.iv.requests == 1 and worker.iv.errors == {"unsolicited_response": 1}
    assert transport.written == [worker.request] and transport.closed == "abort"


def test_oversized_head_completed_in_a_later_read_is_counted(loop):
    worker, conn, transport = make_conn(loop, requests=None)
    filler = b"X-Filler: " + b"a" * (MAX_HEADER_BYTES - 200) + b"\r\n"
    conn.data_received(b"HTTP/1.1 200 OK\r\n" + filler)
    conn.data_received(b"X-More: " + b"b" * 300 + b"\r\nContent-Length: 0\r\n\r\n")
    assert worker.iv.errors == {"response_head_too_large": 1}
    assert worker.iv.requests == 0 and transport.closed == "abort"


def test_keepalive_sends_next_request_until_budget(loop):
    worker, conn, transport = make_conn(loop, requests=3)
    for _ in range(3):
        conn.data_received(CL)
    assert worker.iv.requests == 3
    assert len(transport.written) == 3
    assert transport.closed == "close"  # budget spent: the client closes


def test_keepalive_respects_server_close(loop):
    worker, conn, transport = make_conn(loop, requests=5)
    conn.data_received(CL.replace(b"Server: x", b"Connection: close"))
    assert len(transport.written) == 1  # no second request on a connection the server closes
    assert conn.awaiting_eof and transport.closed is None


def test_head_request_completes_at_headers(loop):
    worker, conn, _ = make_conn(loop, method="HEAD", close="fin")
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    assert worker.iv.requests == 1


def test_status_codes_counted(loop):
    worker, conn, _ = make_conn(loop, requests=2)
    conn.data_received(CL)
    conn.data_received(CL.replace(b"200 OK", b"503 Service Unavailable"))
    assert worker.iv.snapshot().status == {200: 1, 503: 1}


def test_request_bytes():
    plan = Plan(target=parse_target("http://127.0.0.1:8080/x?y=1"), url="", method="POST",
                headers=(("X-A", "1"),), body=b"abc", close="server")
    req = build_request(plan, connection_close=True)
    assert req.startswith(b"POST /x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n")
    assert b"\r\nX-A: 1\r\n" in req and b"\r\nContent-Length: 3\r\n" in req
    assert b"\r\nConnection: close\r\n\r\nabc" in req


def test_head_declares_length():
    assert head_declares_length(CL)
    assert head_declares_length(CHUNKED)
    assert not head_declares_length(CLOSE_DELIMITED)
    assert not head_declares_length(b"HTTP/1.1 200 OK\r\n\r\nContent-Length: 5\r\n")  # in the body
    for codings in (b"gzip", b"chunked, gzip", b"chunked\r\nTransfer-Encoding: gzip"):  # rule 4: until EOF
        assert not head_declares_length(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + codings + b"\r\n\r\n")
    assert head_declares_length(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\ntransfer-encoding: Chunked \r\n\r\n")


def test_head_requests_on_a_kept_alive_connection(loop):
    worker, conn, transport = make_conn(loop, method="HEAD", requests=3)
    for _ in range(3):
        conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    assert worker.iv.requests == 3 and not worker.iv.errors
    assert len(transport.written) == 3


@pytest.mark.parametrize("status, method", [(b"204 No Content", "GET"), (b"304 Not Modified", "GET"),
                                            (b"200 OK", "HEAD")])
@settings(max_examples=20, deadline=None)
@given(cuts=cuts)
def test_bodyless_responses_end_at_the_blank_line_with_both_framings(loop, status, method, cuts):
    worker, conn, transport = make_conn(loop, requests=None, method=method)
    # llhttp stops at the colon of the second of the two fields, whichever comes first
    head = b"HTTP/1.1 " + status + b"\r\ncontent-length: 5\r\nTransfer-Encoding: chunked\r\nX: y\r\n\r\n"
    feed(conn, head, cuts)
    feed(conn, head.replace(b"content-length: 5\r\nTransfer-Encoding: chunked",
                            b"Transfer-Encoding: chunked\r\nContent-Length: 5"), cuts)
    assert worker.iv.requests == 2 and not worker.iv.errors
    assert transport.written == [worker.request] * 3 and transport.closed is None


def test_both_framings_and_what_is_left_without_content_length():
    from twload.engine.http1 import declares_both_framings, without_content_length

    head = b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nX: content-length: 1\r\n\r\n"
    assert declares_both_framings(head)
    assert not declares_both_framings(CL) and not declares_both_framings(CHUNKED)
    assert not declares_both_framings(head.replace(b"Content-Length:", b"Content-Length :"))  # llhttp refuses it
    assert without_content_length(head) == (b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n"
                                            b"X: content-length: 1\r\n\r\n")


@settings(max_examples=40, deadline=None)
@given(cuts=cuts, version=st.sampled_from([b"1.0", b"1.1"]), interim=st.booleans())
def test_http_1_0_with_transfer_encoding_is_not_reused_however_it_is_split(loop, cuts, version, interim):
    worker, conn, transport = make_conn(loop, requests=None)
    response = (b"HTTP/1.1 100 Continue\r\n\r\n" if interim else b"") + (
        b"HTTP/" + version + b" 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n")
    feed(conn, response, cuts)
    assert worker.iv.requests == 1 and not worker.iv.errors
    if version == b"1.0":  # RFC 9112 section 6.1: read by the chunked coding, then not reused:
        # the server said keep-alive, so no FIN is coming and the client closes it
        assert transport.written == [worker.request] and transport.closed == "close" and not conn.awaiting_eof
    else:
        assert transport.written == [worker.request] * 2
