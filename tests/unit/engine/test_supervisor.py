"""The supervisor's merge: snapshots from several workers become one line per second and the
run's totals, exactly: counts add up, and the histograms merged equal one histogram of all values.

A real Supervisor writes into a real RunFolder; the snapshots are real metrics.Interval
snapshots, handed over as the typed messages a worker sends. No process is started.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from twload.engine.messages import Crash, Final, Tick
from twload.engine.supervisor import Inbox, Supervisor
from twload.kernel.resolve import parse_target
from twload.metrics import HIGHEST_US, LOWEST_US, Interval, new_histogram, percentiles_us
from twload.plan import Plan
from twload.results import RunFolder, read_samples

WORKERS = 3
URL = "http://127.0.0.1:8080/"  # parsed only: nothing connects anywhere


def make_plan(workers: int = WORKERS) -> Plan:
    return Plan(target=parse_target(URL), url=URL, workers=workers, connections=workers)


def snapshot(latencies: list[int], codes: list[int] | None = None, errors: dict[str, int] | None = None,
             first_errors: dict[str, list] | None = None) -> dict:
    """What a worker sends for one second, recorded the way the hot path records it."""
    iv = Interval()
    iv.latency.extend(latencies)
    iv.connect.extend(v // 2 + 1 for v in latencies)
    iv.status_codes.extend(codes if codes is not None else [200] * len(latencies))
    iv.requests = len(latencies)
    iv.connections_opened = len(latencies)
    iv.bytes_in, iv.bytes_out = 100 * len(latencies), 40 * len(latencies)
    iv.errors.update(errors or {})
    iv.first_errors.update(first_errors or {})
    return iv.snapshot()


def histogram_of(values: list[int]) -> HdrHistogram:
    hist = new_histogram()
    for value in values:
        hist.record_value(value)
    return hist


def recorded(hist: HdrHistogram) -> list[int]:
    """The count in every bucket: two histograms (same layout) holding the same values agree.

    (hdrh's own iterators walk every bucket in Python: a second per comparison.)
    """
    assert hist.get_total_count() == sum(hist.counts)
    return list(hist.counts)


latencies = st.lists(st.integers(LOWEST_US, HIGHEST_US), max_size=40)
codes = st.sampled_from([200, 204, 404, 503])


@settings(max_examples=25, deadline=None)
@given(seconds=st.lists(st.lists(st.tuples(latencies, st.lists(codes, max_size=40)), min_size=WORKERS,
                                 max_size=WORKERS), min_size=1, max_size=4))
def test_seconds_and_totals_equal_one_histogram_of_all_values(seconds):
    with tempfile.TemporaryDirectory() as tmp:  # one folder per example (hypothesis reuses fixtures)
        folder = RunFolder(Path(tmp) / "run")
        sup = Supervisor(make_plan(), folder)
        sup.go_at = time.monotonic() - 3600  # every second is whole: rps = requests
        finished: set[int] = set()
        for tick, workers in enumerate(seconds, 1):
            for worker, (values, status) in enumerate(workers):
                sup._handle(Tick(worker, tick, snapshot(values, status[: len(values)])), finished)
        sup._flush(set(range(WORKERS)))
        folder.close()

        samples = read_samples(folder.path)
        assert [s["t"] for s in samples] == list(range(1, len(seconds) + 1))
        everything: list[int] = []
        for sample, workers in zip(samples, seconds, strict=True):
            values = [v for worker_values, _ in workers for v in worker_values]
            everything += values
            assert sample["requests"] == len(values) == sample["rps"]
            assert sample["connections_opened"] == len(values)
            assert (sample["bytes_in"], sample["bytes_out"]) == (100 * len(values), 40 * len(values))
            assert sum(sample["status"].values()) == sum(min(len(v), len(c)) for v, c in workers)
            # the second's percentiles are those of one histogram of all its values, whichever are shown
            block = percentiles_us(histogram_of(values), sum(values))
            assert {"p50", "p99", "max"} <= set(sample["latency_us"])
            assert sample["latency_us"] == {key: block[key] for key in sample["latency_us"]}

        totals = sup.progress.totals
        assert recorded(totals.latency) == recorded(histogram_of(everything))
        summary = sup._summary(float(len(seconds)), WORKERS)
        assert summary["requests"] == len(everything) == sum(s["requests"] for s in samples)
        assert summary["latency_us"] == percentiles_us(histogram_of(everything), sum(everything))
        assert summary["connect_us"] == percentiles_us(histogram_of([v // 2 + 1 for v in everything]),
                                                       sum(v // 2 + 1 for v in everything))
        sent = Counter(str(c) for workers in seconds for values, status in workers for c in status[: len(values)])
        assert summary["status"] == dict(sorted(sent.items()))
        assert Counter(summary["status"]) == sum((Counter(s["status"]) for s in samples), Counter())


def test_a_second_waits_for_every_running_worker(tmp_path):
    folder = RunFolder(tmp_path / "run")
    sup = Supervisor(make_plan(), folder)
    sup.go_at = time.monotonic() + 3600  # nothing is late: only who reported decides
    sup._add(0, 1, snapshot([10]))
    sup._add(1, 1, snapshot([20]))
    sup._flush({0, 1, 2})
    assert read_samples(folder.path) == []  # worker 2 has not reported second 1 yet
    sup._flush({0, 1})  # worker 2 has finished: the two still running have reported
    assert [(s["t"], s["requests"]) for s in read_samples(folder.path)] == [(1, 2)]

    sup._add(2, 1, snapshot([30, 40]))  # late for second 1, already written: it counts in second 2
    assert list(sup.pending) == [2]
    sup._flush(set(), force=True)
    folder.close()
    assert [(s["t"], s["requests"]) for s in read_samples(folder.path)] == [(1, 2), (2, 2)]
    assert sup.progress.totals.requests == 4


def test_a_late_second_is_written_without_the_missing_worker(tmp_path):
    folder = RunFolder(tmp_path / "run")
    sup = Supervisor(make_plan(), folder)
    sup.go_at = time.monotonic() - 3600  # second 1 ended long ago
    sup._add(0, 1, snapshot([10, 11]))
    sup._flush({0, 1, 2})
    folder.close()
    assert [(s["t"], s["requests"]) for s in read_samples(folder.path)] == [(1, 2)]


def test_errors_and_first_errors_merge_across_workers(tmp_path):
    folder = RunFolder(tmp_path / "run")
    sup = Supervisor(make_plan(), folder)
    sup.go_at = time.monotonic() - 3600
    sup._add(0, 1, snapshot([5], errors={"EADDRNOTAVAIL": 3}, first_errors={"EADDRNOTAVAIL": [40, 2.5]}))
    sup._add(1, 1, snapshot([5], errors={"EADDRNOTAVAIL": 1, "ECONNRESET": 2},
                            first_errors={"EADDRNOTAVAIL": [7, 1.25], "ECONNRESET": [9, 3.0]}))
    sup._add(2, 2, snapshot([], errors={"timeout": 1}, first_errors={"timeout": [1, 4.0]}))
    sup._flush({0, 1, 2}, force=True)
    folder.close()
    samples = read_samples(folder.path)
    assert samples[0]["errors"] == {"EADDRNOTAVAIL": 4, "ECONNRESET": 2}
    assert samples[1]["errors"] == {"timeout": 1}
    summary = sup._summary(2.0, WORKERS)
    assert summary["errors"] == {"EADDRNOTAVAIL": 4, "ECONNRESET": 2, "timeout": 1}
    assert summary["first_errors"]["EADDRNOTAVAIL"] == {"at_s": 1.25, "connection": 7, "worker": 1}
    assert summary["first_errors"]["timeout"] == {"at_s": 4.0, "connection": 1, "worker": 2}


def test_final_and_crash_messages_finish_their_worker(tmp_path):
    folder = RunFolder(tmp_path / "run")
    sup = Supervisor(make_plan(), folder)
    finished: set[int] = set()
    sup._handle(Final(0, 3, snapshot([7, 8]), 2.5), finished)
    sup._handle(Crash(1, "RuntimeError: boom"), finished)
    folder.close()
    assert finished == {0, 1}
    assert sup.worker_elapsed == 2.5
    assert sup.worker_failures == ["worker 1 crashed: RuntimeError: boom"]
    assert sup.progress.totals.requests == 2 and list(sup.pending) == [3]


def test_time_wait_is_probed_once_per_second_written(tmp_path):
    readings = iter([4, 9, 2])
    folder = RunFolder(tmp_path / "run")
    sup = Supervisor(make_plan(workers=1), folder, time_wait_probe=lambda: next(readings))
    sup.go_at = time.monotonic() - 3600
    for tick in (1, 2, 3):
        sup._add(0, tick, snapshot([tick]))
    sup._flush({0})
    folder.close()
    assert [s["time_wait"] for s in read_samples(folder.path)] == [4, 9, 2]
    assert sup._summary(3.0, 1)["time_wait_peak"] == 9


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
        assert tick.worker == 0 and tick.snapshot["requests"] == 1
        inbox.started()
        with pytest.raises(queue.Empty):  # both pipes at EOF: no wait, no error, no message
            inbox.get(timeout=5)
        assert inbox.readers == []
    finally:
        inbox.close()
