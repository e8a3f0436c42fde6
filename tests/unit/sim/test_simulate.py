"""The simulator against hand-derived expectations, and its invariants."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twload.sim.model import Params, Simulation, simulate
from twload.sim.run import run_scenario
from twload.sim.scenarios import SCENARIOS


def test_scenarios_listed_in_order():
    assert list(SCENARIOS) == ["client-close-exhaustion", "tw-reuse", "tw-reuse-lb-no-timestamps", "nat-tw-recycle",
                               "nat-timewait-collision", "server-close", "rst-close", "paws-wrap", "ts-offsets-4.10"]


def test_ten_ports_one_per_second_the_eleventh_fails():
    r = run_scenario("client-close-exhaustion", {"ports": "10", "rate": "1", "duration": "15"})
    assert r["established"] == 10
    assert r["failed"] == {"EADDRNOTAVAIL": 5}
    assert r["first_failure_s"] == 10.0  # connection 11, sent at t=10 s
    assert r["time_wait_peak"] == {"client1": 10}


def test_exhaustion_rate_is_range_over_sixty_seconds():
    r = run_scenario("client-close-exhaustion", {"ports": "600", "rate": "20", "duration": "120"})
    # 600 ports / 20 per second = 30 s, then nothing until the first TIME_WAITs end at 60 s,
    # after which 10 connections/s (600 / 60 s) are sustained
    assert r["first_failure_s"] == pytest.approx(30.0)
    assert r["established"] == pytest.approx(600 + 60 * 10, abs=25)


def test_tw_reuse_sustains_the_rate():
    r = run_scenario("tw-reuse", {})
    assert r["failed"] == {} and r["established"] == r["attempted"]
    assert r["tw_reused"] > 0


def test_tw_reuse_delay_bounds_the_rate():
    # 20 ports reusable 1 s after entering TIME_WAIT: at most ~20 connections per second
    r = run_scenario("tw-reuse", {"ports": "20", "rate": "100", "duration": "10"})
    assert 20 * 9 <= r["established"] <= 20 * 11


def test_no_timestamps_at_the_load_balancer_no_reuse():
    with_ts = run_scenario("tw-reuse", {})
    without = run_scenario("tw-reuse-lb-no-timestamps", {})
    assert without["failed"]["EADDRNOTAVAIL"] > 0 and with_ts["failed"] == {}
    assert without["tw_reused"] == 0


def test_tw_recycle_behind_nat_drops_the_lagging_clients():
    p = Params(kernel="2.6.32", clients=2, rate=2, duration=30, close="server", tw_recycle=True, nat=True)
    sim = Simulation(p)
    r = sim.run()
    leader, lagger = sorted(sim.clients, key=lambda c: c.uptime_s, reverse=True)
    assert abs(leader.uptime_s - lagger.uptime_s) * p.ts_hz > 1  # clocks differ by more than 1 tick
    assert r.established_by_host[leader.name] == 60  # every one of the leader's connections
    assert r.established_by_host[lagger.name] <= 2  # the lagging client's SYNs are dropped
    assert r.syn_dropped["tw_recycle_paws_passive"] > 0


def test_tw_recycle_drop_rate_grows_with_clients():
    rates = []
    for clients in (1, 2, 4):
        r = run_scenario("nat-tw-recycle", {"clients": str(clients), "duration": "30"})
        rates.append(1 - r["established"] / r["attempted"])
    assert rates[0] == 0 and rates[0] < rates[1] < rates[2]


def test_random_offsets_of_4_10_break_tw_recycle_without_nat():
    broken = run_scenario("ts-offsets-4.10", {})
    fine = run_scenario("ts-offsets-4.10", {}, kernel="4.4")
    assert broken["syn_dropped"]["tw_recycle_paws_passive"] > 0
    assert fine["syn_dropped"] == {} and fine["established"] == fine["attempted"]


def test_nat_timewait_collision_on_6x():
    r = run_scenario("nat-timewait-collision", {})
    assert r["syn_dropped"].get("PAWSTimewait", 0) > 0
    assert r["retried"] > 0 and r["max_extra_delay_s"] > 1.0


def test_server_close_and_rst_close():
    server = run_scenario("server-close", {})
    assert "client1" not in server["time_wait_peak"] and server["time_wait_peak"]["server"] > 0
    assert server["failed"] == {}
    rst = run_scenario("rst-close", {})
    assert rst["time_wait_peak"] == {} and rst["failed"] == {}


def test_paws_wraps_but_the_24_day_rule_saves_it():
    r = run_scenario("paws-wrap", {})
    assert r["failed"] == {} and r["established"] == r["attempted"]
    assert r["syn_dropped"]["would_be_rejected_without_24day_rule"] > 0


def test_unknown_parameters_and_kernels_are_errors():
    with pytest.raises(ValueError, match="unknown parameter"):
        run_scenario("tw-reuse", {"bogus": "1"})
    with pytest.raises(ValueError, match="unknown kernel"):
        run_scenario("tw-reuse", {}, kernel="3.0")


small = st.fixed_dictionaries({
    "kernel": st.sampled_from(["2.6.32", "4.4", "4.10", "4.11", "4.12", "6.x"]),
    "ports": st.integers(2, 40),
    "rate": st.floats(0.5, 30),
    "duration": st.floats(1, 40),
    "clients": st.integers(1, 4),
    "nat": st.booleans(),
    "nat_ports": st.integers(1, 8),
    "close": st.sampled_from(["fin", "server", "rst"]),
    "server_timestamps": st.booleans(),
    "tw_reuse": st.integers(0, 2),
    "tw_recycle": st.booleans(),
    "loopback": st.booleans(),
    "seed": st.integers(0, 1000),
})


@settings(max_examples=60, deadline=None)
@given(values=small)
def test_invariants(values):
    p = Params(**values)
    sim = Simulation(p)
    r = sim.run(check_invariants=True)  # asserts a 4-tuple is never live twice at once
    assert r.established + sum(r.failed.values()) == r.attempted
    assert r.established == r.syn_accepted  # no connection from a dropped SYN
    again = simulate(Params(**values))
    assert again.as_dict() == r.as_dict()  # same seed, same result
