"""Spawns the workers, merges their per-second snapshots, streams them, handles signals.

The supervisor never touches the hot path: it reads one message per worker per
second. Everything a worker reported before dying is kept; Ctrl-C and SIGTERM
stop the workers, wait briefly for their last snapshot and still write a summary.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_readable
from pathlib import Path

from twload.engine.messages import Crash, Final, Message, Ready, Tick
from twload.engine.worker import worker_main
from twload.metrics import Totals, escaped, free_codec_garbage, percentiles_us
from twload.plan import Plan
from twload.results import RunFolder, plan_record

READY_TIMEOUT_S = 30.0
FINAL_GRACE_S = 5.0  # after stop, how long workers get to send their last snapshot
# A worker drains for at most DRAIN_S (asyncio_loop: 1 s, twice at most) after its duration; one
# still running this long after the planned end is stuck: the watchdog kills it, the others' data
# stays. Generous, because a kill loses the worker's unsent second: only a stuck worker gets it.
WATCHDOG_GRACE_S = 10.0
LATE_TICK_S = 1.5  # a second is written once every worker reported it, or this long after
LAG_WARNING_US = 50_000  # open loop: a dispatch this late is worth a line in the summary


class RunError(Exception):
    """The run could not start; the message is for the user."""


@dataclass
class Progress:
    """What the supervisor knows while running; handed to the progress display."""

    elapsed_s: float = 0.0
    planned_s: float | None = None
    planned_requests: int | None = None
    totals: Totals = field(default_factory=Totals)
    last_sample: dict | None = None
    stopping: str | None = None
    time_wait: int | None = None  # the run's own client TIME_WAIT towards the target, last reading
    time_wait_peak: int = 0
    time_wait_found: int | None = None  # of those, still held at the last reading
    time_wait_found_reused: int | None = None  # of those, taken over by the run's connects so far


class Inbox:
    """Messages from the workers, each over its own one-way pipe.

    A multiprocessing.Queue would start a feeder thread in every worker, and a second
    thread costs the worker's hot path: fdget() borrows the file without touching its
    refcount only while the file table has one user (fs/file.c: __fget_light, Linux 6.x,
    "files->count == 1"), and every read, write and epoll_wait goes through it. In
    alternated runs a second thread cost about 6 to 8 % of keep-alive req/s (noisy). A
    worker sends a few KB a second, far below a pipe's buffer, so its send does not wait.
    """

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.readers: list = []
        self._writer = None

    def writer(self):
        """A new pipe for the next worker: its sending end."""
        reader, self._writer = self.ctx.Pipe(duplex=False)
        self.readers.append(reader)
        return self._writer

    def started(self) -> None:
        """The worker holds its end now: closing ours lets its death show as EOF."""
        self._writer.close()
        self._writer = None

    def get(self, timeout: float | None = None) -> Message:
        """The next message from any worker; queue.Empty when none came within timeout."""
        while self.readers:
            ready = wait_readable(self.readers, timeout)
            if not ready:
                break
            for reader in ready:
                try:
                    return reader.recv()
                except (EOFError, OSError):  # that worker is gone and all it sent was read
                    self.readers.remove(reader)
                    reader.close()
        raise queue_mod.Empty

    def get_nowait(self) -> Message:
        return self.get(timeout=0)

    def close(self) -> None:
        for reader in self.readers:
            reader.close()
        self.readers.clear()


class Supervisor:
    # The distributed run (twload.distributed) reuses this class with more patient bounds.
    late_tick_s = LATE_TICK_S
    final_grace_s = FINAL_GRACE_S

    def __init__(self, plan: Plan, folder: RunFolder, on_progress=None, time_wait_probe=None) -> None:
        self.plan = plan
        self.folder = folder
        self.on_progress = on_progress or (lambda progress: None)
        self.progress = Progress(planned_s=plan.duration_s, planned_requests=plan.requests)
        self.signal_received: int | None = None
        self.stopped_by: str | None = None  # "max_errors" when --max-errors ended the run
        self.worker_failures: list[str] = []
        self.engine: dict[str, str] = {}  # {"engine": "core"|"asyncio", "io": "epoll"|"uring"}, from Ready
        self.pending: dict[int, tuple[set[int], list[dict]]] = {}
        self.written_tick = 0
        self.go_at = 0.0
        self.worker_elapsed = 0.0  # the longest a finished worker ran
        self.time_wait_probe = time_wait_probe  # () -> client TIME_WAIT sockets towards the target
        self.settled = False  # the port probe waited for the last connections' closing handshakes
        self.schedule = plan.schedule()

    # -- signals -------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        if self.signal_received is None:
            self.signal_received = signum
            self.progress.stopping = signal.Signals(signum).name

    # -- samples -------------------------------------------------------------
    def _add(self, index: int, tick: int, snap: dict) -> None:
        self.progress.totals.add(snap, index)
        tick = max(tick, self.written_tick + 1)  # a second already written: count it in the next
        reporters, snaps = self.pending.setdefault(tick, (set(), []))
        reporters.add(index)
        snaps.append(snap)

    def _flush(self, unfinished: set[int], force: bool = False) -> None:
        """Write each second once every worker still running has reported it (or it is late)."""
        settle = getattr(self.time_wait_probe, "settle", None)  # preflight.PortProbe
        if not unfinished and self.pending and settle is not None and not self.settled:
            self.settled = True  # every worker is done: the last second's reading waits for the last closes
            settle()
        now = time.monotonic()
        while self.pending:
            tick = min(self.pending)
            reporters, snaps = self.pending[tick]
            if not (force or unfinished <= reporters or now > self.go_at + tick + self.late_tick_s):
                return
            del self.pending[tick]
            self._write_sample(tick, snaps)
            free_codec_garbage()

    def _write_sample(self, tick: int, snaps: list[dict]) -> None:
        merged = Totals()
        for snap in snaps:
            merged.add(snap)
        # Every second is whole but the last one of a run, which ends when the run does.
        span = min(1.0, max(0.001, time.monotonic() - self.go_at - (tick - 1)))
        lat = percentiles_us(merged.latency, merged.sums_us["latency"])
        con = percentiles_us(merged.connect, merged.sums_us["connect"])
        sample = {
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
            sample["target"] = round(self.schedule.value(tick - 0.5), 2)
        if self.plan.open_loop:
            sample["max_lag_us"] = merged.max_lag_us
        if self.time_wait_probe is not None:
            sample["time_wait"] = count = self.time_wait_probe()  # the run's own
            self.progress.time_wait = count
            self.progress.time_wait_peak = max(self.progress.time_wait_peak, count)
            in_use = getattr(self.time_wait_probe, "in_use", None)  # preflight.PortProbe: every state but LISTEN
            if in_use is not None:
                sample["ports_in_use"] = in_use  # the report draws it against the port budget
            found = getattr(self.time_wait_probe, "found", None)  # preflight.PortProbe: found at the start
            if found is not None:
                sample["time_wait_found"] = self.progress.time_wait_found = found
                sample["time_wait_found_reused"] = self.progress.time_wait_found_reused = \
                    self.time_wait_probe.reused
        self.folder.write_sample(sample, {"latency": merged.latency, "connect": merged.connect}, span)
        self.written_tick = tick
        self.progress.last_sample = sample

    # -- the run -------------------------------------------------------------
    def run(self) -> dict:
        plan = self.plan
        shares = plan.worker_shares()
        ctx = mp.get_context("spawn")
        messages = Inbox(ctx)
        start_event = ctx.Event()
        stop_event = ctx.Event()
        go_at_value = ctx.Value("d", 0.0)
        procs = []
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            for index, (conns, budget) in enumerate(shares):
                proc = ctx.Process(
                    target=worker_main,
                    args=(plan, index, conns, budget, 1.0 / len(shares), messages.writer(), start_event,
                          stop_event, go_at_value),
                    name=f"twload-worker-{index}",
                    daemon=True,
                )
                proc.start()
                messages.started()
                procs.append(proc)
            self._wait_ready(messages, procs)
            go_at_value.value = self.go_at = self._start_instant()
            # the interval logs' time 0, on the wall clock
            self.folder.begin(time.time() + (self.go_at - time.monotonic()))
            start_event.set()
            try:
                elapsed = self._collect(messages, procs, stop_event)
            except Exception as exc:  # keep what was collected: the summary is still written
                self.worker_failures.append(f"collecting the workers' data failed: {type(exc).__name__}: {exc}")
                self._flush(set(), force=True)
                elapsed = self.worker_elapsed or self.progress.elapsed_s
        finally:
            stop_event.set()
            start_event.set()
            for proc in procs:
                proc.join(timeout=2.0)
                if proc.is_alive():
                    proc.kill()
                    proc.join(timeout=2.0)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            messages.close()
        return self._summary(elapsed, len(shares))

    def _wait_ready(self, messages, procs) -> None:
        ready = set()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while len(ready) < len(procs):
            if self.signal_received is not None:
                raise RunError("interrupted before the run started")
            if time.monotonic() > deadline:
                raise RunError("workers did not start within 30 s")
            dead = [p for p in procs if p.exitcode is not None]
            if dead:
                raise RunError(f"worker {dead[0].name} exited with code {dead[0].exitcode} before starting")
            try:
                message = messages.get(timeout=0.1)
            except queue_mod.Empty:
                continue
            if isinstance(message, Ready):
                ready.add(message.worker)
                self.engine = {"engine": message.engine, "io": message.io}
            elif isinstance(message, Crash):
                raise RunError(f"worker {message.worker} could not start: {message.error}")

    def _watchdog(self, procs, finished: set[int], now: float) -> None:
        """Past the planned end plus WATCHDOG_GRACE_S: kill each worker still running, by name."""
        if self.plan.duration_s is None or now < self.go_at + self.plan.duration_s + WATCHDOG_GRACE_S:
            return
        for index, proc in enumerate(procs):
            if index not in finished:
                self.worker_failures.append(
                    f"worker {index} still running {WATCHDOG_GRACE_S:g} s after the planned end "
                    f"({self.plan.duration_s:g} s); killed by the watchdog")
                proc.kill()
                finished.add(index)

    def _start_instant(self) -> float:
        """When the workers start (time.monotonic()); every worker is ready by now."""
        return time.monotonic() + 0.05

    def _collect(self, messages, procs, stop_event) -> float:
        finished: set[int] = set()
        stop_sent_at = None
        last_progress = 0.0
        while len(finished) < len(procs):
            now = time.monotonic()
            self.progress.elapsed_s = max(0.0, now - self.go_at)
            self._watchdog(procs, finished, now)
            if (stop_sent_at is None and self.plan.max_errors is not None
                    and self.progress.totals.error_count > self.plan.max_errors):
                self.stopped_by = "max_errors"
                self.progress.stopping = f"more than {self.plan.max_errors} errors"
            if (self.signal_received is not None or self.stopped_by) and stop_sent_at is None:
                stop_event.set()
                stop_sent_at = now
            if stop_sent_at is not None and now - stop_sent_at > self.final_grace_s:
                for index, proc in enumerate(procs):
                    if index not in finished:
                        self.worker_failures.append(f"worker {index} did not stop in time; killed")
                        proc.kill()
                        finished.add(index)
                break
            try:
                self._handle(messages.get(timeout=0.1), finished)
            except queue_mod.Empty:
                pass
            for index, proc in enumerate(procs):
                if index not in finished and proc.exitcode is not None:
                    self._drain(messages, finished)
                    if index not in finished:
                        self.worker_failures.append(self._death(index, proc))
                        finished.add(index)
            self._flush(set(range(len(procs))) - finished)
            if now - last_progress >= 0.25:
                last_progress = now
                self.on_progress(self.progress)
        self._drain(messages, finished)
        self._flush(set(), force=True)
        self.on_progress(self.progress)
        return self.worker_elapsed or self.progress.elapsed_s

    def _death(self, index: int, proc) -> str:
        """The summary's line for a worker that ended without its last snapshot."""
        return f"worker {index} died with exit code {proc.exitcode}"

    def _handle(self, message: Message, finished: set[int]) -> None:
        """One worker message: a second's snapshot, its last one, or its crash."""
        match message:
            case Tick(worker, tick, snap):
                self._add(worker, tick, snap)
            case Final(worker, tick, snap, elapsed_s):
                self._add(worker, tick, snap)
                finished.add(worker)
                self.worker_elapsed = max(self.worker_elapsed, elapsed_s)
            case Crash(worker, error):
                self.worker_failures.append(f"worker {worker} crashed: {error}")
                finished.add(worker)

    def _drain(self, messages, finished: set[int]) -> None:
        """Take what is already queued (a dead worker's last seconds are worth keeping)."""
        while True:
            try:
                message = messages.get_nowait()
            except (queue_mod.Empty, EOFError, OSError):
                return
            self._handle(message, finished)

    def _summary(self, elapsed: float, workers: int) -> dict:
        plan = self.plan
        totals = self.progress.totals
        summary = {
            "url": plan.url,
            "close": plan.close,
            "connections": plan.connections,
            "workers": workers,
            **self.engine,
            "duration_s": round(elapsed, 3),
            "requests": totals.requests,
            "rps": round(totals.requests / elapsed, 1) if elapsed > 0 else 0.0,
            "status": {str(k): v for k, v in sorted(totals.status.items())},
            "errors": dict(sorted(totals.errors.items())),
            "connections_opened": totals.connections_opened,
            "latency_us": percentiles_us(totals.latency, totals.sums_us["latency"]),
            "connect_us": percentiles_us(totals.connect, totals.sums_us["connect"]),
            "bytes_in": totals.bytes_in,
            "bytes_out": totals.bytes_out,
        }
        if plan.requests is not None:
            summary["requests_planned"] = plan.requests
        if plan.duration_s is not None:
            summary["duration_planned_s"] = plan.duration_s
        if self.signal_received is not None:
            summary["interrupted"] = signal.Signals(self.signal_received).name
        if self.stopped_by:
            summary["stopped_by"] = self.stopped_by
            summary["max_errors"] = plan.max_errors
        if self.worker_failures:
            summary["worker_failures"] = self.worker_failures
        if totals.first_errors:
            summary["first_errors"] = dict(sorted(totals.first_errors.items()))
        if totals.peer_bytes:
            summary["peer_bytes"] = escaped(totals.peer_bytes)
        if totals.tls_reason:
            summary["tls_reason"] = totals.tls_reason
        if plan.open_loop:
            summary.update(open_loop_block(self.schedule, totals, elapsed, plan))
        if plan.target.scheme == "https":
            summary["tls_handshake_us"] = percentiles_us(totals.tls, totals.sums_us["tls"])
            if totals.tls_handshakes is not None:  # the core counts them (asyncio does not)
                summary["tls_handshakes"] = totals.tls_handshakes
                summary["tls_resumed"] = totals.tls_resumed
        if self.time_wait_probe is not None:
            summary.update(self._time_wait_keys())
        return summary

    def _time_wait_keys(self) -> dict:
        """summary.json's client TIME_WAIT towards the target (with a preflight.PortProbe, every key;
        with a bare count, the peak alone):
          time_wait_peak          the run's own: sockets that entered TIME_WAIT after the run started
          time_wait_at_start      found at the start, before the first connection (earlier connections')
          ports_in_use_at_start   every client socket towards the target then, all states but LISTEN
          time_wait_found         of the found ones, still held at the last reading (absent where
                                  the kernel's timers cannot be read: the /proc fallback)
          time_wait_found_reused  of the found ones, taken over by the run's connects (tcp_tw_reuse)
                                  before their 60 s ran out, by the last reading
        Each sample holds `time_wait` (own), `ports_in_use`, `time_wait_found` and
        `time_wait_found_reused` as read that second."""
        keys: dict = {"time_wait_peak": self.progress.time_wait_peak}
        start = getattr(self.time_wait_probe, "start", None)
        if start is not None:
            keys["time_wait_at_start"] = start.time_wait
            keys["ports_in_use_at_start"] = start.ports_in_use
        if self.progress.time_wait_found is not None:
            keys["time_wait_found"] = self.progress.time_wait_found
            keys["time_wait_found_reused"] = self.progress.time_wait_found_reused
        return keys


