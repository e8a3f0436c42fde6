"""A worker process's entry: dies with its supervisor, reports over its pipe, runs its engine's loop."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal

from twload.engine.limits import raise_file_limit
from twload.engine.messages import Crash, Final, Ready, Tick
from twload.metrics import Snapshot

PR_SET_PDEATHSIG = 1  # include/uapi/linux/prctl.h


def die_with_parent() -> None:
    """If the supervisor is killed outright, its workers get SIGTERM instead of loading on as
    orphans (prctl PR_SET_PDEATHSIG, Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # the parent is already gone
        os._exit(1)


class Channel:
    """The worker's side of its link to the supervisor (its pipe to the Inbox, and events)."""

    def __init__(self, index: int, pipe, stop_event) -> None:
        self.index = index
        self.pipe = pipe
        self.stop_event = stop_event

    def __call__(self, tick: int, snapshot: Snapshot, final: bool = False, elapsed: float = 0.0) -> None:
        self.pipe.send(Final(self.index, tick, snapshot, elapsed) if final else Tick(self.index, tick, snapshot))

    def should_stop(self) -> bool:
        return self.stop_event.is_set()


def make_worker(plan, index, connections, budget, share) -> tuple[str, object]:
    """The loop this worker runs: the compiled core, the one engine (issue #30); not built, the
    worker fails to start with the line that says how to build it."""
    from twload.engine import core
    from twload.engine.core.worker import CoreWorker

    if not core.available():
        raise RuntimeError(core.NOT_BUILT)
    io = core.choose_io(plan.io, plan.target.scheme, plan.http2)
    return "core", CoreWorker(plan, index, connections, budget, share, io=io)


def worker_main(plan, index, connections, budget, share, pipe, start_event, stop_event, go_at_value) -> None:
    """Process entry point. SIGINT is the supervisor's to handle: it tells us to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    raise_file_limit()
    try:
        engine, worker = make_worker(plan, index, connections, budget, share)
    except BaseException as exc:
        pipe.send(Crash(index, f"{type(exc).__name__}: {exc}"))
        pipe.close()
        raise
    channel = Channel(index, pipe, stop_event)
    pipe.send(Ready(index, engine, getattr(worker, "io", "epoll")))
    start_event.wait()
    if stop_event.is_set():
        return
    try:
        worker.run(go_at_value.value, channel)
    except BaseException as exc:  # report, then die: the supervisor keeps the others
        try:
            pipe.send(Crash(index, f"{type(exc).__name__}: {exc}"))
        except OSError:
            pass  # the supervisor is gone too
        raise
    finally:
        pipe.close()
