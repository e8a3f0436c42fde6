"""How long a worker waits before its next connect after connects failed (pure).

At the port wall every connect fails at once with EADDRNOTAVAIL: retrying at once
turns a worker into a busy loop (about 12,000 failed connects a second measured
against a 500-port client) that measures nothing and delays the end of the run.
So a connection slot's wait doubles with each of its failures in a row, up to
CONNECT_BACKOFF_MAX_S, and its next successful connect starts it afresh. It is per
slot: with more slots than ports, the slots that hold a port keep connecting (and
succeeding), and a worker-wide wait reset by their successes let the others retry
every millisecond (measured: ~900 EADDRNOTAVAIL/s with 5 slots too many). A slot
waiting here is woken at once when a slot of its worker ends with its connection,
whose port may then be free. The compiled core follows the same constants
(core.c: core_connect_failed; docs/ARCHITECTURE.md "Data flow").
"""

from __future__ import annotations

CONNECT_BACKOFF_FIRST_S = 0.001
CONNECT_BACKOFF_MAX_S = 0.100


def next_wait(previous_s: float) -> float:
    """The wait after a failed connect, given the wait before it (0: the slot's first failure)."""
    return CONNECT_BACKOFF_FIRST_S if previous_s <= 0 else min(CONNECT_BACKOFF_MAX_S, previous_s * 2)


class ConnectBackoff:
    """The open loop's wait after a failed connect (it has no slots): growing while failures come
    in a row, reset by a successful connect."""

    __slots__ = ("last_s",)

    def __init__(self) -> None:
        self.last_s = 0.0

    def failed(self) -> float:
        """A connect failed: how long to wait before the next try."""
        self.last_s = next_wait(self.last_s)
        return self.last_s

    def succeeded(self) -> None:
        self.last_s = 0.0
