"""The merger: worker snapshots in, one row a second and the run's summary out.

Sans-IO: it reads no clock, starts no process and writes no file. Whoever carries the
snapshots (the local supervisor's worker pipes, a Dask shard's messages, the coordinator's
Dask events) feeds them in with `add`, asks which seconds are `due` (the time since the start
is passed in), takes each one out (`take`), has it merged into its samples.jsonl row
(`merge`), writes it where it belongs, and at the end asks for the `summary`.

Histograms are added, never percentiles averaged: a second's percentiles, and the run's, are
those of one histogram of every value the workers recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from twload.merge.path import PathFacts
from twload.merge.summary import FirstError, Percentiles, Summary
from twload.metrics import Snapshot, Totals, escaped, percentiles_us, target_rows
from twload.plan import Plan
from twload.plan.schedule import Schedule
from twload.plan.targets import labels as target_labels
from twload.ports.http2 import Http1PortsWindow
from twload.ports.http2 import sample_keys as http2_sample_keys
from twload.ports.http2 import summary_keys as http2_keys

LATE_TICK_S = 1.5  # a second is due once every running worker reported it, or this long after it ended
LAG_WARNING_US = 50_000  # open loop: a dispatch this late is worth a line in the summary

Row = dict  # one line of samples.jsonl (docs/ARCHITECTURE.md "The run folder")


@dataclass(frozen=True, slots=True)
class PortReading:
    """One reading of the client sockets towards the target (preflight.PortProbe), taken by the transport:
    the run's own TIME_WAIT; with a PortProbe also every port in use, the TIME_WAIT found at the start and
    still held, and how many of those the run's connects took over."""

    time_wait: int
    in_use: int | None = None
    found: int | None = None
    found_reused: int | None = None


@dataclass(frozen=True, slots=True)
class PortsAtStart:
    """What the pre-flight found towards the target before the first connection."""

    time_wait: int
    ports_in_use: int


@dataclass(frozen=True, slots=True)
class Second:
    """One merged second: its samples.jsonl row, its histograms (the interval logs') and its span."""

    tick: int
    row: Row
    histograms: dict[str, HdrHistogram]
    span_s: float


@dataclass(slots=True)
class RunFacts:
    """What the transport knows about the run beyond the snapshots, for the summary."""

    workers: int
    elapsed_s: float
    engine: dict[str, str] = field(default_factory=dict)  # {"engine": ..., "io": ...}, from the workers
    interrupted: str | None = None  # the signal's name
    stopped_by: str | None = None  # "max_errors"
    worker_failures: list[str] = field(default_factory=list)
    ports_measured: bool = False  # a port probe read the run's TIME_WAIT each second
    ports_at_start: PortsAtStart | None = None


