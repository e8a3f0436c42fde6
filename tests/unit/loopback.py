"""Real TCP connections on loopback whose kernel state the socket-table readers must report.

Each test gets a 127/8 address of its own (all of 127.0.0.0/8 is local on Linux), so the
sockets of other programs on this host, however many, never mix with the ones counted here.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import pytest

POLL_S, POLL_ROUNDS = 0.01, 500  # a bound on waiting for the kernel, not a timing assertion
REREADS = 20  # whole-table reads that may each skip a socket under churn: a few tries suffice


def own_address(salt: int = 0) -> str:
    pid = os.getpid() + salt
    return f"127.{101 + pid % 150}.{1 + (pid // 150) % 250}.{1 + salt % 250}"


def ipv6_loopback() -> str:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    return "::1"


class Peer:
    """A listener and the connections made to it: (client, server end) pairs."""

    def __init__(self, stack: ExitStack, address: str) -> None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.stack = stack
        self.family = family
        self.listener = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
        self.listener.bind((address, 0))
        self.listener.listen(64)
        self.address, self.port = self.listener.getsockname()[:2]
        self.pairs: list[tuple[socket.socket, socket.socket]] = []

    def connect(self) -> tuple[socket.socket, socket.socket]:
        client = self.stack.enter_context(socket.socket(self.family, socket.SOCK_STREAM))
        client.connect((self.address, self.port))
        server, _ = self.listener.accept()
        self.stack.enter_context(server)
        self.pairs.append((client, server))
        return client, server

    def close_first(self, first: socket.socket, then: socket.socket) -> None:
        """The side that closes first keeps the TIME_WAIT (RFC 9293, 3.6)."""
        first.close()
        then.recv(1)  # the FIN has arrived
        then.close()


@contextmanager
def peer(address: str) -> Iterator[Peer]:
    with ExitStack() as stack:
        yield Peer(stack, address)


def wait_until(done: Callable[[], bool], rounds: int = POLL_ROUNDS) -> bool:
    for _ in range(rounds):
        if done():
            return True
        time.sleep(POLL_S)
    return done()
