"""The Dask task: runs on one Dask worker, starts the shard program there and relays its messages.

Dask worker processes are daemonic (no multiprocessing children), so the shard runs
as a subprocess; this task thread forwards each of its messages as an event on the
run's topic (the coordinator subscribed to it), hands it the common start instant
from a Dask Variable, and passes a stop (Ctrl-C at the coordinator: a Dask Event) on
as SIGINT, which the shard's supervisor handles like a local run's.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time

from twload import __version__
from twload.distributed.messages import ShardError, encode
from twload.distributed.shard import read_frames
from twload.plan import Plan

POLL_S = 0.25  # before the start: how often the task looks for the start instant and at its subprocess
STOP_WAIT_S = 5.0  # one wait for the stop Event (it returns at once when set)
GO_WAIT_S = 120.0  # the coordinator sets the start within its ready timeout, or says stop
KILL_AFTER_S = 15.0  # after a stop, the shard's own supervisor gives its engines 5 s; then it is killed


def names(run_id: str) -> tuple[str, str, str]:
    """The run's event topic, start Variable and stop Event."""
    return f"twload-{run_id}", f"twload-{run_id}-go", f"twload-{run_id}-stop"


def run_shard(index: int, plan: Plan, run_id: str, version: str) -> int:
    """Run shard `index` of the run on this Dask worker; returns the shard program's exit code."""
    from distributed import Event, Variable, get_worker

    worker = get_worker()
    topic, go_name, stop_name = names(run_id)
    if version != __version__:
        worker.log_event(topic, encode(ShardError(index, f"this worker has twload {__version__}, "
                                                         f"the coordinator {version}: install the same version")))
        return 1
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "twload.distributed.shard", str(write_end), str(os.getpid())],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, pass_fds=(write_end,), env=engine_environ(),
    )
    os.close(write_end)
    relay = threading.Thread(target=_relay, args=(read_end, worker, topic), daemon=True)
    relay.start()
    assert proc.stdin is not None
    try:
        proc.stdin.write(pickle.dumps((index, plan)))
        proc.stdin.flush()
        go = _wait_for_start(Variable(go_name), proc)
        proc.stdin.write(b"stop\n" if go is None else f"{go!r}\n".encode())
        proc.stdin.close()
    except OSError:  # the shard ended already (its error is on the way)
        pass
    _follow(proc, Event(stop_name))
    relay.join(timeout=5.0)
    return proc.returncode


def engine_environ() -> dict[str, str]:
    """This worker's environment less what the Dask nanny sets for its own workers' memory
    (distributed.nanny.pre-spawn-environ: MALLOC_TRIM_THRESHOLD_=65536 makes glibc give memory back
    at every free of 64 KiB): the engines should run as they do in a local run."""
    from dask import config

    env = dict(os.environ)
    for name, value in (config.get("distributed.nanny.pre-spawn-environ", {}) or {}).items():
        if env.get(name) == str(value):
            del env[name]
    return env


def _relay(read_end: int, worker, topic: str) -> None:
    with os.fdopen(read_end, "rb") as pipe:
        for payload in read_frames(pipe):
            worker.log_event(topic, payload)


def _wait_for_start(go, proc: subprocess.Popen) -> float | None:
    """The common start instant (time.time()), or None: stop (or the shard already ended)."""
    deadline = time.monotonic() + GO_WAIT_S
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            value = go.get(timeout=POLL_S)
        except TimeoutError:
            continue
        return value if value and value > 0 else None
    return None


def _follow(proc: subprocess.Popen, stop) -> None:
    """Wait for the shard; pass a stop on once, and kill it if it does not end after that.

    The stop Event is waited for in a thread of its own with a long timeout: Event.wait returns
    as soon as the Event is set, and a long wait costs the scheduler one request, not four a second.
    """
    done = threading.Event()
    threading.Thread(target=_pass_stop_on, args=(proc, stop, done), daemon=True).start()
    proc.wait()
    done.set()


def _pass_stop_on(proc: subprocess.Popen, stop, done: threading.Event) -> None:
    while not done.is_set():
        try:
            if not stop.wait(STOP_WAIT_S):
                continue
        except OSError:  # the scheduler is gone: the shard ends at its planned end
            return
        if done.is_set():
            return
        proc.send_signal(signal.SIGINT)
        if not done.wait(KILL_AFTER_S):
            proc.kill()
        return
