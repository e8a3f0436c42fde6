"""The pre-flight's I/O: one probe connection to the target, the sysctls, and the client sockets
already held towards it, read before the run (`gather_facts`) and once a second during it
(`PortProbe`). What the facts mean for the plan (budget, warning, wall, advice) is decided by the
pure twload.doctor.preflight.
"""

from __future__ import annotations

import errno
import socket
import ssl
import time
from collections import Counter
from dataclasses import replace

from twload.doctor.preflight import Facts
from twload.engine.supervisor import RunError
from twload.engine.tls import tls_context
from twload.kernel import sockdiag
from twload.kernel.linger import LINGER_RST
from twload.kernel.sysctl import gather
from twload.kernel.tcpinfo import TcpInfo, tcp_info
from twload.metrics import errno_name
from twload.plan import Plan
from twload.ports import timewait


def gather_facts(plan: Plan) -> Facts:
    """The pre-flight's facts, in the order that costs the target least: the probe connection first (an
    unreachable target ends the run here: RunError), then the sysctls, then the client sockets already
    held towards the target (the probe's own connection closed with RST and left none)."""
    if not plan.destinations:
        info = probe_target(plan)
        return Facts(gather(), info.timestamps, read_start(plan))
    # targets on several destinations: each one probed once (the URL's too, if the file sends it nothing)
    probed = {(d.address[0], d.port): probe_target(replace(plan, target=d, destinations=())) for d in plan.destinations}
    main = probed.get((plan.target.address[0], plan.target.port)) or probe_target(plan)
    kernel = gather()
    each = tuple(Facts(kernel, probed[(d.address[0], d.port)].timestamps,
                       read_start(replace(plan, target=d, destinations=()))) for d in plan.destinations)
    return Facts(kernel, main.timestamps, read_start(plan), destinations=each)


def probe_target(plan: Plan) -> TcpInfo:
    """One blocking connect, so an unreachable target is one clear line, not a flood of errors.

    Its TCP_INFO also tells whether the target negotiates timestamps, which decides
    whether TIME_WAIT ports can be reused (see twload.ports.budget).
    """
    target = plan.target
    sock = socket.socket(target.family, socket.SOCK_STREAM)
    sock.settimeout(plan.connect_timeout_s)
    # Close with RST: the probe must not leave a TIME_WAIT socket of its own behind.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
    connected = False
    try:
        sock.connect(target.address)
        connected = True
        info = tcp_info(sock)
        if target.scheme == "https":
            tls_preflight(sock, plan)
        return info
    except ssl.SSLError as exc:
        raise RunError(tls_failure(exc, plan)) from None
    except TimeoutError:
        if connected and target.scheme == "https":  # the TCP connect worked; the handshake got no answer
            raise RunError(f"the server at {target.host}:{target.port} did not answer the TLS handshake within "
                           f"{plan.connect_timeout_s:g}s: is it plain HTTP? try {plain_url(plan)}") from None
        raise RunError(
            f"cannot connect to {target.address[0]}:{target.port}: "
            f"no answer within {plan.connect_timeout_s:g}s (connect timeout)"
        ) from None
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            raise RunError(no_free_port(plan, held_ports(plan), gather().ports)) from None
        raise RunError(
            f"cannot connect to {target.address[0]}:{target.port}: "
            f"{exc.strerror or exc} ({errno_name(exc)})"
        ) from None
    finally:
        sock.close()


def held_ports(plan: Plan) -> Counter:
    """Client sockets towards the target by state; empty when sock_diag cannot be read."""
    host, port = plan.target.address[:2]
    try:
        return sockdiag.count_states_to(host, port)
    except OSError:
        return Counter()


def no_free_port(plan: Plan, held: Counter, ports: int) -> str:
    """connect() found no free local port: how many are held towards the target, and in what state."""
    host, port = plan.target.address[:2]
    line = f"cannot connect to {host}:{port}: no free local port (EADDRNOTAVAIL)"
    tw = held.get("TIME_WAIT", 0)
    others = sum(held.values()) - tw
    if tw:
        # TCP_TIMEWAIT_LEN (include/net/tcp.h): each stays up to 60 s after the client closed it
        line += f": {tw} client sockets towards it are in TIME_WAIT (up to 60 s each)"
        if others:
            line += f" and {others} in other states"
    elif others:
        line += f": {others} client sockets towards it are open"
    line += f", of {ports} ephemeral ports. Wait for them to expire, or see `twload doctor {plan.url}`"
    return line


# OpenSSL's reasons for a first reply that is not a TLS record (ssl/record/ssl3_record.c and
# rec_layer_s3.c in 3.0; "record layer failure" in 3.2+): the peer most likely spoke plain HTTP.
NOT_TLS_REASONS = ("WRONG_VERSION_NUMBER", "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE", "UNKNOWN_PROTOCOL",
                   "HTTP_REQUEST", "RECORD_LENGTH_MISMATCH")


