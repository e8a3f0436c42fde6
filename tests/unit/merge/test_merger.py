"""The merger, through its public API: snapshots from several workers become one row per second and
the run's summary, exactly: counts add up, and the histograms merged equal one histogram of all values.

The snapshots are real metrics.Interval snapshots, recorded the way a worker's hot path records
them. No process, file or clock: the time since the start is passed in.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from twload.kernel.resolve import parse_target
from twload.merge.merger import Merger, PortReading, PortsAtStart, RunFacts
from twload.merge.summary import FirstError
from twload.metrics import HIGHEST_US, LOWEST_US, Interval, new_histogram, percentiles_us
from twload.plan import Plan

WORKERS = 3
URL = "http://127.0.0.1:8080/"  # parsed only: nothing connects anywhere
LONG_AFTER = 3600.0  # seconds since the start: every second is whole and long late
NOTHING_LATE = 0.0  # at the start: no second is late, only who reported decides


def make_plan(workers: int = WORKERS, **kwargs) -> Plan:
    return Plan(target=parse_target(URL), url=URL, workers=workers, connections=workers, **kwargs)


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
    """The count in every bucket: two histograms (same layout) holding the same values agree."""
    assert hist.get_total_count() == sum(hist.counts)
    return list(hist.counts)


def emit(merger: Merger, unfinished: set[int], now_s: float, force: bool = False) -> list[dict]:
    """What a transport does each turn: take every due second out and merge it into its row."""
    return [merger.merge(tick, merger.take(tick), now_s).row for tick in merger.due(unfinished, now_s, force)]


def facts(elapsed_s: float, workers: int = WORKERS, **kwargs) -> RunFacts:
    return RunFacts(workers=workers, elapsed_s=elapsed_s, **kwargs)


latencies = st.lists(st.integers(LOWEST_US, HIGHEST_US), max_size=40)
codes = st.sampled_from([200, 204, 404, 503])


@settings(max_examples=25, deadline=None)
@given(seconds=st.lists(st.lists(st.tuples(latencies, st.lists(codes, max_size=40)), min_size=WORKERS,
                                 max_size=WORKERS), min_size=1, max_size=4))
def test_totals_equal_the_sum_of_the_ticks_and_one_histogram_of_all_values(seconds):
    merger = Merger(make_plan())
    for tick, workers in enumerate(seconds, 1):
        for worker, (values, status) in enumerate(workers):
            merger.add(worker, tick, snapshot(values, status[: len(values)]))
    rows = emit(merger, set(range(WORKERS)), LONG_AFTER)

    assert [r["t"] for r in rows] == list(range(1, len(seconds) + 1))
    everything: list[int] = []
    for row, workers in zip(rows, seconds, strict=True):
        values = [v for worker_values, _ in workers for v in worker_values]
        everything += values
        assert row["requests"] == len(values) == row["rps"]  # whole seconds: rps = requests
        assert row["connections_opened"] == len(values)
        assert (row["bytes_in"], row["bytes_out"]) == (100 * len(values), 40 * len(values))
        assert sum(row["status"].values()) == sum(min(len(v), len(c)) for v, c in workers)
        # the second's percentiles are those of one histogram of all its values, whichever are shown
        block = percentiles_us(histogram_of(values), sum(values))
        assert {"p50", "p99", "max"} <= set(row["latency_us"])
        assert row["latency_us"] == {key: block[key] for key in row["latency_us"]}

    assert recorded(merger.totals.latency) == recorded(histogram_of(everything))
    summary = merger.summary(facts(float(len(seconds))))
    assert summary.requests == len(everything) == sum(r["requests"] for r in rows)
    assert summary.latency_us.to_dict() == percentiles_us(histogram_of(everything), sum(everything))
    assert summary.connect_us.to_dict() == percentiles_us(histogram_of([v // 2 + 1 for v in everything]),
                                                          sum(v // 2 + 1 for v in everything))
    sent = Counter(str(c) for workers in seconds for values, status in workers for c in status[: len(values)])
    assert summary.status == dict(sorted(sent.items()))
    assert Counter(summary.status) == sum((Counter(r["status"]) for r in rows), Counter())


def test_a_second_is_not_due_until_every_unfinished_worker_reported_it():
    merger = Merger(make_plan())
    merger.add(0, 1, snapshot([10]))
    merger.add(1, 1, snapshot([20]))
    assert merger.due({0, 1, 2}, NOTHING_LATE) == []  # worker 2 has not reported second 1 yet
    assert merger.waiting == [1]
    merger.add(2, 1, snapshot([30]))
    assert merger.due({0, 1, 2}, NOTHING_LATE) == [1]
    assert [(r["t"], r["requests"]) for r in emit(merger, {0, 1, 2}, NOTHING_LATE)] == [(1, 3)]
    assert merger.waiting == []


def test_a_dead_workers_seconds_are_kept_and_no_longer_awaited():
    merger = Merger(make_plan())
    merger.add(0, 1, snapshot([10]))
    merger.add(2, 1, snapshot([5, 6, 7]))  # worker 2 reported second 1, then died
    merger.add(0, 2, snapshot([11]))
    merger.add(1, 1, snapshot([20]))
    merger.add(1, 2, snapshot([21]))
    assert merger.due({0, 1, 2}, NOTHING_LATE) == [1]  # second 2 awaits worker 2 while it counts as running
    # the transport saw it die: only the two still running count; its second 1 is merged all the same
    assert [(r["t"], r["requests"]) for r in emit(merger, {0, 1}, NOTHING_LATE)] == [(1, 5), (2, 2)]
    assert merger.summary(facts(2.0)).requests == 7


def test_a_second_reported_after_it_was_taken_counts_in_the_next():
    merger = Merger(make_plan())
    merger.add(0, 1, snapshot([10]))
    merger.add(1, 1, snapshot([20]))
    assert [(r["t"], r["requests"]) for r in emit(merger, {0, 1}, NOTHING_LATE)] == [(1, 2)]
    merger.add(2, 1, snapshot([30, 40]))  # late for second 1, already taken out
    assert merger.waiting == [2]
    assert [(r["t"], r["requests"]) for r in emit(merger, set(), NOTHING_LATE, force=True)] == [(2, 2)]
    assert merger.totals.requests == 4


def test_a_late_second_is_due_without_the_missing_worker():
    merger = Merger(make_plan(), late_tick_s=1.5)
    merger.add(0, 1, snapshot([10, 11]))
    assert merger.due({0, 1, 2}, 2.5) == []  # second 1 ended 1.5 s ago: not late yet
    assert merger.due({0, 1, 2}, 2.6) == [1]
    patient = Merger(make_plan(), late_tick_s=3.0)  # a Dask coordinator's bound
    patient.add(0, 1, snapshot([10]))
    assert patient.due({0, 1}, 2.6) == []


def test_a_second_waits_for_the_one_before_it():
    merger = Merger(make_plan(workers=2))
    merger.add(0, 1, snapshot([1]))
    merger.add(0, 2, snapshot([2]))
    merger.add(1, 2, snapshot([3]))
    assert merger.due({0, 1}, NOTHING_LATE) == []  # second 2 is complete, second 1 is not
    merger.add(1, 1, snapshot([4]))
    assert merger.due({0, 1}, NOTHING_LATE) == [1, 2]


def test_force_takes_every_second_out_at_the_end():
    merger = Merger(make_plan())
    merger.add(0, 1, snapshot([1]))
    merger.add(0, 3, snapshot([3]))
    assert merger.due({0, 1, 2}, NOTHING_LATE) == []
    rows = emit(merger, {0, 1, 2}, NOTHING_LATE, force=True)
    assert [r["t"] for r in rows] == [1, 3]
    assert merger.waiting == []


def test_the_last_second_counts_over_its_own_span():
    merger = Merger(make_plan(workers=1))
    merger.add(0, 1, snapshot([1] * 10))
    merger.add(0, 2, snapshot([1] * 10))
    first, last = emit(merger, {0}, 1.25)  # the run ended a quarter into its second second
    assert first["rps"] == 10.0 and last["rps"] == 40.0


def test_errors_and_first_errors_merge_across_workers():
    merger = Merger(make_plan())
    merger.add(0, 1, snapshot([5], errors={"EADDRNOTAVAIL": 3}, first_errors={"EADDRNOTAVAIL": [40, 2.5]}))
    merger.add(1, 1, snapshot([5], errors={"EADDRNOTAVAIL": 1, "ECONNRESET": 2},
                              first_errors={"EADDRNOTAVAIL": [7, 1.25], "ECONNRESET": [9, 3.0]}))
    merger.add(2, 2, snapshot([], errors={"timeout": 1}, first_errors={"timeout": [1, 4.0]}))
    rows = emit(merger, {0, 1, 2}, LONG_AFTER, force=True)
    assert rows[0]["errors"] == {"EADDRNOTAVAIL": 4, "ECONNRESET": 2}
    assert rows[1]["errors"] == {"timeout": 1}
    summary = merger.summary(facts(2.0))
    assert summary.errors == {"EADDRNOTAVAIL": 4, "ECONNRESET": 2, "timeout": 1}
    assert summary.first_errors["EADDRNOTAVAIL"] == FirstError(at_s=1.25, connection=7, worker=1)
    assert summary.first_errors["timeout"] == FirstError(at_s=4.0, connection=1, worker=2)


def test_port_readings_go_into_their_rows_and_the_summary():
    merger = Merger(make_plan(workers=1))
    readings = [PortReading(4, in_use=10, found=7, found_reused=0), PortReading(9, in_use=12, found=5, found_reused=1),
                PortReading(2, in_use=3, found=1, found_reused=2)]
    rows = []
    for tick, reading in enumerate(readings, 1):
        merger.add(0, tick, snapshot([tick]))
        rows += [merger.merge(t, merger.take(t), LONG_AFTER, reading).row for t in merger.due({0}, LONG_AFTER)]
    assert [(r["time_wait"], r["ports_in_use"], r["time_wait_found"]) for r in rows] == [(4, 10, 7), (9, 12, 5),
                                                                                         (2, 3, 1)]
    summary = merger.summary(facts(3.0, workers=1, ports_measured=True, ports_at_start=PortsAtStart(8, 20)))
    assert (summary.time_wait_peak, summary.time_wait_at_start, summary.ports_in_use_at_start) == (9, 8, 20)
    assert (summary.time_wait_found, summary.time_wait_found_reused) == (1, 2)
    bare = Merger(make_plan(workers=1))  # a bare count (a shard's, a coordinator's): the peak alone
    bare.read_ports(PortReading(6))
    written = bare.summary(facts(1.0, ports_measured=True)).to_dict()
    assert {k: v for k, v in written.items() if "time_wait" in k} == {"time_wait_peak": 6}
    assert "time_wait_peak" not in Merger(make_plan()).summary(facts(1.0)).to_dict()


def test_every_merged_second_is_shown_to_the_observers():
    seen: list[dict] = []
    merger = Merger(make_plan(workers=1), on_second=[seen.append])
    merger.add(0, 1, snapshot([1]))
    merger.add(0, 2, snapshot([2, 3]))
    rows = emit(merger, set(), NOTHING_LATE, force=True)
    assert seen == rows and [r["requests"] for r in seen] == [1, 2]


def test_the_summary_says_what_the_transport_learnt():
    merger = Merger(make_plan(max_errors=3, requests=10, duration_s=None))
    merger.add(0, 1, snapshot([1, 2], errors={"ECONNREFUSED": 4}))
    summary = merger.summary(facts(1.0, engine={"engine": "core", "io": "epoll"}, interrupted="SIGINT",
                                   stopped_by="max_errors", worker_failures=["worker 2 crashed: boom"]))
    assert (summary.engine, summary.io, summary.interrupted) == ("core", "epoll", "SIGINT")
    assert (summary.stopped_by, summary.max_errors, summary.requests_planned) == ("max_errors", 3, 10)
    assert summary.worker_failures == ("worker 2 crashed: boom",)
    assert "duration_planned_s" not in summary.to_dict()


def test_an_http2_runs_rows_add_the_workers_connections_and_streams_open():
    """Gauges: a second's row adds each worker's; the HTTP/1.1 ports count every request so far (< 60 s)."""
    merger = Merger(make_plan(workers=2, http2=True, streams=5))
    for tick in (1, 2):
        merger.add(0, tick, replace(snapshot([100] * 10), h2_connections_open=2, h2_streams_open=9))
        merger.add(1, tick, replace(snapshot([100] * 5), h2_connections_open=1, h2_streams_open=4,
                                    h2_server_max_streams=3 if tick == 2 else 0))
    first, second = emit(merger, {0, 1}, LONG_AFTER)
    assert first["streams"] == 5 and first["connections_open"] == 3 and first["streams_open"] == 13
    assert first["http1_ports_needed"] == 15 and second["http1_ports_needed"] == 30
    assert "h2_server_max_streams" not in first and second["h2_server_max_streams"] == 3


def test_an_http1_runs_rows_have_no_http2_keys():
    merger = Merger(make_plan())
    merger.add(0, 1, snapshot([100]))
    (row,) = emit(merger, {0}, LONG_AFTER)
    assert not {"streams", "connections_open", "streams_open", "http1_ports_needed"} & set(row)
