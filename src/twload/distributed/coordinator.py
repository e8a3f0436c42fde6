"""The coordinator: a run over Dask workers, merged into one run folder as a local run is.

DaskRun is a transport, as the local supervisor's worker processes are: each shard (one
per Dask worker) is a task, its messages arrive as events on the run's topic, a Dask
Variable carries the common start instant and a Dask Event the stop. The shards' snapshots
feed the same merger (twload.merge: per-second merging, histograms added, never percentiles
averaged, and the summary), and the local run's collecting loop (engine.supervisor.Control)
handles signals, stops and seconds.
"""

from __future__ import annotations

import logging
import queue
import secrets
import signal
import time
from collections import Counter
from collections.abc import Iterable
from contextlib import contextmanager

import dask

from twload import __version__
from twload.distributed.messages import MalformedEvent, ShardDone, ShardError, ShardReady, ShardTick, decode
from twload.distributed.spec import ClusterSpec
from twload.distributed.split import Shard, WorkerSlot, merged_budget, wall_line
from twload.distributed.task import names, run_shard
from twload.engine.supervisor import FINAL_GRACE_S, Control, FolderOut, RunError
from twload.merge.merger import Merger
from twload.merge.summary import Summary
from twload.metrics import Snapshot, destination_rows
from twload.plan import Plan
from twload.ports import wall
from twload.results import RunFolder

CONNECT_TIMEOUT_S = 10.0  # to reach a --scheduler
WORKERS_WAIT_S = 10.0  # a scheduler with no worker yet: how long to wait for one
READY_TIMEOUT_S = 90.0  # every shard's pre-flight and engine processes (slow on a busy host)
GO_DELAY_S = 1.0  # the start instant is this far ahead when announced: every shard hears it in time
WATCH_S = 2.0  # how often the scheduler's worker list is read to notice a lost worker (a costly request)
SCHEDULER_SILENT_S = 15.0  # the scheduler has not answered for this long: every worker counts as lost
FINISHED_GRACE_S = 3.0  # a task ended: its last events may still be on their way


# A local cluster runs one long task per worker, on the same host as the load: Dask's periodic
# watchers (a stack sampler every 10 ms, event-loop ticks every 20 ms, memory and system monitors)
# cost that host CPU the engines want, and tell us nothing. Nannies pass this config to their workers.
QUIET_LOCAL_CLUSTER = {"distributed": {
    "worker": {"profile": {"enabled": False}, "memory": {"monitor-interval": "2s"}},
    "admin": {"tick": {"interval": "1s", "limit": "30s"},
              "system-monitor": {"interval": "2s", "gil": {"enabled": False}}},
}}


class DistributedError(RunError):
    """The cluster could not be used, or the run was refused; the message is for the user."""

    exit_code = 1