def plain_url(plan: Plan) -> str:
    return "http://" + plan.url.split("://", 1)[-1]


def tls_failure(exc: ssl.SSLError, plan: Plan) -> str:
    """One line for a failed pre-flight handshake: the cause, and what to try."""
    target = plan.target
    where = f"{target.host}:{target.port}"
    reason = getattr(exc, "reason", None)  # set by the ssl module on errors it raises
    if reason in NOT_TLS_REASONS:
        return f"the server at {where} did not answer TLS ({reason}): is it plain HTTP? try {plain_url(plan)}"
    if isinstance(exc, ssl.SSLEOFError):
        return (f"the server at {where} closed the connection during the TLS handshake: "
                f"is it plain HTTP? try {plain_url(plan)}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"TLS handshake with {where} failed: certificate verify failed: {exc.verify_message} "
                "(use --cacert FILE, or --insecure)")
    return f"TLS handshake with {where} failed: {reason or exc}"


def tls_preflight(sock: socket.socket, plan: Plan) -> None:
    """A handshake with the plan's own settings, so a certificate problem is one clear line."""
    context = tls_context(plan)
    with context.wrap_socket(sock, server_hostname=plan.target.host, do_handshake_on_connect=True):
        pass



def read_ports(plan: Plan) -> tuple[Counter, list[int] | None]:
    """Client sockets towards the target by state, and each TIME_WAIT one's time left in ms (None
    where sock_diag cannot be read: the /proc fallback is read without its timers)."""
    host, port = plan.target.address[:2]
    try:
        return sockdiag.states_and_time_wait_left(host, port)
    except OSError:  # no netlink here: the slower /proc reading
        return Counter(s.state for s in sockdiag.sockets_proc()
                       if s.dst == host and s.dport == port and s.state != "LISTEN"), None


# A client socket closed first waits in these for the server's FIN, then enters TIME_WAIT
# (net/ipv4/tcp_input.c: tcp_fin; the FIN_WAIT2 timewait socket of tcp_time_wait reports FIN_WAIT2).
CLOSING = ("FIN_WAIT1", "FIN_WAIT2", "CLOSING")
SETTLE_S = 1.0  # at the run's end, the longest the last reading waits for them
SETTLE_POLL_S = 0.02


def closing(counts: Counter) -> int:
    return sum(counts.get(state, 0) for state in CLOSING)


def read_start(plan: Plan) -> timewait.Found:
    """The client sockets towards the target at the run's start, before its first connection."""
    begun = time.monotonic()
    counts, left = read_ports(plan)
    return timewait.found(begun, time.monotonic(), counts.get("TIME_WAIT", 0), sum(counts.values()), left,
                          closing(counts))


class PortProbe:
    """Client sockets towards the target, read once a second: called, it gives the run's own TIME_WAIT
    count (the supervisor's samples), told from the ones found at the start (`start`) by when each
    entered TIME_WAIT (twload.ports.timewait). `in_use` keeps every local port held towards the target at
    that reading (all states but LISTEN), for the live line's ports against the budget; `found` the
    found ones still held, `reused` those of them taken over by the run's connects so far."""

    def __init__(self, plan: Plan, start: timewait.Found | None = None) -> None:
        self.plan = plan
        self.start = start if start is not None else read_start(plan)
        self.in_use: int | None = None
        self.found: int | None = None
        self.reused: int | None = None

    @property
    def at_start(self) -> int:
        return self.start.time_wait

    def __call__(self) -> int:
        begun = time.monotonic()
        counts, left = read_ports(self.plan)
        self.in_use = sum(counts.values())
        if left is None or self.start.left_ms is None:  # no time left to tell them apart by
            self.found = self.reused = None
            return counts.get("TIME_WAIT", 0)
        split = timewait.split(self.start, begun, left)
        self.found, self.reused = split.found, split.reused
        return split.own


    def destination_ports(self) -> list[tuple[int, int]] | None:
        """Targets on several destinations: each one's client sockets (all states but LISTEN) and TIME_WAIT
        now, in plan.destinations' order; None where sock_diag cannot be read."""
        out = []
        for d in self.plan.destinations:
            try:
                counts = sockdiag.count_states_to(d.address[0], d.port)
            except OSError:
                return None
            out.append((sum(counts.values()), counts.get("TIME_WAIT", 0)))
        return out

    def settle(self) -> None:
        """At the run's end, before its last reading: its last connections closed a moment ago, and each
        enters TIME_WAIT only when the server's FIN comes. Wait (bounded by SETTLE_S) while more
        sockets towards the target are closing than at the start, so the last reading counts them."""
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:
            counts, _ = read_ports(self.plan)
            if closing(counts) <= self.start.closing:
                return
            time.sleep(SETTLE_POLL_S)


def time_wait_probe(plan: Plan, start: timewait.Found | None = None) -> PortProbe:
    return PortProbe(plan, start)
