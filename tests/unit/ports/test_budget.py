"""The port-budget arithmetic (twload.ports.budget) over plain facts."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twload.kernel.sysctl import KernelFacts, count_reserved
from twload.ports import budget

MODERN = KernelFacts(tcp_timestamps=1, tcp_tw_reuse=2, tcp_tw_reuse_delay_ms=1000, tcp_tw_recycle=None,
                     port_low=32768, port_high=60999, tcp_max_tw_buckets=262144, nofile_soft=65536)


def facts(**kw) -> KernelFacts:
    return KernelFacts(**{**MODERN.raw(), **kw})


def test_port_count_and_reserved_ports():
    assert MODERN.ports == 28232
    assert count_reserved("8080,40000-40009,70000", 32768, 60999) == 10
    assert facts(reserved_ports=10).ports == 28222


def test_client_close_without_reuse_is_about_470_per_second():
    b = budget.compute(budget.BudgetInput(ports=28232, close="fin", connections=1, tw_reuse=0))
    assert b.reuse_after_s == 60
    assert round(b.sustainable_new_conn_per_s) == 471  # (28232 - 1) / 60
    assert b.exhausted_at_connection == 28233


def test_rate_above_sustainable_gives_time_to_exhaustion():
    b = budget.compute(budget.BudgetInput(ports=28232, close="fin", connections=0, rate=2000, tw_reuse=0))
    assert b.exhausted_after_s == pytest.approx(14.1, abs=0.1)


def test_reuse_needs_timestamps_and_loopback_for_2():
    assert budget.reuse_applies(1, True, False)
    assert not budget.reuse_applies(1, False, False)
    assert budget.reuse_applies(2, True, True)
    assert not budget.reuse_applies(2, True, False)
    assert not budget.reuse_applies(0, True, True)


def test_reuse_delay_sets_the_hold_time():
    b = budget.compute(budget.BudgetInput(ports=20, close="fin", tw_reuse=1, reuse_delay_ms=200, connections=0))
    assert b.reuse_after_s == 0.2 and b.sustainable_new_conn_per_s == 100
    assert b.exhausted_at_connection is None


def test_server_and_rst_close_leave_no_limit():
    for close in ("server", "rst", "keepalive"):
        b = budget.compute(budget.BudgetInput(ports=20, close=close, tw_reuse=0))
        assert not b.client_holds_time_wait and b.sustainable_new_conn_per_s is None


def test_max_tw_buckets_below_the_range_removes_the_limit():
    b = budget.compute(budget.BudgetInput(ports=28232, close="fin", tw_reuse=0, max_tw_buckets=1000))
    assert b.tw_bucket_capped and b.sustainable_new_conn_per_s is None


@given(ports=st.integers(1, 60000), sources=st.integers(1, 16), rate=st.floats(1, 1e6))
def test_more_sources_never_lower_the_sustainable_rate(ports, sources, rate):
    big = 10**9  # tcp_max_tw_buckets out of the way: its own test is below
    one = budget.compute(budget.BudgetInput(ports=ports, close="fin", connections=0, rate=rate, max_tw_buckets=big))
    many = budget.compute(budget.BudgetInput(ports=ports, close="fin", connections=0, rate=rate, sources=sources,
                                             max_tw_buckets=big))
    assert many.sustainable_new_conn_per_s == pytest.approx(one.sustainable_new_conn_per_s * sources)
    needed = budget.sources_needed(rate, ports)
    enough = budget.compute(budget.BudgetInput(ports=ports, close="fin", connections=0, rate=rate, sources=needed,
                                               max_tw_buckets=big))
    assert enough.exhausted_after_s is None


def test_an_open_loop_runs_out_after_all_its_ports_whatever_its_pool():
    """At a planned rate every new connection takes a port; the pool bound (-c) holds none itself:
    250 ports at 100 new connections/s last 2.5 s with -c 25 as with -c 1 (it said 2.25 s with -c 25,
    while the run's first EADDRNOTAVAIL came when every port had been taken)."""
    for pool in (1, 25):
        b = budget.compute(budget.BudgetInput(ports=250, close="fin", connections=pool, rate=100, tw_reuse=0))
        assert b.exhausted_after_s == pytest.approx(2.5)


def test_ports_run_out_only_for_a_run_that_reaches_the_first_failing_connection():
    b = budget.compute(budget.BudgetInput(ports=500, close="fin"))
    assert b.exhausted_at_connection == 501
    assert budget.runs_out(b, None) and budget.runs_out(b, 501) and not budget.runs_out(b, 500)
    assert not budget.runs_out(budget.compute(budget.BudgetInput(ports=500, close="server")), None)
