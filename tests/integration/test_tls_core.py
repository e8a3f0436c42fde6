"""https:// on the compiled core (--engine core, its epoll backend; issue #30 stage 1), against
`twload serve --tls-cert/--tls-key`, nginx with TLS, and hand-made TLS peers, with trustme certificates.

The bad-TLS peers answer their first connection well: that one is the pre-flight probe's, which would
otherwise say the one clear line itself before any worker runs (tested apart, last); every later
connection, the core's, gets the fault, so each is counted by the core under its name.
"""

import json
import os
import socket
import ssl
import time

import pytest
import trustme

from tests.conftest import NGINX, Nginx, run_cli, time_wait_until
from twload.engine.supervisor import run_to_folder
from twload.kernel.resolve import parse_target
from twload.plan import Plan

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture(scope="module")
def certs(tls_certs, tmp_path_factory):
    """The suite's trustme certificates (tests/conftest.py TlsCerts: good, wrong_name, untrusted,
    expired, and ca.pem), and a self-signed one: a CA's own certificate served as the leaf."""
    root = tmp_path_factory.mktemp("certs")
    for path in tls_certs.root.iterdir():
        (root / path.name).write_bytes(path.read_bytes())
    own = trustme.CA()
    own.cert_pem.write_to_path(str(root / "self_signed.pem"))
    own.private_key_pem.write_to_path(str(root / "self_signed.key"))
    return root


def server_context(certs, name: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certs / f"{name}.pem"), str(certs / f"{name}.key"))
    return context


def run(url, tmp_path, certs, **kw):
    plan = Plan(target=parse_target(url), url=url, workers=kw.pop("workers", 1), engine="core",
                cacert=str(certs / "ca.pem"), **kw)
    summary = run_to_folder(plan, tmp_path / "run")
    time.sleep(0.3)  # let the closing handshakes settle into their final states
    return summary


N = 200
# who holds TIME_WAIT after each strategy, over TLS as over plain TCP (test_close_strategies.py)
WHERE = {"fin": {"client": N, "server": 0}, "server": {"client": 0, "server": N},
         "rst": {"client": 0, "server": 0}, "keepalive": {"client": 4, "server": 0}}


@pytest.mark.skipif(NGINX is None, reason="SKIPPED LOUDLY: nginx is not installed (Debian package nginx)")
@pytest.mark.parametrize("close", list(WHERE))
def test_core_https_counts_and_time_wait_against_nginx(certs, tmp_path, close):
    server = Nginx(tls=(certs / "good.pem", certs / "good.key"))
    try:
        summary = run(server.url, tmp_path, certs, close=close, requests=N, duration_s=None, connections=4)
        tw = time_wait_until(server.port, lambda tw: tw == WHERE[close])
        assert summary["requests"] == N and summary["errors"] == {}, summary["errors"]
        assert (summary["engine"], summary["io"]) == ("core", "epoll")
        assert summary["connections_opened"] == (4 if close == "keepalive" else N)
        assert summary["tls_handshake_us"]["p50"] > 0 and summary["tls_handshake_us"]["mean"] > 0
        assert tw == WHERE[close]
        assert server.quit_and_count() == N
    finally:
        server.stop()


@pytest.mark.parametrize("close", list(WHERE))
def test_core_https_counts_against_twload_serve(twload_server, certs, tmp_path, close):
    server = twload_server("--tls-cert", str(certs / "good.pem"), "--tls-key", str(certs / "good.key"))
    summary = run(server.url, tmp_path, certs, close=close, requests=N, duration_s=None, connections=4)
    assert summary["requests"] == N and summary["errors"] == {}, summary["errors"]
    assert summary["connections_opened"] == (4 if close == "keepalive" else N)
    if close in ("server", "rst"):
        # fin and keepalive: asyncio answers our close_notify with its own after our close(), and our
        # kernel answers that with a RST (the client's TIME_WAIT goes: 149 of 200 stayed, once), so
        # where they leave TIME_WAIT is asserted against nginx, which does not answer it. Under server
        # asyncio waits for our close_notify before its FIN: the answer after tls_answer_delay (tls.c).
        assert time_wait_until(server.port, lambda tw: tw == WHERE[close]) == WHERE[close]
    assert server.stop() == N


