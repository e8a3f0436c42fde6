"""The pre-flight (twload.doctor.preflight), through its one function, with facts built by hand (no I/O):
one budget for the warning, plan.json, summary.json, a Dask shard's detail and the advice."""

import pytest

from twload.doctor import rules
from twload.doctor.preflight import Facts, doctor_view, preflight
from twload.kernel.resolve import parse_target
from twload.plan import Plan
from twload.ports.facts import KernelFacts
from twload.ports.timewait import found

URL = "http://10.250.1.2/"
NARROW = KernelFacts(tcp_tw_reuse=1, port_low=40000, port_high=40499, nofile_soft=65536)  # 500 ports
NO_TIMESTAMPS = Facts(NARROW, target_timestamps=False)
BUDGET_KEYS = {"ports", "reuse_after_s", "sustainable_new_conn_per_s", "exhausted_at_connection",
               "exhausted_after_s"}


def plan(**kw) -> Plan:
    return Plan(target=parse_target(URL), url=URL, **({"close": "fin", "connections": 1} | kw))


def held(time_wait: int, in_use: int | None = None) -> Facts:
    """Facts with client sockets already held towards the target at the start."""
    return Facts(NARROW, False, found(0.0, 0.0, time_wait, time_wait if in_use is None else in_use, None))


def test_the_warning_and_the_advice_use_the_same_numbers_with_sources():
    pre = preflight(plan(sources=tuple(f"10.250.1.{i}" for i in range(10, 15))), NO_TIMESTAMPS)
    b = pre.budget
    assert b.ports == 2500 and b.exhausted_at_connection == 2501 and pre.runs_out
    [warning] = pre.warnings
    assert "2500 ports are free" in warning and "connection 2501 within 60 s" in warning
    assert f"sustainable: {b.sustainable_new_conn_per_s:.0f} new connections/s" in warning
    assert any(line.startswith("2500 ports (5 source addresses x 500)") and
               f"at most {b.sustainable_new_conn_per_s:.0f} new connections/s" in line for line in pre.advice)
    assert pre.sentence == "pre-flight: ports towards 10.250.1.2:80 will run out." == warning.splitlines()[0]


def test_ports_held_before_the_run_count_against_the_budget_and_are_named():
    pre = preflight(plan(), held(15))
    assert pre.budget.exhausted_at_connection == 486
    assert "(15 of 500 still held from before, freed within 60 s)" in pre.warnings[0]


def test_a_listener_on_an_ephemeral_port_counts_against_the_budget_too():
    facts = Facts(NARROW, False, found(0.0, 0.0, 0, 10, None), listeners_in_range=5)
    assert facts.in_use == 15
    assert preflight(plan(), facts).budget.exhausted_at_connection == 486


def test_no_warning_where_ports_do_not_run_out():
    keepalive = preflight(plan(close="keepalive", connections=50), NO_TIMESTAMPS)
    assert not keepalive.runs_out and keepalive.warnings == ()
    assert keepalive.sentence == ("pre-flight: towards 10.250.1.2:80, the budget: 500 ports, "
                                  "held while connections are open")
    few = preflight(plan(requests=100), NO_TIMESTAMPS)  # fewer requests than free ports
    assert few.budget.exhausted_at_connection == 501 and not few.runs_out
    reuse = preflight(plan(), Facts(NARROW, target_timestamps=True))  # tcp_tw_reuse=1 with timestamps
    assert reuse.budget.exhausted_at_connection is None and not reuse.runs_out
    assert "; at most " in reuse.sentence and reuse.wall.endswith("each unusable for 1 s after the client closes")


def test_at_the_wall_the_summary_gets_the_sentence_and_the_advice():
    pre = preflight(plan(), NO_TIMESTAMPS)
    block = pre.summary_block({"EADDRNOTAVAIL": 11488}, 500, 0.06)
    assert block["wall"] == (
        "At the port wall from 0.06s, after 500 connections: no free local port towards 10.250.1.2:80 "
        "(EADDRNOTAVAIL x11488); the budget: 500 ports, each unusable for 60 s after the client closes.")
    assert block["advice"] == list(pre.advice) and block["advice"]
    assert block["target_timestamps"] is False and set(block["budget"]) == BUDGET_KEYS


