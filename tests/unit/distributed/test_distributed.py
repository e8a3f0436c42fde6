"""The coordinator's merge of shard seconds (histograms added, never averaged) and of the workers'
advice; the cluster options are test_spec.py's, the plan's split and merged budget test_split.py's."""

from hypothesis import given, settings
from hypothesis import strategies as st

from twload.distributed.coordinator import DaskRun
from twload.distributed.messages import ShardDone, ShardTick
from twload.distributed.split import Shard, WorkerSlot
from twload.kernel.resolve import parse_target
from twload.merge.summary import Summary
from twload.metrics import HIGHEST_US, PERCENTILES, Interval, new_histogram
from twload.plan import Plan
from twload.results import RunFolder, read_samples

URL = "http://127.0.0.1:8080/"


def plan(**kw) -> Plan:
    return Plan(target=parse_target(URL), url=URL, **kw)


def slots(n: int, threads: int = 1) -> list[WorkerSlot]:
    return [WorkerSlot(f"tcp://10.0.0.{i + 1}:9000", f"h{i}", threads) for i in range(n)]


values = st.lists(st.integers(1, HIGHEST_US), min_size=1, max_size=200)


@settings(max_examples=25, deadline=None)
@given(seconds=st.lists(st.lists(st.lists(values, min_size=1, max_size=2), min_size=1, max_size=3),
                        min_size=1, max_size=3))
def test_coordinator_merges_shard_seconds_exactly(tmp_path_factory, seconds):
    """seconds[t][shard][process]: latencies. The merged run equals one histogram of all values."""
    shards = max(len(per_shard) for per_shard in seconds)
    the_plan = plan(duration_s=5.0)
    shard_list = [Shard(i, w, the_plan) for i, w in enumerate(slots(shards))]
    folder = RunFolder(tmp_path_factory.mktemp("run"))
    run = DaskRun(the_plan, folder, None, shard_list)
    finished: set[int] = set()
    single = new_histogram()
    requests = 0
    for t, per_shard in enumerate(seconds, start=1):
        for shard, per_process in enumerate(per_shard):
            snaps = []
            for latencies in per_process:
                iv = Interval()
                iv.latency.extend(latencies)
                iv.status_codes.extend([200] * len(latencies))
                iv.requests = len(latencies)
                snaps.append(iv.snapshot())
                for v in latencies:
                    single.record_value(v)
                requests += len(latencies)
            run.handle(ShardTick(shard, t, snaps, None), finished)
    for shard in range(shards):
        run.handle(ShardDone(shard, Summary(duration_s=1.0)), finished)
    run.control.flush(set(), force=True)
    folder.close()
    merged = run.merger.totals.latency
    assert merged.get_total_count() == single.get_total_count() == requests
    for _, p in PERCENTILES:
        assert merged.get_value_at_percentile(p) == single.get_value_at_percentile(p)
    assert merged.get_max_value() == single.get_max_value()
    assert sum(s["requests"] for s in read_samples(folder.path)) == requests
    assert finished == set(range(shards))


def test_workers_advice_is_said_once_when_every_worker_says_it(tmp_path):
    the_plan = plan()
    run = DaskRun(the_plan, RunFolder(tmp_path), None, [Shard(i, w, the_plan) for i, w in enumerate(slots(2))])
    run.details = {0: {"host": "a", "sources": ["10.0.0.1"]}, 1: {"host": "b", "sources": ["10.0.0.2"]}}
    run.shard_summaries = {0: Summary(advice=("tw_reuse=0", "only 100 ports")), 1: Summary(advice=("tw_reuse=0",))}
    assert run._workers_advice() == ["each worker: tw_reuse=0", "a 10.0.0.1: only 100 ports"]
    run.folder.close()