def test_core_https_handshake_that_never_ends_is_a_connect_timeout(raw_peer, certs, tmp_path):
    """The handshake counts against --connect-timeout (docs/ARCHITECTURE.md "Error names")."""
    def silent(conn: socket.socket) -> None:
        conn.recv(4096)  # the ClientHello, never answered
        time.sleep(2)
    peer = FaultyTlsPeer(raw_peer, certs, silent)
    proc = core_run(peer.url, tmp_path, "--cacert", str(certs / "ca.pem"), "--connect-timeout", "200ms")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    summary = json.loads(proc.stdout)
    assert set(summary["errors"]) == {"connect_timeout"} and summary["requests"] == 0, summary["errors"]


def test_core_https_cli_json_and_insecure(twload_server, certs, tmp_path):
    server = twload_server("--tls-cert", str(certs / "untrusted.pem"), "--tls-key", str(certs / "untrusted.key"))
    proc = run_cli("run", server.url, "-n", "100", "-c", "2", "-w", "1", "--engine", "core", "--insecure",
                   "--io", "auto", "--json", "--out", str(tmp_path / "k"))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["requests"] == 100 and summary["errors"] == {}
    assert (summary["engine"], summary["io"]) == ("core", "epoll")  # https runs on epoll, whatever --io auto finds
    assert server.stop() == 100


class FaultyTlsPeer:
    """A TLS peer whose first connection (the pre-flight's) handshakes with the good certificate, and
    whose later ones get `fault`: a callable(sock) run in the connection's own thread."""

    def __init__(self, raw_peer, certs, fault) -> None:
        self.good = server_context(certs, "good")
        self.fault = fault
        self.seen = 0
        self.peer = raw_peer(self.handle)
        self.url = f"https://127.0.0.1:{self.peer.port}/"

    def handle(self, conn: socket.socket, stopped) -> None:
        self.seen += 1  # connections are accepted one at a time, in the accept thread's order
        if self.seen == 1:
            with self.good.wrap_socket(conn, server_side=True):
                return
        self.fault(conn)


def tls_with(context: ssl.SSLContext):
    """A fault: a whole handshake with this context (its certificate), then requests answered."""
    def fault(conn: socket.socket) -> None:
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                while tls.recv(4096):
                    tls.sendall(RESPONSE)
        except (ssl.SSLError, OSError):
            pass  # the client refused the certificate
    return fault


def read_hello_then(reply: bytes):
    """A fault: the ClientHello is read, then `reply` is sent (maybe nothing) and the connection closes."""
    def fault(conn: socket.socket) -> None:
        conn.recv(4096)
        if reply:
            conn.sendall(reply)
    return fault


def first_flight_then_close(context: ssl.SSLContext):
    """A fault, TLS 1.2: the server's first flight (ServerHello .. ServerHelloDone) goes out through a
    memory BIO; the client's answer (its key exchange and Finished) is read, so the close that follows
    is a FIN and not a reset (unread bytes at close() make it one: net/ipv4/tcp.c __tcp_close), and
    the server's Finished never comes."""
    context.maximum_version = ssl.TLSVersion.TLSv1_2

    def fault(conn: socket.socket) -> None:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_side=True)
        incoming.write(conn.recv(16384))  # the ClientHello
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass  # it waits for the client's answer: the flight is ready to go
        conn.sendall(outgoing.read())
        conn.settimeout(0.2)  # the client's key exchange, ChangeCipherSpec and Finished, maybe in parts
        try:
            while conn.recv(16384):
                pass
        except TimeoutError:
            pass  # all read: the client now waits for the server's Finished
    return fault