class Merger:
    """Adds the workers' snapshots up, per second and over the run.

    `on_second` observers get each merged row as it is made (a live view, a metrics endpoint)."""

    def __init__(self, plan: Plan, late_tick_s: float = LATE_TICK_S,
                 on_second: Iterable[Callable[[Row], None]] = ()) -> None:
        self.plan = plan
        self.late_tick_s = late_tick_s
        self.on_second: list[Callable[[Row], None]] = list(on_second)
        self.schedule = plan.schedule()
        self.totals = Totals()  # the run so far, every snapshot added
        self._pending: dict[int, tuple[set[int], list[Snapshot]]] = {}
        self._taken = 0  # the last second taken out
        self.time_wait_peak = 0
        self.time_wait_found: int | None = None  # of those found at the start, still held at the last reading
        self.time_wait_found_reused: int | None = None
        self.path = PathFacts()  # errors_window, retransmits, slow_connects (merge/path.py)
        self.http1_ports = Http1PortsWindow() if plan.http2 else None  # --http2: the rows' http1_ports_needed

    # -- in ------------------------------------------------------------------
    def add(self, worker: int, tick: int, snapshot: Snapshot) -> None:
        """A worker's snapshot of second `tick` (1 is the run's first second)."""
        self.totals.add(snapshot, worker)
        tick = max(tick, self._taken + 1)  # a second already taken out: it counts in the next
        reporters, snaps = self._pending.setdefault(tick, (set(), []))
        reporters.add(worker)
        snaps.append(snapshot)

    # -- which seconds -------------------------------------------------------
    @property
    def waiting(self) -> list[int]:
        """The seconds added and not taken out yet, in order."""
        return sorted(self._pending)

    def due(self, unfinished: Collection[int], now_s: float, force: bool = False) -> list[int]:
        """The seconds to take out now, in order: each once every unfinished worker has reported it, or
        when it ended more than `late_tick_s` ago (`now_s`: seconds since the start); all with `force`.
        A second waits for the ones before it."""
        ready = []
        for tick in sorted(self._pending):
            reporters, _ = self._pending[tick]
            if not (force or set(unfinished) <= reporters or now_s > tick + self.late_tick_s):
                break
            ready.append(tick)
        return ready

    def take(self, tick: int) -> list[Snapshot]:
        """Second `tick`'s snapshots, out of the merger: a snapshot for it added later counts in the next."""
        _, snaps = self._pending.pop(tick)
        self._taken = max(self._taken, tick)
        return snaps

    # -- out -----------------------------------------------------------------
    def read_ports(self, reading: PortReading) -> None:
        """A reading of the ports that goes with no merged row (a shard sends its seconds unmerged)."""
        self.time_wait_peak = max(self.time_wait_peak, reading.time_wait)
        if reading.found is not None:
            self.time_wait_found = reading.found
            self.time_wait_found_reused = reading.found_reused

    def merge(self, tick: int, snapshots: list[Snapshot], now_s: float, ports: PortReading | None = None,
              retransmit_counter: int | None = None) -> Second:
        """Second `tick`'s row from its snapshots (`take`), with the ports and the namespace's
        retransmission counter (kernel.snmp) read as it is written."""
        merged = Totals()
        for snap in snapshots:
            merged.add(snap, targets=False)  # the run's Totals has them; a row shows none
        # Every second is whole but the last one of a run, which ends when the run does.
        span = min(1.0, max(0.001, now_s - (tick - 1)))
        lat = percentiles_us(merged.latency, merged.sums_us["latency"])
        con = percentiles_us(merged.connect, merged.sums_us["connect"])
        row: Row = {
            "t": tick,
            "requests": merged.requests,
            "rps": round(merged.requests / span, 1),
            "connections_opened": merged.connections_opened,
            "errors": dict(merged.errors),
            "status": {str(k): v for k, v in merged.status.items()},
            "latency_us": {key: lat[key] for key in ("p50", "p90", "p99", "p99_9", "max")},
            "connect_us": {"p50": con["p50"], "p99": con["p99"]},
            "bytes_in": merged.bytes_in,
            "bytes_out": merged.bytes_out,
        }
        if self.schedule is not None:  # the plan for this second: rate (open loop) or connections
            row["target"] = round(self.schedule.value(tick - 0.5), 2)
        if self.plan.open_loop:
            row["max_lag_us"] = merged.max_lag_us
        if self.http1_ports is not None:  # --http2: streams and connections (ports/http2.py)
            row.update(http2_sample_keys(self.plan, merged.h2_server_max_streams,
                                         sum(s.h2_connections_open for s in snapshots),
                                         sum(s.h2_streams_open for s in snapshots),
                                         self.http1_ports.add(tick, merged.requests)))
        row.update(self.path.sample(tick, row["errors"], retransmit_counter))
        if ports is not None:
            self.read_ports(ports)
            row["time_wait"] = ports.time_wait  # the run's own
            if ports.in_use is not None:
                row["ports_in_use"] = ports.in_use  # the report draws it against the port budget
            if ports.found is not None:
                row["time_wait_found"] = ports.found
                row["time_wait_found_reused"] = ports.found_reused
        for observer in self.on_second:
            observer(row)
        return Second(tick, row, {"latency": merged.latency, "connect": merged.connect}, span)

    def summary(self, facts: RunFacts) -> Summary:
        """The run's summary (summary.json, docs/ARCHITECTURE.md "The run folder") from every snapshot added."""
        plan = self.plan
        totals = self.totals
        elapsed = facts.elapsed_s
        open_loop = open_loop_block(self.schedule, totals, elapsed, plan) if plan.open_loop else {}
        found = self.time_wait_found if facts.ports_measured else None
        path = self.path.summary(totals.connect, elapsed)
        h2 = http2_keys(plan, totals.requests, elapsed, totals.h2_server_max_streams) if plan.http2 else {}
        start = facts.ports_at_start if facts.ports_measured else None
        return Summary(
            url=plan.url,
            close=plan.close,
            connections=plan.connections,
            workers=facts.workers,
            engine=facts.engine.get("engine"),
            io=facts.engine.get("io"),
            duration_s=round(elapsed, 3),
            requests=totals.requests,
            rps=round(totals.requests / elapsed, 1) if elapsed > 0 else 0.0,
            status={str(k): v for k, v in sorted(totals.status.items())},
            errors=dict(sorted(totals.errors.items())),
            connections_opened=totals.connections_opened,
            latency_us=Percentiles.from_dict(percentiles_us(totals.latency, totals.sums_us["latency"])),
            connect_us=Percentiles.from_dict(percentiles_us(totals.connect, totals.sums_us["connect"])),
            bytes_in=totals.bytes_in,
            bytes_out=totals.bytes_out,
            requests_planned=plan.requests,
            duration_planned_s=plan.duration_s,
            interrupted=facts.interrupted,
            stopped_by=facts.stopped_by or None,
            max_errors=plan.max_errors if facts.stopped_by else None,
            worker_failures=tuple(facts.worker_failures),
            first_errors={name: FirstError(**first) for name, first in sorted(totals.first_errors.items())},
            peer_bytes=escaped(totals.peer_bytes) if totals.peer_bytes else None,
            tls_reason=totals.tls_reason or None,
            rate_target=open_loop.get("rate_target"),
            rate_achieved=open_loop.get("rate_achieved"),
            service_us=Percentiles.from_dict(open_loop["service_us"]) if open_loop else None,
            max_lag_us=open_loop.get("max_lag_us"),
            behind=open_loop.get("behind"),
            http2=bool(h2),
            streams=h2.get("streams"),
            h2_server_max_streams=h2.get("h2_server_max_streams"),
            http1_ports_needed=h2.get("http1_ports_needed"),
            tls_handshake_us=(Percentiles.from_dict(percentiles_us(totals.tls, totals.sums_us["tls"]))
                              if plan.target.scheme == "https" else None),
            tls_handshakes=totals.tls_handshakes if plan.target.scheme == "https" else None,
            tls_resumed=totals.tls_resumed if plan.target.scheme == "https" else None,
            # the run's client TIME_WAIT towards the target (with a preflight.PortProbe, every key; with a
            # bare count, the peak alone):
            #   time_wait_peak          the run's own: sockets that entered TIME_WAIT after the run started
            #   time_wait_at_start      found at the start, before the first connection (earlier connections')
            #   ports_in_use_at_start   every client socket towards the target then, all states but LISTEN
            #   time_wait_found         of the found ones, still held at the last reading (absent where
            #                           the kernel's timers cannot be read: the /proc fallback)
            #   time_wait_found_reused  of the found ones, taken over by the run's connects (tcp_tw_reuse)
            #                           before their 60 s ran out, by the last reading
            # Each sample holds `time_wait` (own), `ports_in_use`, `time_wait_found` and
            # `time_wait_found_reused` as read that second.
            time_wait_peak=self.time_wait_peak if facts.ports_measured else None,
            time_wait_at_start=start.time_wait if start is not None else None,
            ports_in_use_at_start=start.ports_in_use if start is not None else None,
            time_wait_found=found,
            time_wait_found_reused=self.time_wait_found_reused if found is not None else None,
            # a request file: per-target results (docs/ARCHITECTURE.md "Request sets")
            targets=tuple(target_rows(totals, plan.targets_spool.labels if plan.targets_spool is not None
                                      else target_labels(plan.targets))) if plan.targets else None,
            targets_page_repeats=totals.page_repeats if plan.targets_spool is not None else None,
            errors_window=path.get("errors_window"),
            retransmits=path.get("retransmits"),
            retransmits_per_s=path.get("retransmits_per_s"),
            retransmits_peak_per_s=path.get("retransmits_peak_per_s"),
            slow_connects=path.get("slow_connects"),
        )


