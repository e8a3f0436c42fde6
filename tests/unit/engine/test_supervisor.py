"""The supervisor's pieces that need no worker process: the Inbox over real pipes, the run
folder's side of the seconds (FolderOut: each due second merged and written, with the ports read),
and the wait for the workers' ready (Control.wait_ready, the local and the Dask run's).
The merging itself is tested through the merger's API (tests/unit/merge/test_merger.py).
"""

from __future__ import annotations

import multiprocessing as mp
import queue

import pytest

from twload.engine.messages import Final, Tick
from twload.engine.supervisor import Control, FolderOut, Inbox, RunError
from twload.kernel.resolve import parse_target
from twload.merge.merger import Merger, RunFacts
from twload.metrics import Interval
from twload.plan import Plan
from twload.results import RunFolder, read_samples

URL = "http://127.0.0.1:8080/"  # parsed only: nothing connects anywhere


def snapshot(latencies: list[int]) -> dict:
    iv = Interval()
    iv.latency.extend(latencies)
    iv.status_codes.extend([200] * len(latencies))
    iv.requests = len(latencies)
    return iv.snapshot()


def test_folder_out_writes_each_second_with_the_port_reading_of_its_time(tmp_path):
    readings = iter([4, 9, 2])
    plan = Plan(target=parse_target(URL), url=URL, workers=1, connections=1)
    folder = RunFolder(tmp_path / "run")
    merger = Merger(plan)
    out = FolderOut(folder, merger, time_wait_probe=lambda: next(readings))
    for tick in (1, 2, 3):
        merger.add(0, tick, snapshot([tick]))
    for tick in merger.due({0}, 3600.0):
        out.write(tick, merger.take(tick), 3600.0)
    folder.close()
    assert [(s["t"], s["time_wait"]) for s in read_samples(folder.path)] == [(1, 4), (2, 9), (3, 2)]
    summary = merger.summary(RunFacts(workers=1, elapsed_s=3.0, ports_measured=out.ports_measured))
    assert summary.time_wait_peak == 9 and summary.time_wait_at_start is None


def test_inbox_reads_typed_messages_over_real_pipes_and_sees_a_dead_worker():
    inbox = Inbox(mp.get_context("spawn"))
    first = inbox.writer()
    first.send(Tick(0, 1, snapshot([3])))
    inbox.started()  # our copy of the sending end is closed: as after a worker's death
    second = inbox.writer()
    second.send(Final(1, 1, snapshot([]), 1.0))
    try:
        got = [inbox.get(timeout=5), inbox.get(timeout=5)]
        assert sorted(type(m).__name__ for m in got) == ["Final", "Tick"]
        tick = next(m for m in got if isinstance(m, Tick))
        assert tick.worker == 0 and tick.snapshot.requests == 1
        inbox.started()
        with pytest.raises(queue.Empty):  # both pipes at EOF: no wait, no error, no message
            inbox.get(timeout=5)
        assert inbox.readers == []
    finally:
        inbox.close()


def control(tmp_path) -> Control:
    plan = Plan(target=parse_target(URL), url=URL, workers=2, connections=2)
    merger = Merger(plan)
    return Control(plan, merger, FolderOut(RunFolder(tmp_path / "run"), merger))


def test_wait_ready_hands_each_message_on_until_none_is_waiting(tmp_path):
    messages: queue.Queue = queue.Queue()
    for message in ("ready 0", "a tick too early", "ready 1", "after the start"):
        messages.put(message)
    ready: list[str] = []

    def take(message: str) -> None:
        if message.startswith("ready"):
            ready.append(message)

    control(tmp_path).wait_ready(messages, lambda: len(ready) < 2, take, lambda: None, 30.0,
                                 RunError("late"))
    assert ready == ["ready 0", "ready 1"]
    assert messages.get_nowait() == "after the start"  # the run's, not the wait's


@pytest.mark.parametrize("case", ["signal", "late", "exited", "refused"])
def test_wait_ready_ends_on_a_signal_the_deadline_an_exited_worker_or_a_refusal(tmp_path, case):
    c = control(tmp_path)
    messages: queue.Queue = queue.Queue()
    messages.put("could not start")
    if case == "signal":
        c.signal_received = 2

    def exited() -> None:
        if case == "exited":
            raise RunError("worker 1 exited with code 1 before starting")

    def take(message: str) -> None:
        if case == "refused":
            raise RunError(f"worker 0 {message}")

    expected = {"signal": "interrupted before the run started", "late": "did not start within",
                "exited": "exited with code 1", "refused": "worker 0 could not start"}[case]
    with pytest.raises(RunError, match=expected):
        c.wait_ready(messages, lambda: True, take, exited, 0.0 if case == "late" else 30.0,
                     RunError("workers did not start within 0 s"))
