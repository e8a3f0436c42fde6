"""The run's summary as a typed record: built once (Merger.summary), completed by the command line
(the pre-flight's keys, the thresholds; a Dask run's cluster keys), written once as summary.json.

`to_dict()` gives summary.json's shape exactly (docs/ARCHITECTURE.md "The run folder": its keys are an
interface); `from_dict()` reads one back, from any twload's run folder: a key an older run lacks takes
its empty value, a key this twload does not know is kept as read (`extra`) and written back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

PERCENTILE_KEYS = ("p50", "p75", "p90", "p99", "p99_9", "max", "mean")


@dataclass(frozen=True, slots=True)
class Percentiles:
    """A percentile block, µs: latency_us, connect_us, service_us, tls_handshake_us."""

    p50: int = 0
    p75: int = 0
    p90: int = 0
    p99: int = 0
    p99_9: int = 0
    max: int = 0
    mean: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in PERCENTILE_KEYS}

    @classmethod
    def from_dict(cls, block: Mapping[str, Any] | None) -> Percentiles:
        block = block or {}
        return cls(**{key: block[key] for key in PERCENTILE_KEYS if block.get(key) is not None})

    def __getitem__(self, key: str) -> Any:
        """By name (`p99_9`), for what picks a percentile from text (a threshold, a table column)."""
        if key not in PERCENTILE_KEYS:
            raise KeyError(key)
        return getattr(self, key)


@dataclass(frozen=True, slots=True)
class FirstError:
    """When an error was first counted: seconds into the run, on which connection of which worker."""

    at_s: float
    connection: int | None = None
    worker: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"at_s": self.at_s, "connection": self.connection, "worker": self.worker}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> FirstError:
        return cls(value["at_s"], value.get("connection"), value.get("worker"))


def _us(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.2f}s"
    if value >= 1_000:
        return f"{value / 1_000:.2f}ms"
    return f"{value:.0f}us"


@dataclass(frozen=True)
class Summary:
    """summary.json, typed. None (or empty) is "the key is absent": summary.json holds a key only when it
    applies. Field order is summary.json's key order."""

    # always
    url: str = ""
    close: str = ""
    connections: int = 0
    workers: int = 0
    engine: str | None = None  # what ran: "core" | "asyncio" (a Dask run: each shard's, joined by ",")
    io: str | None = None  # the core's backend: "epoll" | "uring"
    duration_s: float = 0.0
    requests: int = 0
    rps: float = 0.0
    status: dict[str, int] = field(default_factory=dict)  # status code (as text) -> responses
    errors: dict[str, int] = field(default_factory=dict)  # error name -> count ("Error names")
    connections_opened: int = 0
    latency_us: Percentiles = field(default_factory=Percentiles)
    connect_us: Percentiles = field(default_factory=Percentiles)
    bytes_in: int = 0
    bytes_out: int = 0
    # when they apply
    requests_planned: int | None = None
    duration_planned_s: float | None = None
    interrupted: str | None = None  # the signal's name
    stopped_by: str | None = None  # "max_errors"
    max_errors: int | None = None  # with stopped_by
    worker_failures: tuple[str, ...] = ()
    first_errors: dict[str, FirstError] = field(default_factory=dict)
    peer_bytes: str | None = None
    tls_reason: str | None = None
    # open loop
    rate_target: float | None = None
    rate_achieved: float | None = None
    service_us: Percentiles | None = None
    max_lag_us: int | None = None
    behind: str | None = None
    # https
    tls_handshake_us: Percentiles | None = None
    tls_handshakes: int | None = None  # https (the core): handshakes completed
    tls_resumed: int | None = None  # of them, those that resumed a session (--tls-resume)
    # --http2 (docs/ARCHITECTURE.md "HTTP/2"): streams asked for per connection, the smallest
    # SETTINGS_MAX_CONCURRENT_STREAMS below it a server sent, and the ports (connections) the same
    # requests at the same rate would hold as HTTP/1.1 short connections the client closes
    http2: bool = False
    streams: int | None = None
    h2_server_max_streams: int | None = None
    http1_ports_needed: int | None = None
    # the run's client TIME_WAIT (a port probe read it)
    time_wait_peak: int | None = None
    time_wait_at_start: int | None = None
    ports_in_use_at_start: int | None = None
    time_wait_found: int | None = None
    time_wait_found_reused: int | None = None
    # a request file (--targets): one row per target name: name, requests, status, errors, latency_us
    targets: tuple[dict[str, Any], ...] | None = None
    # a streamed one (engine/spool.py): pages a worker walked again because the next was not loaded yet (a
    # request of it in flight, or not yet read), so their targets got more than their share of the file's
    # order (0: the order held)
    targets_page_repeats: int | None = None
    # targets on several destinations: one row each (connections opened, ports held at the end, its pre-flight)
    destinations: tuple[dict[str, Any], ...] | None = None
    # trouble on the path (merge/path.py): each error's first and last second, the client namespace's
    # retransmitted segments, connects that took 1 s or more
    errors_window: dict[str, Any] | None = None
    retransmits: int | None = None
    retransmits_per_s: float | None = None
    retransmits_peak_per_s: int | None = None
    slow_connects: dict[str, Any] | None = None
    # added by `twload run` (the pre-flight's); target_timestamps is written with the budget, null or not
    target_timestamps: bool | None = None
    budget: dict[str, Any] | None = None
    wall: str | None = None
    advice: tuple[str, ...] | None = None
    thresholds: tuple[dict[str, Any], ...] | None = None
    # distributed
    dask_workers: int | None = None
    workers_detail: tuple[dict[str, Any], ...] | None = None
    lost_workers: tuple[str, ...] | None = None
    malformed_events: dict[str, Any] | None = None
    cluster: str | None = None
    # `twload report` for a folder without summary.json (never written)
    rebuilt_from_samples: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # keys a newer twload wrote, kept as read

    # -- figures -------------------------------------------------------------
    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def error_rate(self) -> float:
        """Errors over attempts (responses + errors)."""
        attempts = self.requests + self.error_count
        return self.error_count / attempts if attempts else 0.0

    @property
    def open_loop(self) -> bool:
        return self.rate_target is not None

    @property
    def time_wait_measured(self) -> bool:
        return self.time_wait_peak is not None

    def with_(self, **changes: Any) -> Summary:
        """A copy with these fields changed (the record is frozen)."""
        return replace(self, **changes)

    def __repr__(self) -> str:
        parts = [f"requests={self.requests}", f"rps={self.rps:g}", f"errors={self.error_count}",
                 f"p50={_us(self.latency_us.p50)}", f"p99={_us(self.latency_us.p99)}", f"close={self.close}"]
        if self.interrupted:
            parts.append(f"interrupted={self.interrupted}")
        if self.stopped_by:
            parts.append(f"stopped_by={self.stopped_by}")
        return f"Summary({self.url}: {', '.join(parts)})"

    # -- summary.json --------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """summary.json's shape: the keys that apply, in their order."""
        out: dict[str, Any] = {"url": self.url, "close": self.close, "connections": self.connections,
                               "workers": self.workers}
        if self.engine is not None:
            out["engine"] = self.engine
        if self.io is not None:
            out["io"] = self.io
        out |= {
            "duration_s": self.duration_s,
            "requests": self.requests,
            "rps": self.rps,
            "status": dict(self.status),
            "errors": dict(self.errors),
            "connections_opened": self.connections_opened,
            "latency_us": self.latency_us.to_dict(),
            "connect_us": self.connect_us.to_dict(),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
        }
        if self.requests_planned is not None:
            out["requests_planned"] = self.requests_planned
        if self.duration_planned_s is not None:
            out["duration_planned_s"] = self.duration_planned_s
        if self.interrupted is not None:
            out["interrupted"] = self.interrupted
        if self.stopped_by:
            out["stopped_by"] = self.stopped_by
            out["max_errors"] = self.max_errors
        if self.worker_failures:
            out["worker_failures"] = list(self.worker_failures)
        if self.first_errors:
            out["first_errors"] = {name: first.to_dict() for name, first in self.first_errors.items()}
        if self.peer_bytes:
            out["peer_bytes"] = self.peer_bytes
        if self.tls_reason:
            out["tls_reason"] = self.tls_reason
        if self.rate_target is not None:
            out["rate_target"] = self.rate_target
            out["rate_achieved"] = self.rate_achieved
            out["service_us"] = (self.service_us or Percentiles()).to_dict()
            out["max_lag_us"] = self.max_lag_us
        if self.behind:
            out["behind"] = self.behind
        if self.http2:
            out["http2"] = True
            out["streams"] = self.streams
            out["http1_ports_needed"] = self.http1_ports_needed
            if self.h2_server_max_streams:
                out["h2_server_max_streams"] = self.h2_server_max_streams
        if self.tls_handshake_us is not None:
            out["tls_handshake_us"] = self.tls_handshake_us.to_dict()
        if self.tls_handshakes is not None:
            out["tls_handshakes"] = self.tls_handshakes
            out["tls_resumed"] = self.tls_resumed
        for name in ("time_wait_peak", "time_wait_at_start", "ports_in_use_at_start"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.time_wait_found is not None:
            out["time_wait_found"] = self.time_wait_found
            out["time_wait_found_reused"] = self.time_wait_found_reused
        if self.targets is not None:
            out["targets"] = [dict(row) for row in self.targets]
        if self.targets_page_repeats is not None:
            out["targets_page_repeats"] = self.targets_page_repeats
        if self.destinations is not None:
            out["destinations"] = [dict(row) for row in self.destinations]
        if self.errors_window:
            out["errors_window"] = dict(self.errors_window)
        if self.retransmits is not None:
            out["retransmits"] = self.retransmits
            out["retransmits_per_s"] = self.retransmits_per_s
            out["retransmits_peak_per_s"] = self.retransmits_peak_per_s
        if self.slow_connects:
            out["slow_connects"] = dict(self.slow_connects)
        if self.dask_workers is not None:
            out["dask_workers"] = self.dask_workers
        if self.workers_detail is not None:
            out["workers_detail"] = [dict(w) for w in self.workers_detail]
        if self.budget is not None or self.target_timestamps is not None:
            out["target_timestamps"] = self.target_timestamps
        if self.budget is not None:
            out["budget"] = dict(self.budget)
        if self.malformed_events is not None:
            out["malformed_events"] = dict(self.malformed_events)
        if self.lost_workers:
            out["lost_workers"] = list(self.lost_workers)
        if self.wall is not None:
            out["wall"] = self.wall
        if self.advice is not None:
            out["advice"] = list(self.advice)
        if self.cluster is not None:
            out["cluster"] = self.cluster
        if self.thresholds is not None:
            out["thresholds"] = [dict(t) for t in self.thresholds]
        if self.rebuilt_from_samples:
            out["rebuilt_from_samples"] = True
        return out | {k: v for k, v in self.extra.items() if k not in out}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Summary:
        """A summary.json read back (any twload's: what an older run lacks stays empty)."""
        known = {f.name for f in fields(cls)} - {"extra"}
        values: dict[str, Any] = {k: v for k, v in data.items() if k in known}
        for name in ("latency_us", "connect_us"):
            values[name] = Percentiles.from_dict(data.get(name))
        for name in ("service_us", "tls_handshake_us"):
            if data.get(name) is not None:
                values[name] = Percentiles.from_dict(data[name])
        values["status"] = {str(k): v for k, v in (data.get("status") or {}).items()}
        values["errors"] = dict(data.get("errors") or {})
        values["first_errors"] = {name: FirstError.from_dict(v) for name, v in (data.get("first_errors") or {}).items()}
        for name in ("worker_failures", "advice", "lost_workers", "thresholds", "workers_detail", "targets",
                     "destinations"):
            if data.get(name) is not None:
                values[name] = tuple(data[name])
        for name in ("budget", "malformed_events"):
            if data.get(name) is not None:
                values[name] = dict(data[name])
        values["rebuilt_from_samples"] = bool(data.get("rebuilt_from_samples", False))
        return cls(**values, extra={k: v for k, v in data.items() if k not in known})
