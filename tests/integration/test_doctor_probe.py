"""`twload doctor URL`'s probe of the target against servers that surprise it (issue #28): interim
heads before the response, a 101 to a plain GET. Real loopback peers (tests/conftest.py raw_peer)."""

from __future__ import annotations

import socket
import time

from tests.conftest import run_cli
from twload.doctor.probe import probe
from twload.kernel.resolve import parse_target

FINAL = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
CLOSING = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


def read_head(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_interim_heads_are_not_the_response(raw_peer):
    """100 Continue and 103 Early Hints come first; the final response decides. The probe used to take
    the 100 as the response, then read the final one while it waited for the close: a target that
    closes after Connection: close was reported as one that does not."""

    def interims_first(conn, stopped):
        request = read_head(conn)
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n")
        time.sleep(0.05)  # the final response in a later read
        conn.sendall(CLOSING if b"connection: close" in request.lower() else FINAL)
        if b"connection: close" not in request.lower():
            conn.recv(4096)  # keep-alive: until the client goes

    peer = raw_peer(interims_first)
    facts = probe(parse_target(peer.url), timeout=3.0)
    assert facts.reachable, facts.error
    assert facts.keepalive is True
    assert facts.server_closes_first is True


def test_a_101_to_a_plain_get_is_one_line_not_a_traceback(raw_peer):
    def switches(conn, stopped):
        read_head(conn)
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x02hi")
        conn.recv(4096)

    peer = raw_peer(switches)
    facts = probe(parse_target(peer.url), timeout=3.0)
    assert not facts.reachable and facts.error is not None and "101 Switching Protocols" in facts.error
    proc = run_cli("doctor", peer.url)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode == 2, proc.stderr  # a problem finding
    lines = [line for line in proc.stdout.splitlines() if "101 Switching Protocols" in line]
    assert len(lines) == 1 and "problem" in lines[0], proc.stdout
