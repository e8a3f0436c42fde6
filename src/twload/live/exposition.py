"""The metrics endpoint: `--metrics-listen HOST:PORT`, the Prometheus / OpenMetrics text format
(prometheus_client), updated once per merged second.

The numbers are the run's so far (the supervisor's totals, which summary.json is built from), so the
last exposition and summary.json agree. The histograms are the run's HdrHistograms read at fixed
bucket bounds: a value within HdrHistogram's resolution of a bound (3 significant digits, 0.1 %)
may be counted on either side of it; `_sum` and `_count` are exact.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram
from prometheus_client import start_http_server
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from twload.live.state import LiveState, RunFacts
from twload.metrics import Totals

DEFAULT_HOST = "127.0.0.1"
# seconds; a latency histogram from 100 µs to a minute, 2.5-ish steps (what Grafana's heatmap and
# histogram_quantile need; the exact percentiles are in summary.json)
LATENCY_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                     1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ListenError(ValueError):
    """A --metrics-listen that cannot be used; the message is one line for the user."""


def parse_listen(text: str, allow_remote: bool = False) -> tuple[str, int]:
    """HOST:PORT, [V6]:PORT, :PORT or PORT (then on 127.0.0.1). HOST is an IP address or localhost.

    A host beyond loopback needs `allow_remote`: the endpoint has no authentication and tells whoever
    reaches it the target's URL and how it holds up under load."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    host = host.strip("[]") or DEFAULT_HOST
    try:
        port = int(port_text)
    except ValueError:
        raise ListenError(f"--metrics-listen {text!r}: give HOST:PORT, e.g. 127.0.0.1:9464") from None
    if not 0 <= port <= 65535:
        raise ListenError(f"--metrics-listen {text!r}: the port must be 0 to 65535")
    if host == "localhost":
        host = DEFAULT_HOST
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ListenError(f"--metrics-listen {text!r}: the host must be an IP address (or localhost)") from None
    if not address.is_loopback and not allow_remote:
        raise ListenError(f"--metrics-listen {text!r} is beyond loopback: the endpoint has no authentication "
                          "and shows the target and its results; add --metrics-allow-remote to allow it")
    return host, port


@dataclass(frozen=True)
class Buckets:
    """A histogram as Prometheus wants it: cumulative counts at each bound (seconds), then +Inf."""

    cumulative: tuple[tuple[str, int], ...] = ()
    sum_s: float = 0.0

    @property
    def count(self) -> int:
        return self.cumulative[-1][1] if self.cumulative else 0


def buckets_of(hist: HdrHistogram, sum_us: int, bounds_s: Sequence[float] = LATENCY_BUCKETS_S) -> Buckets:
    """The HdrHistogram's counts (µs) at each bound: one pass over its counts array, in C (slices)."""
    total = hist.get_total_count()
    out: list[tuple[str, int]] = []
    running, start = 0, 0
    last_index = hist.get_counts_array_index(hist.get_max_value()) if total else 0
    for bound in bounds_s:
        index = min(hist.get_counts_array_index(round(bound * 1_000_000)), last_index)
        if total and index >= start:
            running += sum(hist.counts[start:index + 1])
            start = index + 1
        out.append((floatToGoString(bound), running))
    out.append(("+Inf", total))
    return Buckets(tuple(out), sum_us / 1_000_000)




@dataclass(frozen=True)
class Exposed:
    """One second's numbers, as the endpoint shows them until the next (replaced whole: no lock)."""

    info: dict[str, str]
    destination: str
    requests: dict[str, int] = field(default_factory=dict)  # by status
    errors: dict[str, int] = field(default_factory=dict)
    connections_opened: int = 0
    latency: Buckets = Buckets()
    connect: Buckets = Buckets()
    time_wait: int | None = None
    ports_in_use: int | None = None
    port_budget: int | None = None
    target_rate: float | None = None
    lag_s: float | None = None
    second: int = 0


