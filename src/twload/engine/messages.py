"""What a worker process tells its supervisor, over its pipe: small typed records."""

from __future__ import annotations

from dataclasses import dataclass

from twload.metrics import Snapshot


@dataclass(frozen=True, slots=True)
class Ready:
    """The worker is set up and waits for the common start; it says which loop it runs."""

    worker: int
    engine: str = "core"  # the compiled core, the one engine (issue #30)
    io: str = "epoll"  # the core's backend, "epoll" or "uring"


@dataclass(frozen=True, slots=True)
class Tick:
    """One second's snapshot (metrics.Snapshot): `tick` is the second it belongs to."""

    worker: int
    tick: int
    snapshot: Snapshot


@dataclass(frozen=True, slots=True)
class Final:
    """The worker's last snapshot; it has stopped after running `elapsed_s`."""

    worker: int
    tick: int
    snapshot: Snapshot
    elapsed_s: float


@dataclass(frozen=True, slots=True)
class Crash:
    """The worker's loop raised: it reports and dies; the others go on."""

    worker: int
    error: str


Message = Ready | Tick | Final | Crash
