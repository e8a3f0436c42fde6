"""The doctor's probe of a target: two real requests, TCP_INFO, who closes first (I/O)."""

from __future__ import annotations

import errno
import socket
import ssl
import time

import httptools

from twload.doctor.rules import TargetFacts
from twload.kernel import sockdiag
from twload.kernel.linger import LINGER_RST
from twload.kernel.tcpinfo import tcp_info
from twload.plan import Target, is_loopback


class SwitchedProtocols(Exception):
    """The target answered a plain GET with 101 Switching Protocols."""


SWITCHED = ("it answered a plain GET with 101 Switching Protocols: a load test would count every request "
            "as unexpected_upgrade")


def _exchange(target: Target, request: bytes, timeout: float) -> tuple[socket.socket, bool, bool, float]:
    """Send one request; return (socket, response complete, server closed after it, the connect's seconds).
    1xx interim heads (100 Continue, 103 Early Hints) are skipped: the final response is the one that counts."""
    started = time.monotonic()
    sock = socket.create_connection(target.address[:2], timeout=timeout)
    connect_s = time.monotonic() - started
    if target.scheme == "https":  # the doctor looks at TCP, not at the certificate
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        sock = context.wrap_socket(sock, server_hostname=target.host)
    done = {"complete": False, "switched": False}

    class Proto:
        def on_message_complete(self) -> None:
            status = parser.get_status_code()
            if status == 101:
                done["switched"] = True  # llhttp stops after it: feed_data raises
            elif status >= 200:
                done["complete"] = True

    parser = httptools.HttpResponseParser(Proto())
    sock.sendall(request)
    closed = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        if not data:
            closed = True
            break
        try:
            parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
            sock.close()
            if done["switched"]:
                raise SwitchedProtocols from None
            raise
        if done["complete"]:
            sock.settimeout(0.3)  # does the server close right after the response?
            try:
                closed = sock.recv(1) == b""
            except TimeoutError:
                closed = False
            break
    return sock, done["complete"], closed, connect_s


def no_free_port(address: str, port: int) -> str:
    """EADDRNOTAVAIL: every local port towards the target is held; say by what (sock_diag)."""
    try:
        held = sockdiag.count_states_to(address, port)
    except OSError:
        return "no free local port (EADDRNOTAVAIL)"
    time_wait = held.get("TIME_WAIT", 0)
    return (f"no free local port (EADDRNOTAVAIL): {time_wait} client sockets towards it are in TIME_WAIT "
            f"(up to 60 s each), {sum(held.values()) - time_wait} in other states; what follows assumes "
            "the target's timestamps from this client's settings")


def probe(target: Target, timeout: float = 3.0) -> TargetFacts:
    address, port = target.address[0], target.port
    loopback = is_loopback(target)
    head = f"GET {target.path} HTTP/1.1\r\nHost: {target.host_header}\r\nUser-Agent: twload-doctor\r\n"
    try:
        sock, complete, closed, connect_s = _exchange(target, (head + "\r\n").encode(), timeout)
        info = tcp_info(sock)
        keepalive = complete and not closed
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)  # leave no TIME_WAIT behind
        sock.close()
        sock, complete2, closed2, connect2_s = _exchange(target, (head + "Connection: close\r\n\r\n").encode(),
                                                         timeout)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
        sock.close()
    except (OSError, httptools.HttpParserError, SwitchedProtocols) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        if isinstance(exc, SwitchedProtocols):
            reason = SWITCHED
        elif isinstance(exc, httptools.HttpParserError):
            reason = "the target does not speak HTTP"
        elif getattr(exc, "errno", None) == errno.EADDRNOTAVAIL:
            reason = no_free_port(address, port)
        return TargetFacts(address, port, loopback, reachable=False, error=reason)
    return TargetFacts(
        address, port, loopback, timestamps=info.timestamps, rtt_us=info.rtt_us,
        server_closes_first=closed2 if complete2 else None, keepalive=keepalive,
        connect_s=round(max(connect_s, connect2_s), 3),
    )