def run_to_folder(plan: Plan, path: Path, on_progress=None, time_wait_probe=None, finish=None,
                  record: dict | None = None) -> dict:
    """Run a plan into a run folder and write its summary; `finish` may add to it first.

    plan.json (`record`, by default the plan alone) is on disk before any worker starts."""
    folder = RunFolder(path)
    try:
        folder.write_plan(record if record is not None else plan_record(plan))
        summary = Supervisor(plan, folder, on_progress, time_wait_probe).run()
        folder.write_summary(summary)  # on disk at once, whatever `finish` does
        if finish is not None:
            finish(summary)
            folder.write_summary(summary)
    finally:
        folder.close()
    return summary


def open_loop_block(schedule, totals: Totals, elapsed: float, plan: Plan) -> dict:
    """Target vs achieved rate, service time beside the CO-corrected latency, and the lag."""
    finite = schedule.total_s != float("inf")
    target = schedule.planned_requests() / schedule.total_s if finite else plan.rate
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


EXIT_FAILED = 1  # nothing succeeded, or --max-errors stopped the run


def exit_code_for(summary: dict) -> int:
    """130 after SIGINT, 143 after SIGTERM (the shell's 128 + signal); 1 when no request got a
    response or --max-errors stopped the run; else 0."""
    interrupted = summary.get("interrupted")
    if interrupted:
        return 128 + signal.Signals[interrupted].value
    if summary.get("stopped_by") or summary["requests"] == 0:
        return EXIT_FAILED
    return 0
