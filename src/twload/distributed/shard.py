"""One Dask worker's part of a run: a process of its own, started by the Dask task with subprocess.

A Dask worker process is daemonic and may not start multiprocessing children, so the
task starts this program, which is an ordinary twload run on its host: its own
pre-flight (sysctls, port range, TIME_WAIT already held towards the target), then the
normal supervisor and engine processes. Instead of writing a run folder it sends
each second's snapshots to the coordinator, over a pipe to the task and on through
the scheduler; the coordinator merges every worker's seconds into one run folder.

    python -m twload.distributed.shard PIPE_FD PARENT_PID
    stdin: the pickled (shard index, Plan), then one line: the start instant
           (time.time() seconds, the same instant for every shard) or "stop"
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import socket
import struct
import sys
import time
from dataclasses import replace
from typing import BinaryIO

from twload.distributed.messages import ShardDone, ShardError, ShardMessage, ShardReady, ShardTick, encode
from twload.doctor.preflight import Preflight, preflight
from twload.engine import preflight as pf
from twload.engine.supervisor import RunError, Supervisor
from twload.kernel import sockdiag
from twload.kernel.sources import check_sources_local
from twload.kernel.sysctl import KernelFacts
from twload.merge.merger import Merger, PortReading, PortsAtStart
from twload.merge.summary import Summary
from twload.metrics import Snapshot
from twload.plan import Plan, PlanError
from twload.ports.timewait import Found

FRAME = struct.Struct("!I")  # length of each message (messages.encode) on the pipe
PR_SET_PDEATHSIG = 1  # include/uapi/linux/prctl.h


class Outbox:
    """Length-framed messages to the Dask task; a task that is gone only ends the reporting."""

    def __init__(self, pipe: BinaryIO) -> None:
        self.pipe = pipe
        self.broken = False

    def send(self, message: ShardMessage) -> None:
        if self.broken:
            return
        payload = encode(message)
        try:
            self.pipe.write(FRAME.pack(len(payload)) + payload)
            self.pipe.flush()
        except OSError:  # the Dask worker died: the run stops (SIGTERM from the kernel), nobody listens
            self.broken = True


def read_frames(pipe: BinaryIO):
    """The task's side: each message's bytes, until the shard and its children closed the pipe."""
    while True:
        head = pipe.read(FRAME.size)
        if len(head) < FRAME.size:
            return
        payload = pipe.read(FRAME.unpack(head)[0])
        if not payload:
            return
        yield payload


def die_with_task(parent_pid: int) -> None:
    """SIGTERM when the task's thread dies (a Dask worker killed outright), so no load goes on
    unseen; prctl(PR_SET_PDEATHSIG) fires when the thread that started us exits (prctl(2))."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # it died before we could ask
        sys.exit(1)


def netns_id() -> str:
    """Host and network namespace: shards that share both see the same TIME_WAIT sockets."""
    try:
        inode = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        inode = 0
    return f"{socket.gethostname()}:{inode}"


def route_source(plan: Plan) -> str:
    """The address this host's routing picks towards the target (a UDP connect sends nothing)."""
    with socket.socket(plan.target.family, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(plan.target.address)
            return sock.getsockname()[0]
        except OSError:
            return "?"


def listeners_in_range(kernel: KernelFacts) -> int:
    """Listening sockets on ephemeral ports: connect() skips a port that bind() reserved, whatever the
    destination (net/ipv4/inet_hashtables.c: __inet_hash_connect, tb->fastreuse >= 0, Linux 6.x). A Dask
    worker's own listeners take random ports from this range unless given fixed ones."""
    socks, _ = sockdiag.sockets()
    return len({s.sport for s in socks if s.state == "LISTEN" and kernel.port_low <= s.sport <= kernel.port_high})


def host_preflight(plan: Plan) -> tuple[dict, Preflight]:
    """This host's own pre-flight, as the coordinator's summary shows it per worker."""
    check_sources_local(plan.sources, plan.target)
    facts = pf.gather_facts(plan)
    pre = preflight(plan, replace(facts, listeners_in_range=listeners_in_range(facts.kernel)))
    detail = {
        "host": socket.gethostname(),
        "netns": netns_id(),
        "pid": os.getpid(),
        "sources": list(plan.sources) or [route_source(plan)],
        "engine_processes": len(plan.worker_shares()),
        "connections": plan.connections,
        **pre.worker_block(),
    }
    return detail, pre


class ShardOut:
    """The shard's seconds go to the coordinator unmerged (it merges every shard's), each with the
    port reading taken as it is sent; the run folder is the coordinator's."""

    ports_measured = True

    def __init__(self, index: int, outbox: Outbox, merger: Merger, probe: pf.PortProbe) -> None:
        self.index = index
        self.outbox = outbox
        self.merger = merger
        self.probe = probe
        self.ports_at_start = PortsAtStart(probe.start.time_wait, probe.start.ports_in_use)

    def begin(self, base_epoch_s: float) -> None:
        """The interval logs are the coordinator's: it starts them at the common instant."""

    def write(self, tick: int, snapshots: list[Snapshot], now_s: float) -> None:
        time_wait = self.probe()
        self.merger.read_ports(PortReading(time_wait))  # the shard's summary keeps its peak
        self.outbox.send(ShardTick(self.index, tick, snapshots, time_wait))

    def settle(self) -> None:
        self.probe.settle()


def coordinators_start(index: int, detail: dict, outbox: Outbox, go_line) -> float:
    """Say ready and wait for the coordinator's start instant (time.monotonic())."""
    detail["clock_s"] = time.time()  # the start is agreed in wall-clock time: the coordinator checks
    outbox.send(ShardReady(index, detail))
    line = go_line().strip()
    if not line or line == b"stop":
        raise RunError("stopped before the start")
    go_wall = float(line)
    # the agreed instant is wall-clock time (hosts keep it in step with NTP); the engines count monotonic
    return time.monotonic() + (go_wall - time.time())


def supervise(index: int, plan: Plan, detail: dict, outbox: Outbox, go_line, start: Found | None = None) -> Summary:
    """The local supervisor over this host's engine processes, started at the coordinator's instant,
    sending its seconds instead of writing them; its port probe starts from the pre-flight's reading."""
    merger = Merger(plan)
    out = ShardOut(index, outbox, merger, pf.time_wait_probe(plan, start))
    return Supervisor(plan, merger, out, start=lambda: coordinators_start(index, detail, outbox, go_line)).run()


def run(index: int, plan: Plan, outbox: Outbox, go_line) -> int:
    try:
        detail, pre = host_preflight(plan)
        summary = supervise(index, plan, detail, outbox, go_line, pre.facts.start)
    except (PlanError, RunError) as exc:
        outbox.send(ShardError(index, str(exc)))
        return 1
    if "EADDRNOTAVAIL" in summary.errors:
        summary = summary.with_(advice=tuple(pre.advice))
    outbox.send(ShardDone(index, summary))
    return 0


def main(argv: list[str]) -> int:
    fd, parent_pid = int(argv[1]), int(argv[2])
    die_with_task(parent_pid)
    outbox = Outbox(os.fdopen(fd, "wb"))
    stdin = sys.stdin.buffer
    index, plan = pickle.load(stdin)
    try:
        return run(index, plan, outbox, stdin.readline)
    except Exception as exc:  # a bug, but the user gets one line in the summary, not a silent worker
        outbox.send(ShardError(index, f"internal error: {type(exc).__name__}: {exc}"))
        if os.environ.get("TWLOAD_DEBUG"):
            raise
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