def test_without_the_wall_the_summary_gets_only_the_budget():
    pre = preflight(plan(), NO_TIMESTAMPS)
    assert set(pre.summary_block({"ECONNREFUSED": 3}, 0, None)) == {"target_timestamps", "budget"}


def test_the_wall_sentence_names_the_ports_earlier_connections_held_at_the_start():
    pre = preflight(plan(), held(15))
    assert pre.summary_block({"EADDRNOTAVAIL": 300}, 485, 0.06)["wall"].endswith(
        "the budget: 500 ports, each unusable for 60 s after the client closes, 15 of them in TIME_WAIT left by "
        "earlier connections at the start.")
    assert pre.advice[-1].startswith("15 ports towards this target were already in TIME_WAIT at the run's start")


def test_plan_json_holds_the_facts_the_budget_and_the_warnings():
    block = preflight(plan(), held(15, in_use=20)).plan_block()
    assert block["time_wait_at_start"] == 15 and block["ports_in_use_at_start"] == 20
    assert block["target_timestamps"] is False and set(block["budget"]) == BUDGET_KEYS
    assert block["budget"]["exhausted_at_connection"] == 481
    assert block["warnings"][0].startswith("pre-flight: ports towards 10.250.1.2:80 will run out.")
    assert "warnings" not in preflight(plan(close="rst"), NO_TIMESTAMPS).plan_block()


def test_a_shards_detail_carries_its_host_facts_and_its_warning():
    facts = Facts(NARROW, False, found(0.0, 0.0, 3, 7, None), listeners_in_range=2)
    block = preflight(plan(), facts).worker_block()
    assert block["port_range"] == "40000-40499" and block["tcp_tw_reuse"] == 1 and block["tcp_timestamps"] == 1
    assert block["time_wait_held"] == 7 and block["listeners_in_range"] == 2
    assert block["budget"]["exhausted_at_connection"] == 492
    assert block["warning"].startswith("pre-flight: ports towards 10.250.1.2:80 will run out.")


def test_an_open_loop_rate_reaches_the_budget_as_new_connections_per_second():
    p = plan(rate=100.0, duration_s=10.0)
    assert doctor_view(p, NO_TIMESTAMPS)[1].rate == 100.0
    b = preflight(p, NO_TIMESTAMPS).budget
    assert b.exhausted_after_s is not None and round(b.exhausted_after_s) == 5  # 499 ports at 100/s
    keepalive = Plan(target=parse_target(URL), url=URL, rate=100.0, duration_s=10.0)
    assert doctor_view(keepalive, NO_TIMESTAMPS)[1].rate is None
    assert rules.DoctorPlan().in_use == 0


def test_the_preflight_is_a_value():
    pre = preflight(plan(), NO_TIMESTAMPS)
    with pytest.raises(AttributeError):
        pre.budget = None  # type: ignore[misc]
    assert pre == preflight(plan(), NO_TIMESTAMPS)


