"""What a run finds towards its target at its start: client TIME_WAIT sockets earlier connections left.

Pure: readings in, counts out. A run towards a port that an earlier run used finds that run's
TIME_WAIT sockets still there (60 s, TCP_TIMEWAIT_LEN in include/net/tcp.h), holding ports.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Found:
    """The client sockets towards the target at the run's start, before its first connection."""

    begun_s: float  # time.monotonic() when the reading began: each time left counts from after it
    at_s: float  # time.monotonic() when the reading was complete
    time_wait: int  # TIME_WAIT sockets towards the target: left by earlier connections
    ports_in_use: int  # every client socket towards the target, all states but LISTEN
    left_ms: tuple[int, ...] | None  # each TIME_WAIT socket's time left, sorted; None: not readable here


def found(begun_s: float, at_s: float, time_wait: int, ports_in_use: int, left_ms: Iterable[int] | None) -> Found:
    return Found(begun_s, at_s, time_wait, ports_in_use, None if left_ms is None else tuple(sorted(left_ms)))