def core_run(url, tmp_path, *extra):
    return run_cli("run", url, "-d", "1s", "-c", "2", "-w", "1", "--engine", "core", "--json",
                   "--out", str(tmp_path / "r"), *extra)


@pytest.mark.parametrize("fault, name, reason", [
    ("wrong_name", "tls_cert_verify_failed", "certificate verify failed: IP address mismatch"),
    # a certificate from a CA in no file the client is given
    ("untrusted", "tls_cert_verify_failed", "certificate verify failed: unable to get local issuer"),
    ("self_signed", "tls_cert_verify_failed", "certificate verify failed: self-signed certificate"),
    ("expired", "tls_cert_verify_failed", "certificate verify failed: certificate has expired"),
    ("mid_handshake", "tls_unexpected_eof", None),
    # TLS 1.2: the server's first flight sent, the client's read, then the close before the server's
    # Finished (in TLS 1.3 the client's handshake is complete once it sent its Finished: no such point)
    ("mid_server_flight", "tls_unexpected_eof", None),
    ("plain_http", "tls_on_plain_http", 'not TLS: the peer answered the ClientHello with "HTTP/"'),
])
def test_core_names_each_tls_failure(raw_peer, certs, tmp_path, fault, name, reason):
    faults = {
        "wrong_name": tls_with(server_context(certs, "wrong_name")),
        "untrusted": tls_with(server_context(certs, "untrusted")),
        "self_signed": tls_with(server_context(certs, "self_signed")),
        "expired": tls_with(server_context(certs, "expired")),
        "mid_handshake": read_hello_then(b""),
        "mid_server_flight": first_flight_then_close(server_context(certs, "good")),
        "plain_http": read_hello_then(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    }
    peer = FaultyTlsPeer(raw_peer, certs, faults[fault])
    extra = ["--cacert", str(certs / "ca.pem")]
    proc = core_run(peer.url, tmp_path, *extra)
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 1, proc.stderr  # no request got a response
    summary = json.loads(proc.stdout)
    assert summary["engine"] == "core" and summary["requests"] == 0
    assert set(summary["errors"]) == {name}, summary["errors"]
    assert summary["errors"][name] >= 2
    if reason:
        assert summary["tls_reason"].startswith(reason), summary["tls_reason"]
    text = (tmp_path / "r" / "summary.json").read_text()
    assert json.loads(text)["errors"] == summary["errors"]


@pytest.mark.parametrize("fault, words", [
    ("wrong_name", "certificate verify failed: IP address mismatch"),
    ("untrusted", "certificate verify failed"),
    ("self_signed", "certificate verify failed: self-signed certificate"),
    ("expired", "certificate verify failed: certificate has expired"),
    ("mid_handshake", "closed the connection during the TLS handshake"),
    ("plain_http", "did not answer TLS"),
])
def test_core_bad_tls_at_the_first_connection_is_one_line(raw_peer, certs, tmp_path, fault, words):
    """When every connection has the fault, the pre-flight's handshake meets it first: one line, exit 1."""
    faults = {
        "wrong_name": tls_with(server_context(certs, "wrong_name")),
        "untrusted": tls_with(server_context(certs, "untrusted")),
        "self_signed": tls_with(server_context(certs, "self_signed")),
        "expired": tls_with(server_context(certs, "expired")),
        "mid_handshake": read_hello_then(b""),
        "plain_http": read_hello_then(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    }
    peer = raw_peer(lambda conn, stopped: faults[fault](conn))
    url = f"https://127.0.0.1:{peer.port}/"
    extra = [] if fault in ("untrusted", "self_signed") else ["--cacert", str(certs / "ca.pem")]
    proc = run_cli("run", url, "-n", "10", "-c", "2", "-w", "1", "--engine", "core", *extra, cwd=str(tmp_path))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], proc.stderr


def test_core_http_to_a_tls_server_is_a_named_error(twload_server, certs, tmp_path):
    """http:// to a TLS port: the server takes the request for a broken ClientHello and closes."""
    server = twload_server("--tls-cert", str(certs / "good.pem"), "--tls-key", str(certs / "good.key"))
    url = "http://" + server.url.split("://", 1)[1]
    proc = core_run(url, tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["engine"] == "core" and summary["requests"] == 0
    assert set(summary["errors"]) == {"eof_before_response"}, summary["errors"]


def pumped(conn: socket.socket, tls: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, step):
    """step() of a server's TLS over memory BIOs, its records written to conn and the client's read
    from it as it asks; step's result."""
    while True:
        try:
            result = step()
            conn.sendall(outgoing.read())
            return result
        except ssl.SSLWantReadError:
            conn.sendall(outgoing.read())
            data = conn.recv(16384)
            if not data:
                raise ConnectionError("the client closed") from None
            incoming.write(data)


def read_request(conn: socket.socket, tls: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO) -> None:
    """The handshake, then the client's request head."""
    pumped(conn, tls, incoming, outgoing, tls.do_handshake)
    head = b""
    while b"\r\n\r\n" not in head:
        head += pumped(conn, tls, incoming, outgoing, lambda: tls.read(16384))


CLOSING_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


def answer_over_bios(conn: socket.socket, context: ssl.SSLContext,
                     response: bytes) -> tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    """A hand-made server's one exchange over memory BIOs: the handshake, the client's request head,
    then `response` written; its records wait in the outgoing BIO for the caller to send."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=True)
    read_request(conn, tls, incoming, outgoing)
    tls.write(response)
    return tls, incoming, outgoing


def close_notify_then_late_close(context: ssl.SSLContext, linger_s: float = 0.2, notify_after_s: float = 0.0):
    """A server as nginx is on a busy host: the response with Connection: close, its close_notify
    `notify_after_s` later (apart, the client reads it on its own), and its close() `linger_s` later,
    without reading what came meanwhile (nginx does not wait for the client's close_notify). The
    client's close_notify, answered in that gap, is then unread at the close, so the close is a RST
    (net/ipv4/tcp.c: __tcp_close)."""
    def serve(conn: socket.socket, stopped) -> None:
        # as nginx (tcp_nodelay on): the close_notify leaves when written, not when Nagle lets it
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls, _, outgoing = answer_over_bios(conn, context, CLOSING_RESPONSE)
            conn.sendall(outgoing.read())
            time.sleep(notify_after_s)
            try:
                tls.unwrap()  # writes the close_notify; the client's is not waited for
            except ssl.SSLWantReadError:
                pass
            conn.sendall(outgoing.read())
            time.sleep(linger_s)
        except (ssl.SSLError, ConnectionError):
            pass
    return serve


def run_server_close(peer, certs, tmp_path, requests: int, *extra: str) -> dict:
    """`twload run --close server` of `requests` over 2 connections against a hand-made TLS peer: its
    summary, once the run ended cleanly."""
    proc = run_cli("run", f"https://127.0.0.1:{peer.port}/", "-n", str(requests), "-c", "2", "-w", "1",
                   "--close", "server", "--cacert", str(certs / "ca.pem"), *extra, "--json",
                   "--out", str(tmp_path / "r"))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


def test_a_reset_after_the_servers_close_notify_is_its_close(raw_peer, certs, tmp_path):
    """--close server: the server's close_notify says it closes; if its FIN is late (tls_answer_delay,
    tls.c) the core answers with its own, and the server's close() then finds it unread and
    resets. That reset is the close the server announced, provoked by the answer: not ECONNRESET
    (seen before the fix in tls.c: one in about 9,000 connections against nginx on a loaded host, and
    here {'ECONNRESET': 10})."""
    peer = raw_peer(close_notify_then_late_close(server_context(certs, "good")))
    summary = run_server_close(peer, certs, tmp_path, 10)
    assert summary["requests"] == 10 and summary["errors"] == {}, summary["errors"]


def test_a_server_that_closes_alone_a_little_late_keeps_every_time_wait(raw_peer, certs, tmp_path):
    """--close server against a server that sends its close_notify and closes 20 ms later without
    waiting for ours (nginx descheduled between the two on a busy host: one connection in 300 of a CI
    run). The core waits for the first such server's FIN longer than that, learns that it closes
    alone, and from then on does not answer before its FIN: no close finds our close_notify unread and
    resets, so the server keeps the TIME_WAIT of every connection (an answer after 2 ms, as before,
    left it none)."""
    peer = raw_peer(close_notify_then_late_close(server_context(certs, "good"), linger_s=0.02, notify_after_s=0.005))
    summary = run_server_close(peer, certs, tmp_path, 40)
    assert summary["requests"] == 40 and summary["errors"] == {}, summary["errors"]
    want = {"client": 0, "server": 40}
    assert time_wait_until(peer.port, lambda tw: tw == want) == want


def close_notify_with_the_response_then_wait(context: ssl.SSLContext, answered: list):
    """A server as Python's asyncio is: its close_notify in the same segment as the response, then no
    FIN until the client's close_notify answers it (each answer it gets is appended to `answered`)."""
    def serve(conn: socket.socket, stopped) -> None:
        try:
            tls, incoming, outgoing = answer_over_bios(conn, context, CLOSING_RESPONSE)
            pumped(conn, tls, incoming, outgoing, tls.unwrap)  # one sendall: response and close_notify
            answered.append(1)
        except (ssl.SSLError, ConnectionError):
            pass
    return serve


def test_a_close_notify_read_with_the_response_is_answered(raw_peer, certs, tmp_path):
    """The core reads every record OpenSSL already holds in one call (tls.c: gather), so a close_notify
    behind the response is consumed with it and the socket has nothing more to say. The close_notify
    must still be answered, or a server that waits for the answer before its FIN (asyncio) never
    closes: each of the 10 connections ends with the server's close after our answer, none by
    --timeout (no_server_close)."""
    answered: list = []
    peer = raw_peer(close_notify_with_the_response_then_wait(server_context(certs, "good"), answered))
    summary = run_server_close(peer, certs, tmp_path, 10, "--timeout", "3s")
    assert summary["requests"] == 10 and summary["errors"] == {}, summary["errors"]
    assert len(answered) == 10


def response_then_a_forged_record(context: ssl.SSLContext):
    """A server whose keep-alive response is followed, in the same segment, by an application-data
    record it did not seal (its bytes random, so its authentication fails), then silence until the
    client closes."""
    def serve(conn: socket.socket, stopped) -> None:
        try:
            _, _, outgoing = answer_over_bios(conn, context, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            conn.sendall(outgoing.read() + b"\x17\x03\x03\x00\x20" + os.urandom(32))
            conn.settimeout(5)
            while conn.recv(16384):
                pass
        except (ssl.SSLError, OSError):
            pass
    return serve


def test_a_failure_read_behind_a_response_is_counted_after_it(raw_peer, certs, tmp_path):
    """The read that takes the response also meets the forged record behind it (tls.c: gather): the
    response counts, and the failure is held for the next call. The next request's write comes first
    and says it: that request ends as tls_error, with OpenSSL's reason, at once (it was EPIPE, the
    write's own failure on the broken session, and the held failure was lost)."""
    peer = raw_peer(response_then_a_forged_record(server_context(certs, "good")))
    proc = run_cli("run", f"https://127.0.0.1:{peer.port}/", "-n", "10", "-c", "1", "-w", "1", "--timeout", "10s",
                   "--cacert", str(certs / "ca.pem"), "--json", "--out", str(tmp_path / "r"))
    assert "Traceback" not in proc.stderr, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["requests"] == 5 and summary["errors"] == {"tls_error": 5}, (summary["requests"], summary["errors"])
    assert "bad record mac" in summary["tls_reason"]
    assert summary["duration_s"] < 5  # no request waited for its timeout