@contextmanager
def connect(spec: ClusterSpec):
    """A Dask Client: to a LocalCluster on 127.0.0.1, or to --scheduler with Dask's TLS when asked."""
    from distributed import Client, LocalCluster
    from distributed.security import Security

    logging.getLogger("distributed").setLevel(logging.CRITICAL)  # its lost-worker logs are our summary's job
    if spec.local_workers:
        dask.config.update(dask.config.config, QUIET_LOCAL_CLUSTER, priority="new")
        # Loopback only and no dashboard: a scheduler runs whatever it is sent. Its HTTP server (/health)
        # still listens: on a random port, since the default 8787 may be another run's (a warning, then).
        with LocalCluster(n_workers=spec.local_workers, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address=None, silence_logs=logging.CRITICAL,
                          scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster:
            with Client(cluster) as client:
                yield client
        return
    security = None
    if spec.tls_ca_file:
        security = Security(tls_ca_file=spec.tls_ca_file, tls_client_cert=spec.tls_cert,
                            tls_client_key=spec.tls_key, require_encryption=True)
    try:
        client = Client(spec.scheduler, security=security, timeout=CONNECT_TIMEOUT_S)
    except (OSError, ValueError, TypeError) as exc:
        raise DistributedError(f"cannot reach the Dask scheduler at {spec.scheduler}: {one_line(exc)}") from None
    with client:
        yield client


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def scheduler_workers(client) -> dict:
    """Every worker the scheduler knows. distributed 2025.4 to 2026.6 listed only the first 5 unless
    asked for all (scheduler_info(n_workers=5) by default: dask/distributed #9045, undone by #9308);
    older releases have no such argument."""
    try:
        return client.scheduler_info(n_workers=-1)["workers"]
    except TypeError:
        return client.scheduler_info()["workers"]


def worker_slots(client) -> list[WorkerSlot]:
    """The cluster's workers, in a stable order; waits a little for a first one."""
    try:
        client.wait_for_workers(1, timeout=WORKERS_WAIT_S)
    except TimeoutError:
        raise DistributedError(f"the Dask scheduler has no workers (waited {WORKERS_WAIT_S:g} s)") from None
    workers = scheduler_workers(client)
    return [WorkerSlot(address, info.get("host", address), int(info.get("nthreads", 1)))
            for address, info in sorted(workers.items())]


class Events:
    """The shards' messages as they arrive on the run's topic (what Control.collect reads).

    Whoever reaches the scheduler can log events on the topic too: a payload that is not a shard
    message of this run is counted (`malformed`, the first one's reason kept) and dropped."""

    def __init__(self, shards: int | None = None) -> None:
        self.queue: queue.Queue = queue.Queue()
        self.shards = shards
        self.malformed = 0
        self.first_malformed = ""

    def __call__(self, event) -> None:  # runs on the Client's event loop
        try:
            _, payload = event
            message = decode(payload, self.shards)
        except (MalformedEvent, TypeError, ValueError) as exc:  # TypeError, ValueError: not a (time, payload) pair
            self.malformed += 1
            self.first_malformed = self.first_malformed or (str(exc) if isinstance(exc, MalformedEvent)
                                                            else "not a (time, payload) event")
            return
        self.queue.put(message)

    def get(self, timeout: float | None = None):
        return self.queue.get(timeout=timeout)

    def get_nowait(self):
        return self.queue.get_nowait()


class LiveWorkers:
    """The scheduler's worker list, read at most every WATCH_S."""

    def __init__(self, client) -> None:
        self.client = client
        self.read_at = 0.0
        self.answered_at = time.monotonic()
        self.addresses: set[str] | None = None  # None: not read yet, everyone counts as alive

    def alive(self, address: str) -> bool:
        now = time.monotonic()
        if now - self.read_at >= WATCH_S:
            self.read_at = now
            try:
                self.addresses = set(scheduler_workers(self.client))
                self.answered_at = now
            except OSError:  # one slow answer is no loss; a scheduler silent this long has lost them all
                if now - self.answered_at > SCHEDULER_SILENT_S:
                    self.addresses = set()
        return self.addresses is None or address in self.addresses


class ShardHandle:
    """A shard's task, seen the way the collecting loop sees a worker (engine.supervisor.WorkerHandle)."""

    def __init__(self, shard: Shard, future, live: LiveWorkers, control: Control) -> None:
        self.shard = shard
        self.future = future
        self.live = live
        self.control = control
        self.lost_at_s: float | None = None
        self.finished_seen: float | None = None

    @property
    def exitcode(self) -> int | None:
        if not self.live.alive(self.shard.worker.address):
            if self.lost_at_s is None:  # seconds into the run (0 when lost before its start)
                go_at = self.control.go_at
                self.lost_at_s = max(0.0, time.monotonic() - go_at) if go_at else 0.0
            return -signal.SIGKILL
        status = self.future.status
        if status in ("error", "cancelled"):
            return 1
        if status == "finished":
            now = time.monotonic()
            self.finished_seen = self.finished_seen or now
            if now - self.finished_seen > FINISHED_GRACE_S:
                return 0
        return None

    def why(self) -> str:
        """Why the shard's task ended before its run started, for the user."""
        if self.lost_at_s is not None:
            return "the worker was lost before the start"
        if self.future.status == "error":
            exc = self.future.exception()
            hint = " (is twload installed on the worker?)" if isinstance(exc, ImportError) else ""
            return f"the task failed: {type(exc).__name__}: {one_line(exc)}{hint}"
        return f"the task ended ({self.future.status}) before the start"

    def kill(self) -> None:
        """Cannot kill a Dask task: it got the stop Event and kills its own shard program."""
        self.future.cancel()

    def death(self) -> str:
        address = self.shard.worker.address
        if self.lost_at_s is not None:
            return (f"Dask worker {address} lost {self.lost_at_s:.1f}s into the run; "
                    "its seconds until then are kept, the others went on")
        return f"Dask worker {address}: its task ended (exit code {self.exitcode}) without its last second"


class DaskRun:
    # A shard writes its second when its engines reported it (or 1.5 s late), then the event
    # crosses the scheduler: the coordinator waits longer before writing a second without it.
    late_tick_s = 3.0
    final_grace_s = FINAL_GRACE_S + 15.0

    def __init__(self, plan: Plan, folder: RunFolder, client, shards: list[Shard], on_progress=None,
                 on_ready=None, on_second=()) -> None:
        self.plan = plan
        self.folder = folder
        self.merger = Merger(plan, late_tick_s=self.late_tick_s, on_second=on_second)
        self.control = Control(plan, self.merger, FolderOut(folder, self.merger, self._time_wait), on_progress,
                               final_grace_s=self.final_grace_s)
        self.client = client
        self.shards = shards
        self.on_ready = on_ready or (lambda details: None)  # may raise RunError to refuse the start
        self.run_id = secrets.token_hex(4)
        self.details: dict[int, dict] = {}
        self.shard_summaries: dict[int, Summary] = {}
        self.shard_counts: dict[int, dict] = {s.index: new_counts() for s in shards}
        self.shard_time_wait: dict[int, int] = {}
        self.handles: list[ShardHandle] = []
        self.events = Events(len(shards))

    def _time_wait(self) -> int:
        """Client TIME_WAIT towards the target: shards on one host and namespace count the same sockets."""
        by_netns: dict[str, int] = {}
        for index, count in self.shard_time_wait.items():
            key = self.details.get(index, {}).get("netns", str(index))
            by_netns[key] = max(by_netns.get(key, 0), count)
        return sum(by_netns.values())

    def handle(self, message, finished: set[int]) -> None:
        """One shard message: its engines' snapshots of a second, its end, its error, or its readiness."""
        match message:
            case ShardTick(shard, tick, snapshots, time_wait):
                for snap in snapshots:
                    self.merger.add(shard, tick, snap)
                    add_counts(self.shard_counts[shard], snap)
                if time_wait is not None:
                    self.shard_time_wait[shard] = time_wait
            case ShardDone(shard, summary):
                self.shard_summaries[shard] = summary
                self.control.worker_elapsed = max(self.control.worker_elapsed, self.shard_summaries[shard].duration_s)
                finished.add(shard)
            case ShardError(shard, error):
                self.control.worker_failures.append(f"Dask worker {self.shards[shard].worker.address}: {error}")
                finished.add(shard)
            case ShardReady(shard, detail):
                self.details[shard] = detail

    # -- the run -------------------------------------------------------------
    def run(self) -> Summary:
        from distributed import Event, Variable

        topic, go_name, stop_name = names(self.run_id)
        events = self.events
        go, stop = Variable(go_name, client=self.client), Event(stop_name, client=self.client)
        self.client.subscribe_topic(topic, events)
        control = self.control
        started = False
        live = LiveWorkers(self.client)
        try:
            with control.signals():
                for shard in self.shards:
                    future = self.client.submit(run_shard, shard.index, shard.plan, self.run_id, __version__,
                                                key=f"twload-shard-{self.run_id}-{shard.index}", pure=False,
                                                workers=[shard.worker.address], allow_other_workers=False)
                    self.handles.append(ShardHandle(shard, future, live, control))
                self._wait_ready(events, self.handles)
                self.on_ready([self.details[s.index] for s in self.shards])
                # wall-clock time is what hosts share; this process counts the same instant in monotonic time
                go_wall = time.time() + GO_DELAY_S
                go.set(go_wall)
                control.go_at = time.monotonic() + GO_DELAY_S
                control.out.begin(go_wall)  # the interval logs' time 0
                started = True
                elapsed = control.collect(events, self.handles, self.handle, stop)
        finally:
            try:
                if not started:
                    go.set(-1.0)  # every shard waiting for the start: stop instead
                if len(self.shard_summaries) < len(self.shards):  # some still run (Ctrl-C, a lost one)
                    stop.set()
                self._settle()
                stop.clear()  # distributed forgets an Event only once it is unset: none kept per run
                self.client.unsubscribe_topic(topic)
            except OSError:  # the scheduler is gone: nothing left to tell or to wait for
                pass
        return self._distributed_summary(elapsed)

    def _wait_ready(self, messages, procs) -> None:
        def exited() -> None:
            for handle in procs:
                if handle.shard.index not in self.details and handle.exitcode is not None:
                    raise DistributedError(f"Dask worker {handle.shard.worker.address}: {handle.why()}")

        def take(message) -> None:
            if isinstance(message, ShardError):
                raise DistributedError(f"Dask worker {self.shards[message.shard].worker.address} "
                                       f"({self.shards[message.shard].worker.host}): {message.error}")
            if isinstance(message, ShardReady):
                # the worker's clock against ours (its message's transit makes it look a little behind)
                message.detail["clock_offset_s"] = round(message.detail.pop("clock_s") - time.time(), 3)
                self.details[message.shard] = message.detail

        self.control.wait_ready(
            messages, lambda: len(self.details) < len(self.shards), take, exited, READY_TIMEOUT_S,
            DistributedError(f"the Dask workers did not get ready within {READY_TIMEOUT_S:g} s"))

    def _settle(self) -> None:
        """Let the tasks return (they stop their shards), so the cluster is free for the next run."""
        from distributed import Variable, wait

        futures = [h.future for h in self.handles]
        running = [h.future for h in self.handles if h.lost_at_s is None]  # a lost worker's task never ends
        try:
            wait(running, timeout=KILL_GRACE_S)
        except TimeoutError:
            pass
        self.client.cancel(futures)
        Variable(names(self.run_id)[1], client=self.client).delete()

    # -- the summary ---------------------------------------------------------
    def _distributed_summary(self, elapsed: float) -> Summary:
        summary = self.control.summary(sum(len(s.plan.worker_shares()) for s in self.shards), elapsed)
        preflights = [self.details[s.index] for s in self.shards]
        timestamps = {p["target_timestamps"] for p in preflights}
        failures = [f"Dask worker {self.shards[i].worker.address}: {line}"
                    for i, s in sorted(self.shard_summaries.items()) for line in s.worker_failures]
        # what each shard's engine processes reported (the compiled core's), joined where they differ
        engines = joined(s.engine for s in self.shard_summaries.values())
        ios = joined(s.io for s in self.shard_summaries.values())
        summary = summary.with_(
            dask_workers=len(self.shards),
            workers_detail=tuple(self._detail(h) for h in self.handles),
            target_timestamps=timestamps.pop() if len(timestamps) == 1 else None,
            budget=merged_budget(preflights),
            worker_failures=summary.worker_failures + tuple(failures),
            # named, never acted on: someone else logged on the run's topic
            malformed_events=({"count": self.events.malformed, "first": self.events.first_malformed}
                              if self.events.malformed else None),
            lost_workers=tuple(h.shard.worker.address for h in self.handles if h.lost_at_s is not None) or None,
            engine=engines or summary.engine,
            io=ios or summary.io,
        )
        if self.plan.destinations:  # targets on several destinations: each one's connections, every shard's added
            names = [f"{d.address[0]}:{d.port}" for d in self.plan.destinations]
            summary = summary.with_(destinations=tuple(destination_rows(names, self.merger.totals, None)))
        if "EADDRNOTAVAIL" in summary.errors:
            summary = summary.with_(
                wall=self._wall(summary, preflights),
                advice=tuple([line for line in [wall_line(preflights)] if line] + self._workers_advice()))
        return summary

    def _wall(self, summary: Summary, preflights: list[dict]) -> str:
        """The summary's first line at the port wall (as a local run's), with the workers' budget."""
        first = summary.first_errors.get("EADDRNOTAVAIL")
        walled = sum(1 for counts in self.shard_counts.values() if counts["errors"].get("EADDRNOTAVAIL"))
        budget = wall_line(preflights) or f"{(summary.budget or {})['ports']} ports in all"
        target = self.plan.target
        return wall.sentence(f"{target.address[0]}:{target.port}", summary.errors["EADDRNOTAVAIL"],
                             summary.connections_opened, budget, first.at_s if first else None,
                             (walled, len(self.shards)))

    def _workers_advice(self) -> list[str]:
        """Each worker's own advice (its sysctls, its ports): said once when every worker says it."""
        by_line: dict[str, list[int]] = {}
        for index, shard_summary in sorted(self.shard_summaries.items()):
            for line in shard_summary.advice or ():
                by_line.setdefault(line, []).append(index)
        advice = []
        for line, indexes in by_line.items():
            if len(self.shards) == 1:
                advice.append(line)
            elif len(indexes) == len(self.shards):
                advice.append(f"each worker: {line}")
            else:
                where = ", ".join(self._where(i) for i in indexes)
                advice.append(f"{where}: {line}")
        return advice

    def _where(self, index: int) -> str:
        detail = self.details.get(index, {})
        return f"{detail.get('host', '?')} {','.join(detail.get('sources', []))}"

    def _detail(self, handle: ShardHandle) -> dict:
        index = handle.shard.index
        counts = self.shard_counts[index]
        own = self.shard_summaries[index].to_dict() if index in self.shard_summaries else {}
        detail = {
            "dask_worker": handle.shard.worker.address,
            **{k: v for k, v in self.details[index].items() if k in ("host", "pid", "sources",
                                                                        "engine_processes", "connections")},
            "requests": counts["requests"],
            "connections_opened": counts["connections_opened"],
            "errors": dict(sorted(counts["errors"].items())),
            "status": {str(k): v for k, v in sorted(counts["status"].items())},
        }
        for key in ("duration_s", "first_errors", "time_wait_peak", "interrupted", "stopped_by", "worker_failures",
                    "engine", "io"):
            if key in own:
                detail[key] = own[key]
        if handle.lost_at_s is not None:
            detail["lost_at_s"] = round(handle.lost_at_s, 3)
        detail["preflight"] = {k: v for k, v in self.details[index].items()
                               if k not in ("host", "sources", "engine_processes", "connections", "pid")}
        return detail


KILL_GRACE_S = 10.0  # at the end, how long the tasks get to return


def joined(values: Iterable[str | None]) -> str | None:
    """The values that were given, each once, sorted and joined by commas; None when none was."""
    given = sorted({str(v) for v in values if v is not None})
    return ",".join(given) or None


def new_counts() -> dict:
    return {"requests": 0, "connections_opened": 0, "errors": Counter(), "status": Counter()}


def add_counts(counts: dict, snap: Snapshot) -> None:
    counts["requests"] += snap.requests
    counts["connections_opened"] += snap.connections_opened
    counts["errors"].update(snap.errors)
    counts["status"].update(snap.status)
