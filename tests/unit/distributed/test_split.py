"""The plan's split over Dask workers and the merge of their pre-flights (twload.distributed.split, pure)."""

import pytest

from twload.distributed.split import WorkerSlot, merged_budget, split, wall_line
from twload.kernel.resolve import parse_target
from twload.plan import Plan, PlanError
from twload.plan.schedule import Stage

URL = "http://127.0.0.1:8080/"


def plan(**kw) -> Plan:
    return Plan(target=parse_target(URL), url=URL, **kw)


def slots(n: int, threads: int = 1) -> list[WorkerSlot]:
    return [WorkerSlot(f"tcp://10.0.0.{i + 1}:9000", f"h{i}", threads) for i in range(n)]


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


def test_split_numbers_each_shards_engine_processes_after_the_earlier_ones():
    shards = split(plan(connections=10), slots(3, threads=2))  # 2 + 2 + 2 engine processes
    assert [(s.plan.worker_base, s.plan.worker_total) for s in shards] == [(0, 6), (2, 6), (4, 6)]
    fewer = split(plan(connections=3, requests=5, duration_s=None), slots(2, threads=4))  # 2 + 1 connections
    assert [(s.plan.worker_base, s.plan.worker_total) for s in fewer] == [(0, 3), (2, 3)]


def test_split_gives_every_shard_a_connection_per_destination():
    two = (parse_target("http://127.0.0.1:8081/"), parse_target("http://127.0.0.1:8082/"))
    assert len(split(plan(connections=4, destinations=two, destination_weights=(1, 1)), slots(2))) == 2
    with pytest.raises(PlanError, match="-c 3 over 2 Dask workers leaves a worker fewer connections than the 2"):
        split(plan(connections=3, destinations=two, destination_weights=(1, 1)), slots(2))
    with pytest.raises(PlanError, match="--max-connections 3 over 2 Dask workers"):
        split(plan(rate=10.0, max_connections=3, destinations=two, destination_weights=(1, 1)), slots(2))


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