def test_each_destination_its_own_budget_over_its_part_of_the_connections():
    """Targets on two destinations: a budget each, as ports/budget.py computes it for that destination
    alone (ports per (source, destination address:port)), over the connections its slots hold."""
    from dataclasses import replace

    from twload.ports import budget

    dests = (parse_target("http://10.250.1.2:8081/"), parse_target("http://10.250.1.3:8082/"))
    two = plan(connections=40, requests=50, duration_s=None, destinations=dests, destination_weights=(1, 3),
               sources=("10.250.1.10", "10.250.1.11"))
    facts = replace(NO_TIMESTAMPS, destinations=(NO_TIMESTAMPS, held(100)))
    pre = preflight(two, facts)
    assert [d.target for d in pre.destinations] == ["10.250.1.2:8081", "10.250.1.3:8082"]
    assert [d.connections for d in pre.destinations] == [10, 30]
    for each, connections, in_use in zip(pre.destinations, (10, 30), (0, 100), strict=True):
        # --close fin, tcp_tw_reuse=1 without timestamps: the client holds every port 60 s
        want = budget.compute(budget.BudgetInput(ports=500, close="fin", connections=connections, sources=2,
                                                 tw_reuse=1, timestamps=False, in_use=in_use))
        assert each.budget == want
        assert each.sentence == (f"pre-flight: towards {each.target}, {each.wall}; at most "
                                 f"{want.sustainable_new_conn_per_s:,.0f} new connections/s")
    assert pre.destinations[0].budget.sustainable_new_conn_per_s == (1000 - 10) / 60
    assert pre.destinations[1].budget.sustainable_new_conn_per_s == (1000 - 100 - 30) / 60
    block = pre.plan_block()["destinations"]
    assert [(d["destination"], d["connections"]) for d in block] == [("10.250.1.2:8081", 10), ("10.250.1.3:8082", 30)]
    assert block[1]["budget"]["sustainable_new_conn_per_s"] == pytest.approx(870 / 60)


def test_a_destination_whose_ports_run_out_warns_for_the_run():
    from dataclasses import replace

    dests = (parse_target("http://10.250.1.2:8081/"), parse_target("http://10.250.1.3:8082/"))
    facts = replace(NO_TIMESTAMPS, destinations=(NO_TIMESTAMPS, held(450)))
    pre = preflight(plan(connections=2, requests=100, duration_s=None, destinations=dests), facts)
    assert pre.runs_out
    assert [w.splitlines()[0] for w in pre.warnings] == ["pre-flight: ports towards 10.250.1.3:8082 will run out."]


def test_http2_fin_opens_a_connection_per_requests_per_connection_streams_not_per_request():
    """--http2 --close fin: the -c connections carry every stream unless --requests-per-connection ends
    them, so 100,000 requests over 2 connections (or 100 of 1,000 streams each) leave 500 ports enough."""
    kept = preflight(plan(http2=True, connections=2, requests=100_000), NO_TIMESTAMPS)
    assert not kept.runs_out and kept.warnings == ()
    assert doctor_view(plan(http2=True, rate=5000.0, duration_s=10.0), NO_TIMESTAMPS)[1].rate is None
    assert not preflight(plan(http2=True, requests=100_000, requests_per_connection=1000), NO_TIMESTAMPS).runs_out
    churn = preflight(plan(http2=True, requests=100_000, requests_per_connection=10), NO_TIMESTAMPS)
    assert churn.runs_out  # 10,000 connections, each its client TIME_WAIT
    assert doctor_view(plan(http2=True, rate=5000.0, duration_s=10.0, requests_per_connection=10),
                       NO_TIMESTAMPS)[1].rate == 500.0


def test_open_loop_each_destination_its_share_of_the_rate_and_of_max_connections():
    """The open loop over two destinations (weights 1 and 3): each one's budget is over its share of
    --max-connections (the worker's pools) and of the rate (its requests falling due)."""
    from dataclasses import replace

    dests = (parse_target("http://10.250.1.2:8081/"), parse_target("http://10.250.1.3:8082/"))
    two = plan(rate=400.0, max_connections=40, destinations=dests, destination_weights=(1, 3))
    pre = preflight(two, replace(NO_TIMESTAMPS, destinations=(NO_TIMESTAMPS, NO_TIMESTAMPS)))
    assert [d.connections for d in pre.destinations] == [10, 30]
    alone = [preflight(plan(rate=rate, max_connections=n, connections=n), NO_TIMESTAMPS)
             for rate, n in ((100.0, 10), (300.0, 30))]
    assert [d.budget for d in pre.destinations] == [a.budget for a in alone]
    # --close fin: a connection a request, so 300 new connections/s run 500 ports out within 60 s, 100/s too
    assert pre.runs_out and len(pre.warnings) == 2
