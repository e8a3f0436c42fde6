"""The distributed run's pure parts: the cluster options, the plan's split, the merged budget,
and the coordinator's merge of shard seconds (histograms added, never averaged)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twload.distributed.coordinator import DaskRun
from twload.distributed.messages import ShardDone, ShardTick
from twload.distributed.spec import parse_cluster
from twload.distributed.split import Shard, WorkerSlot, merged_budget, split, wall_line
from twload.kernel.resolve import parse_target
from twload.merge.summary import Summary
from twload.metrics import HIGHEST_US, PERCENTILES, Interval, new_histogram
from twload.plan import Plan, PlanError
from twload.plan.schedule import Stage
from twload.results import RunFolder, read_samples

URL = "http://127.0.0.1:8080/"


def plan(**kw) -> Plan:
    return Plan(target=parse_target(URL), url=URL, **kw)


def slots(n: int, threads: int = 1) -> list[WorkerSlot]:
    return [WorkerSlot(f"tcp://10.0.0.{i + 1}:9000", f"h{i}", threads) for i in range(n)]


def test_cluster_options():
    assert parse_cluster(None, None) is None
    assert parse_cluster("local:3", None).local_workers == 3
    spec = parse_cluster(None, "tls://10.0.0.1:8786", "ca.pem", "c.pem", "k.pem")
    assert (spec.scheduler, spec.tls_ca_file, spec.plain_beyond_loopback) == ("tls://10.0.0.1:8786", "ca.pem", False)
    assert parse_cluster(None, "tcp://10.0.0.1:8786", allow_insecure=True).plain_beyond_loopback
    assert not parse_cluster(None, "tcp://127.0.0.1:8786").plain_beyond_loopback
    assert not parse_cluster(None, "tcp://localhost:8786").plain_beyond_loopback
    assert not parse_cluster(None, "tcp://[::1]:8786").plain_beyond_loopback


@pytest.mark.parametrize("address", ["tcp://10.0.0.1:8786", "tcp://192.0.2.7:8786", "tcp://dask.example:8786",
                                     "tcp://[2001:db8::1]:8786", "tcp://0.0.0.0:8786"])
def test_plain_tcp_scheduler_beyond_loopback_is_refused_unless_allowed(address):
    """Whoever reaches a plain tcp:// scheduler runs code on its workers (and on the client): refused,
    in one line that names the way out, unless the user says so with --allow-insecure-scheduler."""
    with pytest.raises(PlanError) as refused:
        parse_cluster(None, address)
    message = str(refused.value)
    assert "\n" not in message and "tls://" in message and "--allow-insecure-scheduler" in message
    assert parse_cluster(None, address, allow_insecure=True).scheduler == address
    tls = address.replace("tcp://", "tls://")
    assert parse_cluster(None, tls, "ca.pem").scheduler == tls  # tls:// needs no flag
    for bad in [("local:0", None), ("local:x", None), ("remote:2", None), ("local:2", "tcp://127.0.0.1:1"),
                (None, "http://127.0.0.1:8786"), (None, "tcp://127.0.0.1:port"), (None, "tls://127.0.0.1:1")]:
        with pytest.raises(PlanError):
            parse_cluster(*bad)
    with pytest.raises(PlanError):
        parse_cluster(None, None, "ca.pem")  # TLS options without a scheduler
    with pytest.raises(PlanError):
        parse_cluster(None, "tcp://127.0.0.1:8786", "ca.pem")  # TLS options on a plain scheduler
    with pytest.raises(PlanError):
        parse_cluster(None, "tls://127.0.0.1:8786", "ca.pem", "c.pem")  # a cert without its key


def test_split_shares_connections_requests_and_rate():
    shards = split(plan(connections=10, requests=1001, duration_s=None), slots(3))
    assert [s.plan.connections for s in shards] == [4, 3, 3]
    assert [s.plan.requests for s in shards] == [334, 334, 333]
    assert [s.worker.address for s in shards] == [w.address for w in slots(3)]
    assert all(s.plan.workers == 1 for s in shards)  # one engine process per Dask worker thread
    open_loop = split(plan(rate=900.0, max_connections=100), slots(3, threads=4), processes_per_worker=2)
    assert [s.plan.rate for s in open_loop] == [300.0, 300.0, 300.0]
    assert [s.plan.max_connections for s in open_loop] == [34, 33, 33]
    assert all(s.plan.workers == 2 for s in open_loop)
    staged = split(plan(stages=(Stage(10, 90.0),), rate=None, open_loop=True, duration_s=10), slots(3))
    assert all(s.plan.stages == (Stage(10, 30.0),) for s in staged)


def test_split_never_gives_a_worker_nothing():
    assert len(split(plan(connections=2), slots(5))) == 2
    assert len(split(plan(connections=8, requests=3, duration_s=None), slots(5))) == 3
    with pytest.raises(PlanError):
        split(plan(), [])


def test_split_deals_each_source_to_one_worker():
    shards = split(plan(connections=6, sources=("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4")), slots(3))
    assert [s.plan.sources for s in shards] == [("10.0.0.1", "10.0.0.4"), ("10.0.0.2",), ("10.0.0.3",)]
    with pytest.raises(PlanError, match="at least one per worker"):
        split(plan(connections=6, sources=("10.0.0.1",)), slots(3))


def preflight(netns: str, source: str, ports: int = 28232, connections: int = 2) -> dict:
    return {"netns": netns, "sources": [source], "budget": {
        "ports": ports, "reuse_after_s": 60.0, "sustainable_new_conn_per_s": (ports - connections) / 60.0,
        "exhausted_at_connection": ports + 1}}


def test_budget_adds_each_pool_of_ports_once():
    three_hosts = [preflight(f"h{i}:1", f"10.0.0.{i}", connections=0) for i in range(3)]
    merged = merged_budget(three_hosts)
    assert merged["ports"] == 3 * 28232
    assert merged["sustainable_new_conn_per_s"] == pytest.approx(3 * 28232 / 60)
    assert merged["exhausted_at_connection"] == 3 * 28232 + 1
    assert wall_line(three_hosts) == "3 workers x 28,232 ports: the wall is at 1,412 new connections/s"
    one_host = [preflight("h:1", "127.0.0.1"), preflight("h:1", "127.0.0.1")]  # local:2 shares its ports
    assert merged_budget(one_host)["ports"] == 28232
    assert wall_line(one_host).startswith("2 workers sharing 1 port pool x 28,232 ports")
    reuse = [dict(p, budget=dict(p["budget"], sustainable_new_conn_per_s=None)) for p in three_hosts]
    assert wall_line(reuse) is None


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