def open_loop_block(schedule: Schedule | None, totals: Totals, elapsed: float, plan: Plan) -> dict:
    """Target vs achieved rate, service time beside the CO-corrected latency, and the lag."""
    assert schedule is not None  # an open-loop plan has one: its rate, or its stages
    finite = schedule.total_s != float("inf")
    if finite:
        target = schedule.planned_requests() / schedule.total_s
    else:  # a constant rate without a duration
        assert plan.rate is not None
        target = plan.rate
    # over the sending window the plan set (the drain of the last responses is not sending time);
    # a generator that falls behind dispatches fewer requests inside it, and that shows
    window = min(elapsed, schedule.total_s) if finite else elapsed
    achieved = totals.requests / window if window > 0 else 0.0
    block = {
        "rate_target": round(target, 1),
        "rate_achieved": round(achieved, 1),
        "service_us": percentiles_us(totals.service, totals.sums_us["service"]),
        "max_lag_us": totals.max_lag_us,
    }
    if achieved < 0.99 * target:
        block["behind"] = (f"achieved {achieved:.0f} of {target:.0f} req/s: the target, the generator or the "
                           f"connection pool (--max-connections {plan.max_connections}) could not keep up; "
                           "latency counts from the intended send times")
    elif totals.max_lag_us > LAG_WARNING_US:
        block["behind"] = (f"the generator fell up to {totals.max_lag_us / 1000:.0f} ms behind its schedule at "
                           "times (a busy machine?); those requests' latency includes that wait")
    return block