def exposed_of(state: LiveState, totals: Totals) -> Exposed:
    facts = state.facts
    last = state.last
    return Exposed(
        info=run_info(facts), destination=facts.destination,
        requests=dict(state.status), errors=dict(state.errors), connections_opened=state.connections_opened,
        latency=buckets_of(totals.latency, totals.sums_us["latency"]),
        connect=buckets_of(totals.connect, totals.sums_us["connect"]),
        time_wait=state.time_wait, ports_in_use=state.ports_in_use, port_budget=facts.ports,
        target_rate=float(last["target"]) if facts.open_loop and "target" in last else None,
        lag_s=last["max_lag_us"] / 1_000_000 if "max_lag_us" in last else None,
        second=state.seconds_seen)


def run_info(facts: RunFacts) -> dict[str, str]:
    return {"url": facts.url, "close": facts.close, "engine": facts.engine, "io": facts.io,
            "destination": facts.destination}


class RunCollector(Collector):
    """The metric families of the last Exposed (prometheus_client calls collect() per scrape)."""

    def __init__(self, exposed: Exposed) -> None:
        self.exposed = exposed

    def collect(self) -> Iterator:
        e = self.exposed
        yield InfoMetricFamily("twload_run", "The run: target URL (without credentials), close strategy, engine.",
                               value=e.info)
        requests = CounterMetricFamily("twload_requests", "Responses, by status code.", labels=["status"])
        for status, count in sorted(e.requests.items()):
            requests.add_metric([status], count)
        yield requests
        errors = CounterMetricFamily("twload_errors", "Errors, by name (docs/ARCHITECTURE.md \"Error names\").",
                                     labels=["error"])
        for name, count in sorted(e.errors.items()):
            errors.add_metric([name], count)
        yield errors
        yield CounterMetricFamily("twload_connections_opened", "Connects that completed.",
                                  value=e.connections_opened)
        for name, what, buckets in (("twload_latency_seconds", "Response latency (open loop: from the intended "
                                     "send time).", e.latency),
                                    ("twload_connect_seconds", "TCP connect time.", e.connect)):
            yield HistogramMetricFamily(name, what, buckets=list(buckets.cumulative) or [("+Inf", 0)],
                                        sum_value=buckets.sum_s)
        per_destination = (("twload_time_wait_sockets", "The run's own client sockets in TIME_WAIT towards the "
                            "target.", e.time_wait),
                           ("twload_ports_in_use", "Local ports held towards the target (every state but LISTEN).",
                            e.ports_in_use),
                           ("twload_port_budget", "The pre-flight's port budget towards the target.",
                            e.port_budget))
        for name, what, value in per_destination:
            if value is not None:
                family = GaugeMetricFamily(name, what, labels=["destination"])
                family.add_metric([e.destination], value)
                yield family
        if e.target_rate is not None:
            yield GaugeMetricFamily("twload_target_rate", "Open loop: the planned requests per second now.",
                                    value=e.target_rate)
        if e.lag_s is not None:
            yield GaugeMetricFamily("twload_lag_seconds", "Open loop: the latest a request was dispatched in the "
                                    "last second.", value=e.lag_s)
        yield GaugeMetricFamily("twload_second", "The last merged second of the run.", value=e.second)


class MetricsEndpoint:
    """prometheus_client's HTTP server on its own thread, serving one registry with our collector."""

    def __init__(self, host: str, port: int, facts: RunFacts) -> None:
        self.collector = RunCollector(Exposed(info=run_info(facts), destination=facts.destination))
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        try:
            self.server, self.thread = start_http_server(port, host, registry=self.registry)
        except OSError as exc:
            raise ListenError(f"--metrics-listen {host}:{port}: {exc.strerror or exc}") from None
        self.host, self.port = host, self.server.server_address[1]
        self.closed = threading.Event()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def update(self, state: LiveState, totals: Totals) -> None:
        self.collector.exposed = exposed_of(state, totals)

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(timeout=2)
