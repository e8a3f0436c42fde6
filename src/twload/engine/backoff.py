"""How long a worker waits before its next connect after connects failed (pure).

At the port wall every connect fails at once with EADDRNOTAVAIL: retrying at once
turns a worker into a busy loop (about 12,000 failed connects a second measured
against a 500-port client) that measures nothing and delays the end of the run.
So the wait doubles with each failure in a row, up to CONNECT_BACKOFF_MAX_S, and a
successful connect starts it afresh. A slot waiting here is also woken at once when
a connection of its worker closes, because that may have freed a port. The compiled
core follows the same constants (CONTRACTS.md, decisions log, 09:33 diagnosis).
"""

from __future__ import annotations

CONNECT_BACKOFF_FIRST_S = 0.001
CONNECT_BACKOFF_MAX_S = 0.100


class ConnectBackoff:
    """The wait after a failed connect, growing while failures come in a row."""

    __slots__ = ("next_s",)

    def __init__(self) -> None:
        self.next_s = CONNECT_BACKOFF_FIRST_S

    def failed(self) -> float:
        """A connect failed: how long to wait before the next try."""
        wait = self.next_s
        self.next_s = min(CONNECT_BACKOFF_MAX_S, self.next_s * 2)
        return wait

    def succeeded(self) -> None:
        self.next_s = CONNECT_BACKOFF_FIRST_S
