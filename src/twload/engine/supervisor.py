"""Spawns the workers, feeds their per-second snapshots to the merger, streams the seconds, handles signals.

The supervisor never touches the hot path: it reads one message per worker per
second. Everything a worker reported before dying is kept; Ctrl-C and SIGTERM
stop the workers, wait briefly for their last snapshot and still write a summary.
The merging itself (seconds, totals, the summary) is twload.merge's, sans-IO: the
local worker processes (Supervisor) and a Dask run (distributed/) are transports
that feed it, sharing the collecting loop (Control).
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
import signal
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_readable
from pathlib import Path
from typing import Any, Protocol

from twload.engine.messages import Crash, Final, Message, Ready, Tick
from twload.engine.worker import worker_main
from twload.kernel.snmp import retransmitted_segments
from twload.merge.merger import Merger, PortReading, PortsAtStart, RunFacts
from twload.merge.summary import Summary
from twload.metrics import Snapshot, Totals, destination_rows, free_codec_garbage
from twload.plan import Plan
from twload.results import RunFolder, plan_record

READY_TIMEOUT_S = 30.0
FINAL_GRACE_S = 5.0  # after stop, how long workers get to send their last snapshot
# A worker drains for at most DRAIN_S (engine/core/worker.py: 1 s) after its duration; one
# still running this long after the planned end is stuck: the watchdog kills it, the others' data
# stays. Generous, because a kill loses the worker's unsent second: only a stuck worker gets it.
WATCHDOG_GRACE_S = 10.0


class RunError(Exception):
    """The run could not start; the message is for the user."""


class StartInterrupted(RunError):
    """SIGINT or SIGTERM (or the stop event) came while the workers were starting: nothing ran."""


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

    def saw(self, row: dict) -> None:
        """A second merged (a Merger's on_second observer): its row and its port readings."""
        self.last_sample = row
        if "time_wait" in row:
            self.time_wait = row["time_wait"]
            self.time_wait_peak = max(self.time_wait_peak, row["time_wait"])
        if "time_wait_found" in row:
            self.time_wait_found = row["time_wait_found"]
            self.time_wait_found_reused = row["time_wait_found_reused"]


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


class WorkerHandle(Protocol):
    """A worker as the collecting loop sees it: a local process, or a Dask shard's task."""

    @property
    def exitcode(self) -> int | None: ...

    def kill(self) -> None: ...

    def death(self) -> str:
        """The summary's line for a worker that ended without its last snapshot."""
        ...


class Messages(Protocol):
    """Where the workers' messages arrive: the local pipes (Inbox), or a Dask run's events."""

    def get(self, timeout: float | None = None) -> Any: ...

    def get_nowait(self) -> Any: ...


class SecondsOut(Protocol):
    """Where each due second goes: merged into the run folder, or sent on unmerged (a Dask shard)."""

    ports_measured: bool  # a port probe is read with each second
    ports_at_start: PortsAtStart | None

    def begin(self, base_epoch_s: float) -> None:
        """The run starts now (time.time()): the interval logs' time 0."""
        ...

    def write(self, tick: int, snapshots: list[Snapshot], now_s: float) -> None: ...

    def settle(self) -> None:
        """Every worker is done and the last seconds follow: let the last connections close first."""
        ...


class ProcessHandle:
    """A local worker process."""

    def __init__(self, index: int, proc) -> None:
        self.index = index
        self.proc = proc

    @property
    def exitcode(self) -> int | None:
        return self.proc.exitcode

    def kill(self) -> None:
        self.proc.kill()

    def death(self) -> str:
        """A negative exit code is the signal that ended the worker, named."""
        code = self.proc.exitcode
        killed = code is not None and -code in signal.valid_signals()
        how = f" (killed by {signal.Signals(-code).name})" if killed else ""
        return f"worker {self.index} died with exit code {code}{how}"


def port_reading(probe) -> PortReading:
    """Read the port probe once: a preflight.PortProbe, or a bare callable giving the run's TIME_WAIT."""
    count = probe()
    found = getattr(probe, "found", None)  # preflight.PortProbe: found at the start, still held
    return PortReading(count, in_use=getattr(probe, "in_use", None),  # every state but LISTEN
                       found=found, found_reused=probe.reused if found is not None else None)


class FolderOut:
    """Each due second merged (Merger.merge) and written to the run folder, with the ports read then."""

    def __init__(self, folder: RunFolder, merger: Merger, time_wait_probe=None) -> None:
        self.folder = folder
        self.merger = merger
        self.probe = time_wait_probe  # () -> client TIME_WAIT sockets towards the target
        self.ports_measured = time_wait_probe is not None
        start = getattr(time_wait_probe, "start", None)  # preflight.PortProbe: what the pre-flight found
        self.ports_at_start = PortsAtStart(start.time_wait, start.ports_in_use) if start is not None else None

    def begin(self, base_epoch_s: float) -> None:
        self.folder.begin(base_epoch_s)
        self.merger.path.begin(retransmitted_segments())

    def write(self, tick: int, snapshots: list[Snapshot], now_s: float) -> None:
        reading = port_reading(self.probe) if self.probe is not None else None
        second = self.merger.merge(tick, snapshots, now_s, reading, retransmitted_segments())
        self.folder.write_sample(second.row, second.histograms, second.span_s)

    def settle(self) -> None:
        settle = getattr(self.probe, "settle", None)  # preflight.PortProbe
        if settle is not None:
            settle()


class Control:
    """The collecting loop every transport shares: the workers' messages in (a transport's own
    `handle` feeds them to the merger), each due second out, and the stop rules: a signal,
    --max-errors, a worker that does not stop within the grace, the watchdog."""

    def __init__(self, plan: Plan, merger: Merger, out: SecondsOut, on_progress=None,
                 final_grace_s: float = FINAL_GRACE_S, stop: threading.Event | None = None) -> None:
        self.plan = plan
        self.stop = stop  # set from another thread: stop the run as Ctrl-C does
        self.merger = merger
        self.out = out
        self.final_grace_s = final_grace_s
        self.on_progress = on_progress or (lambda progress: None)
        self.progress = Progress(planned_s=plan.duration_s, planned_requests=plan.requests, totals=merger.totals)
        merger.on_second.append(self.progress.saw)
        self.signal_received: int | None = None
        self.stopped_by: str | None = None  # "max_errors" when --max-errors ended the run
        self.worker_failures: list[str] = []
        self.engine: dict[str, str] = {}  # {"engine": "core"|"asyncio", "io": "epoll"|"uring"}
        self.worker_elapsed = 0.0  # the longest a finished worker ran
        self.go_at = 0.0  # the start, time.monotonic()
        self.settled = False  # the port probe waited for the last connections' closing handshakes

    # -- signals -------------------------------------------------------------
    def on_signal(self, signum, frame) -> None:
        if self.signal_received is None:
            self.signal_received = signum
            self.progress.stopping = signal.Signals(signum).name

    def stop_asked(self) -> bool:
        """A signal came, or `stop` was set (it counts as SIGINT: the summary says interrupted)."""
        if self.signal_received is None and self.stop is not None and self.stop.is_set():
            self.on_signal(signal.SIGINT, None)
        return self.signal_received is not None

    @contextmanager
    def signals(self):
        """SIGINT and SIGTERM stop the run (the summary is still written), for as long as it runs.

        Only the main thread may set a handler (signal.signal raises ValueError in any other): a run
        started from another thread (twload.run() in a thread pool, asyncio.to_thread) leaves the
        handlers be; Ctrl-C reaches the main thread, which stops such a run by setting `stop`."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # -- seconds -------------------------------------------------------------
    def flush(self, unfinished: set[int], force: bool = False) -> None:
        """Write each second once every worker still running has reported it (or it is late)."""
        if not unfinished and self.merger.waiting and not self.settled:
            self.settled = True  # every worker is done: the last second's reading waits for the last closes
            self.out.settle()
        now_s = time.monotonic() - self.go_at
        for tick in self.merger.due(unfinished, now_s, force):
            self.out.write(tick, self.merger.take(tick), now_s)
            free_codec_garbage()

    # -- the start -----------------------------------------------------------
    def wait_ready(self, messages: Messages, waiting: Callable[[], bool], take: Callable[[Any], None],
                   exited: Callable[[], None], timeout_s: float, late: RunError) -> None:
        """While `waiting()` (a worker has yet to say it is ready), every message goes to `take`, which
        raises for a worker that could not start; `exited` raises for one that ended. A signal ends
        the wait too, and so does timeout_s (raising `late`)."""
        deadline = time.monotonic() + timeout_s
        while waiting():
            if self.stop_asked():
                raise StartInterrupted("interrupted before the run started")
            if time.monotonic() > deadline:
                raise late
            exited()
            try:
                message = messages.get(timeout=0.1)
            except queue_mod.Empty:
                continue
            take(message)

    # -- the loop ------------------------------------------------------------
    def collect(self, messages: Messages, handles: Sequence[WorkerHandle],
                handle: Callable[[Any, set[int]], None], stop_event) -> float:
        """Until every worker finished (or was given up on); returns how long the workers ran."""
        finished: set[int] = set()
        stop_sent_at = None
        last_progress = 0.0
        while len(finished) < len(handles):
            now = time.monotonic()
            self.progress.elapsed_s = max(0.0, now - self.go_at)
            self._watchdog(handles, finished, now)
            if (stop_sent_at is None and self.plan.max_errors is not None
                    and self.merger.totals.error_count > self.plan.max_errors):
                self.stopped_by = "max_errors"
                self.progress.stopping = f"more than {self.plan.max_errors} errors"
            if (self.stop_asked() or self.stopped_by) and stop_sent_at is None:
                stop_event.set()
                stop_sent_at = now
            if stop_sent_at is not None and now - stop_sent_at > self.final_grace_s:
                for index, worker in enumerate(handles):
                    if index not in finished:
                        self.worker_failures.append(f"worker {index} did not stop in time; killed")
                        worker.kill()
                        finished.add(index)
                break
            try:
                handle(messages.get(timeout=0.1), finished)
            except queue_mod.Empty:
                pass
            for index, worker in enumerate(handles):
                if index not in finished and worker.exitcode is not None:
                    self.drain(messages, handle, finished)
                    if index not in finished:
                        self.worker_failures.append(worker.death())
                        finished.add(index)
            self.flush(set(range(len(handles))) - finished)
            if now - last_progress >= 0.25:
                last_progress = now
                self.on_progress(self.progress)
        self.drain(messages, handle, finished)
        self.flush(set(), force=True)
        self.on_progress(self.progress)
        return self.worker_elapsed or self.progress.elapsed_s

    def _watchdog(self, handles: Sequence[WorkerHandle], finished: set[int], now: float) -> None:
        """Past the planned end plus WATCHDOG_GRACE_S: kill each worker still running, by name."""
        if self.plan.duration_s is None or now < self.go_at + self.plan.duration_s + WATCHDOG_GRACE_S:
            return
        for index, worker in enumerate(handles):
            if index not in finished:
                self.worker_failures.append(
                    f"worker {index} still running {WATCHDOG_GRACE_S:g} s after the planned end "
                    f"({self.plan.duration_s:g} s); killed by the watchdog")
                worker.kill()
                finished.add(index)

    def drain(self, messages: Messages, handle: Callable[[Any, set[int]], None], finished: set[int]) -> None:
        """Take what is already queued (a dead worker's last seconds are worth keeping)."""
        while True:
            try:
                message = messages.get_nowait()
            except (queue_mod.Empty, EOFError, OSError):
                return
            handle(message, finished)

    def summary(self, workers: int, elapsed_s: float) -> Summary:
        """The merger's summary with what this loop learnt (signal, stop, failures, engine)."""
        return self.merger.summary(RunFacts(
            workers=workers, elapsed_s=elapsed_s, engine=self.engine,
            interrupted=signal.Signals(self.signal_received).name if self.signal_received is not None else None,
            stopped_by=self.stopped_by, worker_failures=self.worker_failures,
            ports_measured=self.out.ports_measured, ports_at_start=self.out.ports_at_start))


class Supervisor:
    """Local worker processes: starts one per share of the plan, feeds their snapshots to the merger,
    stops them. `out` takes each due second; `start` gives the start instant (time.monotonic()),
    by default a moment after every worker is ready."""

    def __init__(self, plan: Plan, merger: Merger, out: SecondsOut, on_progress=None,
                 start: Callable[[], float] | None = None, stop: threading.Event | None = None) -> None:
        self.plan = plan
        self.merger = merger
        self.control = Control(plan, merger, out, on_progress, stop=stop)
        self.start = start or (lambda: time.monotonic() + 0.05)

    def run(self) -> Summary:
        plan, control = self.plan, self.control
        shares = plan.worker_shares()
        ctx = mp.get_context("spawn")
        messages = Inbox(ctx)
        start_event = ctx.Event()
        stop_event = ctx.Event()
        go_at_value = ctx.Value("d", 0.0)
        procs = []
        with control.signals():
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
                go_at_value.value = control.go_at = self.start()
                # the interval logs' time 0, on the wall clock
                control.out.begin(time.time() + (control.go_at - time.monotonic()))
                start_event.set()
                try:
                    elapsed = control.collect(messages, [ProcessHandle(i, p) for i, p in enumerate(procs)],
                                              self.handle, stop_event)
                except Exception as exc:  # keep what was collected: the summary is still written
                    control.worker_failures.append(
                        f"collecting the workers' data failed: {type(exc).__name__}: {exc}")
                    control.flush(set(), force=True)
                    elapsed = control.worker_elapsed or control.progress.elapsed_s
            finally:
                stop_event.set()
                start_event.set()
                for proc in procs:
                    proc.join(timeout=2.0)
                    if proc.is_alive():
                        proc.kill()
                        proc.join(timeout=2.0)
                messages.close()
        return control.summary(len(shares), elapsed)

    def _wait_ready(self, messages: Inbox, procs) -> None:
        ready: set[int] = set()

        def exited() -> None:
            dead = [p for p in procs if p.exitcode is not None]
            if dead:
                raise RunError(f"worker {dead[0].name} exited with code {dead[0].exitcode} before starting")

        def take(message: Message) -> None:
            if isinstance(message, Ready):
                ready.add(message.worker)
                self.control.engine = {"engine": message.engine, "io": message.io}
            elif isinstance(message, Crash):
                raise RunError(f"worker {message.worker} could not start: {message.error}")

        self.control.wait_ready(messages, lambda: len(ready) < len(procs), take, exited, READY_TIMEOUT_S,
                                RunError(f"workers did not start within {READY_TIMEOUT_S:g} s"))

    def handle(self, message: Message, finished: set[int]) -> None:
        """One worker message: a second's snapshot, its last one, or its crash."""
        match message:
            case Tick(worker, tick, snap):
                self.merger.add(worker, tick, snap)
            case Final(worker, tick, snap, elapsed_s):
                self.merger.add(worker, tick, snap)
                finished.add(worker)
                self.control.worker_elapsed = max(self.control.worker_elapsed, elapsed_s)
            case Crash(worker, error):
                self.control.worker_failures.append(f"worker {worker} crashed: {error}")
                finished.add(worker)


def run_into_folder(plan: Plan, path: Path, on_progress=None, time_wait_probe=None,
                    finish: Callable[[Summary], Summary] | None = None, record: dict | None = None,
                    on_second: Sequence[Callable[[dict], None]] = (),
                    stop: threading.Event | None = None) -> Summary:
    """Run a plan into a run folder and write its summary; `finish` may complete it first (the
    pre-flight's keys, the thresholds).

    plan.json (`record`, by default the plan alone) is on disk before any worker starts; `on_second`
    observers get each second's samples.jsonl row as it is written; `stop`, set from another thread,
    stops the run as SIGINT does."""
    folder = RunFolder(path)
    try:
        folder.write_plan(record if record is not None else plan_record(plan))
        merger = Merger(plan, on_second=on_second)
        summary = Supervisor(plan, merger, FolderOut(folder, merger, time_wait_probe), on_progress,
                             stop=stop).run()
        if plan.destinations:  # targets on several destinations: each one's connections, its ports at the end
            read = getattr(time_wait_probe, "destination_ports", None)  # preflight.PortProbe
            names = [f"{d.address[0]}:{d.port}" for d in plan.destinations]
            rows = destination_rows(names, merger.totals, read() if read else None)
            summary = summary.with_(destinations=tuple(rows))
        folder.write_summary(summary.to_dict())  # on disk at once, whatever `finish` does
        if finish is not None:
            summary = finish(summary)
            folder.write_summary(summary.to_dict())
    finally:
        folder.close()
    return summary


def run_to_folder(plan: Plan, path: Path, on_progress=None, time_wait_probe=None,
                  finish: Callable[[Summary], Summary] | None = None, record: dict | None = None,
                  on_second: Sequence[Callable[[dict], None]] = ()) -> dict:
    """run_into_folder, the summary as summary.json holds it (what the tests compare with the folder)."""
    return run_into_folder(plan, path, on_progress, time_wait_probe, finish, record, on_second).to_dict()


EXIT_FAILED = 1  # nothing succeeded, or --max-errors stopped the run
EXIT_WORKER_LOST = 3  # the run went on without a lost worker: its numbers cover less than planned


def exit_code_for(summary: Summary) -> int:
    """130 after SIGINT, 143 after SIGTERM (the shell's 128 + signal); 1 when no request got a
    response or --max-errors stopped the run; 3 when a worker was lost (a local worker process that
    died or was killed, a Dask worker) and the run went on without it; else 0."""
    if summary.interrupted:
        return 128 + signal.Signals[summary.interrupted].value
    if summary.stopped_by or summary.requests == 0:
        return EXIT_FAILED
    if summary.worker_failures or summary.lost_workers:
        return EXIT_WORKER_LOST
    return 0
