"""What the live view and the metrics endpoint show, kept as plain values: the run's facts known
before the start (`RunFacts`), then each merged second (samples.jsonl's line) and the run's totals
so far. Pure: it takes the supervisor's values and imports no I/O."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from twload.metrics import Totals, percentiles_us

HISTORY_S = 600  # seconds of samples kept for the charts (a column a second: wider than any terminal)


def url_without_credentials(url: str) -> str:
    """The URL with any user:password@ taken out: the endpoint and the screen are seen by others."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass
class RunFacts:
    """Known before the first request: the plan's side, and the pre-flight's port budget (Dask: known
    once every worker's pre-flight came in, `LiveState.set_budget`)."""

    url: str
    destination: str  # HOST:PORT the ports are counted towards
    engine: str
    io: str
    close: str
    connections: int
    planned_s: float | None = None
    planned_requests: int | None = None
    open_loop: bool = False
    ports: int | None = None  # the port budget
    wall_at_connection: int | None = None  # the pre-flight's predicted wall: the first connection without a port
    wall_after_s: float | None = None  # at the planned rate (open loop)
    sustainable_per_s: float | None = None  # new connections a second the budget sustains


class ProgressLike(Protocol):
    """The part of engine.supervisor.Progress read here (a shape: no import from the engine)."""

    elapsed_s: float
    totals: Totals
    stopping: str | None
    time_wait: int | None
    time_wait_found: int | None


@dataclass
class LiveState:
    facts: RunFacts
    samples: deque = field(default_factory=lambda: deque(maxlen=HISTORY_S))
    elapsed_s: float = 0.0
    stopping: str | None = None
    requests: int = 0
    connections_opened: int = 0
    status: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    first_errors: dict[str, float] = field(default_factory=dict)  # name -> seconds into the run
    run_latency_us: dict[str, Any] = field(default_factory=dict)  # the run's percentiles so far
    run_connect_us: dict[str, Any] = field(default_factory=dict)
    max_lag_us: int = 0  # the run's so far
    time_wait: int | None = None
    time_wait_found: int | None = None
    seconds_seen: int = 0  # the last merged second taken in
    totals_at: int = -1  # the second the run's totals were last read at
    stop_hint: str = "q or Ctrl-C: stop"  # without a terminal on stdin, no key is read: Ctrl-C only

    def set_budget(self, budget: dict | None) -> None:
        """The pre-flight's budget block (results: `budget`), or the merged one of a Dask run."""
        if not budget:
            return
        self.facts.ports = budget.get("ports")
        self.facts.wall_at_connection = budget.get("exhausted_at_connection")
        self.facts.wall_after_s = budget.get("exhausted_after_s")
        self.facts.sustainable_per_s = budget.get("sustainable_new_conn_per_s")

    def on_second(self, sample: dict) -> None:
        """One merged second, as written to samples.jsonl."""
        self.samples.append(sample)
        self.seconds_seen = max(self.seconds_seen, int(sample.get("t", 0)))

    def on_progress(self, progress: ProgressLike) -> bool:
        """The supervisor's progress (a few times a second); the run's totals are read again once per
        merged second (their percentiles walk the histogram). True when they were."""
        self.elapsed_s = progress.elapsed_s
        self.stopping = progress.stopping
        self.time_wait = progress.time_wait
        self.time_wait_found = progress.time_wait_found
        last = getattr(progress, "last_sample", None)
        second = int(last["t"]) if last else 0
        if second == self.totals_at:
            return False
        self.totals_at = second
        totals = progress.totals
        self.requests = totals.requests
        self.connections_opened = totals.connections_opened
        self.status = {str(k): v for k, v in sorted(totals.status.items())}
        self.errors = dict(totals.errors)
        self.first_errors = {name: float(first["at_s"]) for name, first in totals.first_errors.items()}
        self.run_latency_us = percentiles_us(totals.latency, totals.sums_us["latency"])
        self.run_connect_us = percentiles_us(totals.connect, totals.sums_us["connect"])
        self.max_lag_us = totals.max_lag_us
        return True

    # -- derived values, for the view --------------------------------------------------------
    @property
    def last(self) -> dict:
        return self.samples[-1] if self.samples else {}

    @property
    def ports_in_use(self) -> int | None:
        value = self.last.get("ports_in_use")
        return int(value) if value is not None else None

    def rps_history(self) -> list[float]:
        return [float(s.get("rps", 0.0)) for s in self.samples]

    def ports_trend_per_s(self, window: int = 5) -> float | None:
        """How fast ports in use grew over the last `window` seconds (None: not measured)."""
        points = [(s["t"], s["ports_in_use"]) for s in list(self.samples)[-(window + 1):] if "ports_in_use" in s]
        if len(points) < 2 or points[-1][0] == points[0][0]:
            return None
        return (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])

    def wall_eta_s(self) -> float | None:
        """At the last seconds' pace, how long until ports in use reach the budget (None: not growing)."""
        used, ports, pace = self.ports_in_use, self.facts.ports, self.ports_trend_per_s()
        if used is None or not ports or pace is None or pace <= 0:
            return None
        return max(0.0, (ports - used) / pace)

    def errors_by_count(self) -> list[tuple[str, int, float | None]]:
        """(name, count, first seen at s) most counted first."""
        return [(name, count, self.first_errors.get(name))
                for name, count in sorted(self.errors.items(), key=lambda kv: (-kv[1], kv[0]))]
