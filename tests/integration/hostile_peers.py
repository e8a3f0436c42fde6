"""Hostile and unusual HTTP/1.1 peers on loopback, one per behaviour (issue #28): each counts the
requests it read (CountingPeer) so that a test can check the client never reports more answers
than that. What the client must count each surprise as (the error names agreed for issue #28):
tests/integration/test_hostile_peers.py."""

import os
import select
import socket
import tempfile
import time

from tests.integration.peers import CountingPeer
from twload.kernel.linger import LINGER_RST

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class DoubleAnswerPeer(CountingPeer):
    """(a) Two complete responses to each request, in one write or in two: the second was never
    asked for. In two writes, the second may reach the client after its next request went out,
    where no client can tell it from that request's answer; in one, it comes with the first."""

    def __init__(self, writes: int) -> None:
        self.writes = writes
        super().__init__()

    def respond(self, conn: socket.socket) -> bool:
        if self.writes == 1:
            self.send(conn, OK + OK)
        else:
            self.send(conn, OK)
            self.send(conn, OK)
        return True


def sized_response(size: int) -> bytes:
    """A 200 response of exactly `size` bytes (head and body)."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"
    body_len = size - len(head % 0)
    while len(head % body_len) + body_len > size:  # the length's own digits take room too
        body_len -= 1
    return head % body_len + b"x" * body_len


class BackToBackPeer(CountingPeer):
    """(b) A burst of small responses to each request, one write each, as fast as the socket takes
    them (no pause): PER_REQUEST responses of SIZE bytes, 16 KiB a request, so dozens fit one
    io_uring provided buffer (loop_uring.c BUF_SIZE, 16 KiB) and hundreds one 64 KiB read (epoll);
    whether they arrive in one read or one each is the kernel's timing. Only the first of each
    burst was asked for.

    Corked (TCP_CORK around the burst), the writes leave together, so the whole burst is in the
    client's socket before the client can send its next request. Without it, a peer descheduled
    between its writes (a loaded host) lets the client read the first response alone and send its
    next request, which the rest of the burst then answers, as any client must take it: then no
    response is left over to be named."""

    SIZE = 256
    PER_REQUEST = 64

    def __init__(self, corked: bool = False) -> None:
        self.response = sized_response(self.SIZE)
        self.corked = corked
        super().__init__()

    def respond(self, conn: socket.socket) -> bool:
        if self.corked:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        for _ in range(self.PER_REQUEST):
            self.send(conn, self.response)
        if self.corked:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
        return True


class InterimHeadsPeer(CountingPeer):
    """(c) 100 Continue and 103 Early Hints before each final response, on keep-alive (CDNs send
    103 in production). The heads go in one write, the final response in the next."""

    INTERIM = (b"HTTP/1.1 100 Continue\r\n\r\n"
               b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n")

    def respond(self, conn: socket.socket) -> bool:
        self.send(conn, self.INTERIM)
        self.send(conn, OK)
        return True


class UpgradePeer(CountingPeer):
    """(d) 101 Switching Protocols to a plain GET that asked no Upgrade, then holds the connection
    (as a WebSocket server would) until the client closes it."""

    SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"

    def respond(self, conn: socket.socket) -> bool:
        self.send(conn, self.SWITCH)
        return True


class EndlessBodyPeer(CountingPeer):
    """(e) A body that never ends, written faster than a client can read it: Content-Length far
    beyond anything sent, or chunked with no last chunk. The body comes from a file by sendfile,
    which hands the file's pages to the socket without copying them (the client must copy every
    byte out), so the client's receive queue stays full: a reader that reads while recv fills its
    buffer would never stop. Ends when the client closes (EPIPE / ECONNRESET) or the peer stops."""

    PIECE = 64 * 1024
    PIECES = 16  # a 1 MiB file, sent over and over

    def __init__(self, chunked: bool) -> None:
        if chunked:
            self.head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            piece = b"%x\r\n" % self.PIECE + b"x" * self.PIECE + b"\r\n"
        else:
            self.head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n"
            piece = b"x" * self.PIECE
        self.body = tempfile.TemporaryFile()
        self.body.write(piece * self.PIECES)
        self.body.flush()
        self.body_len = len(piece) * self.PIECES
        super().__init__()

    def respond(self, conn: socket.socket) -> bool:
        self.send(conn, self.head)
        offset = 0
        while not self.stopped.is_set():  # an OSError (the client's close) ends it too
            try:
                sent = os.sendfile(conn.fileno(), self.body.fileno(), offset, self.body_len - offset)
            except BlockingIOError:  # the socket has a timeout, so its fd is non-blocking
                select.select([], [conn], [], self.POLL_S)
                continue
            if sent == 0:
                raise OSError("sendfile sent nothing")
            offset = (offset + sent) % self.body_len  # whole pieces again from the start
        return False

    def close(self) -> None:
        super().close()
        self.body.close()


class TrailingGarbagePeer(CountingPeer):
    """(f) A complete response followed, in the same write, by bytes no request asked for."""

    def respond(self, conn: socket.socket) -> bool:
        self.send(conn, OK + b"GARBAGE\r\n")
        return True


class DuplicateLengthPeer(CountingPeer):
    """(g) Content-Length given twice with the same value, as two fields or as a list ("5, 5")."""

    RESPONSES = {
        "two_fields": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        "list": b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello",
    }

    def __init__(self, form: str) -> None:
        self.response = self.RESPONSES[form]
        super().__init__()

    def respond(self, conn: socket.socket) -> bool:
        self.send(conn, self.response)
        return True


class Http10ChunkedPeer(CountingPeer):
    """(h) An HTTP/1.0 response framed by Transfer-Encoding: chunked to a kept-alive request, then
    the connection left open: the client must close it after the message (RFC 9112 §6.1), so a
    second request on one connection (per_connection) shows the client kept it."""

    RESPONSE = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"

    def respond(self, conn: socket.socket) -> bool:
        self.send(conn, self.RESPONSE)
        return True


class MidBodyResetPeer(CountingPeer):
    """(i) Half of a response's body, a pause (so the client reads it first), then a reset:
    SO_LINGER 0, so close sends RST (net/ipv4/tcp.c __tcp_close, the sk_lingertime == 0 branch)."""

    PARTIAL = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"

    def respond(self, conn: socket.socket) -> bool:
        self.send(conn, self.PARTIAL)
        time.sleep(0.05)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
        return False


class HalfClosePeer(CountingPeer):
    """(j) shutdown(SHUT_WR) (our FIN) after part of a response, or before any response, then keeps
    reading until the client closes: the client sees the end of the stream, not a reset."""

    PARTIAL = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"

    def __init__(self, when: str) -> None:
        self.partial = {"mid_body": self.PARTIAL, "before_response": b""}[when]
        super().__init__()

    def respond(self, conn: socket.socket) -> bool:
        self.send(conn, self.partial)
        conn.shutdown(socket.SHUT_WR)
        return True
