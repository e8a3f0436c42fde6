"""One budget for the pre-flight, the live line, the summary and the advice (engine/preflight.py)."""

from twload.doctor import rules as doctor
from twload.engine import preflight as pf
from twload.kernel.resolve import parse_target
from twload.kernel.sysctl import KernelFacts
from twload.plan import Plan

URL = "http://10.250.1.2/"
NARROW = KernelFacts(tcp_tw_reuse=1, port_low=40000, port_high=40499, nofile_soft=65536)  # 500 ports


def plan(**kw) -> Plan:
    return Plan(target=parse_target(URL), url=URL, close="fin", connections=1, **kw)


def test_the_pre_flight_and_the_advice_use_the_same_numbers_with_sources():
    p = plan(sources=tuple(f"10.250.1.{i}" for i in range(10, 15)))
    b = pf.plan_budget(p, NARROW, timestamps=False, in_use=0)
    assert b.ports == 2500 and b.exhausted_at_connection == 2501
    warning = pf.warning(p, b, NARROW, timestamps=False)
    assert "2500 ports are free" in warning and "connection 2501 within 60 s" in warning
    assert f"sustainable: {b.sustainable_new_conn_per_s:.0f} new connections/s" in warning
    advice = pf.advice(p, NARROW, timestamps=False)
    assert any(line.startswith("2500 ports (5 source addresses x 500)") and
               f"at most {b.sustainable_new_conn_per_s:.0f} new connections/s" in line for line in advice)


def test_ports_held_before_the_run_count_against_the_budget_and_are_named():
    b = pf.plan_budget(plan(), NARROW, timestamps=False, in_use=15)
    assert b.exhausted_at_connection == 486
    assert "(15 of 500 still held from before, freed within 60 s)" in pf.warning(plan(), b, NARROW, False, 15)


def test_the_wall_line_uses_the_budget_and_the_connections_opened():
    b = pf.plan_budget(plan(), NARROW, timestamps=False, in_use=0)
    summary = {"errors": {"EADDRNOTAVAIL": 11488}, "connections_opened": 500,
               "first_errors": {"EADDRNOTAVAIL": {"at_s": 0.06, "connection": 501, "worker": 0}}}
    assert pf.wall_line(plan(), b, summary) == (
        "At the port wall from 0.06s, after 500 connections: no free local port towards 10.250.1.2:80 "
        "(EADDRNOTAVAIL x11488); the budget: 500 ports, each unusable for 60 s after the client closes.")


def test_an_open_loop_rate_reaches_the_budget_as_new_connections_per_second():
    p = plan(rate=100.0, duration_s=10.0)
    _, doctor_plan = pf.doctor_view(p, False, 0)
    assert doctor_plan.rate == 100.0
    b = pf.plan_budget(p, NARROW, timestamps=False, in_use=0)
    assert b.exhausted_after_s is not None and round(b.exhausted_after_s) == 5  # 499 ports at 100/s
    keepalive = Plan(target=parse_target(URL), url=URL, rate=100.0, duration_s=10.0)
    assert pf.doctor_view(keepalive, False, 0)[1].rate is None
    assert doctor.DoctorPlan().in_use == 0


def test_the_wall_line_names_the_ports_earlier_connections_held_at_the_start():
    b = pf.plan_budget(plan(), NARROW, timestamps=False, in_use=15)
    summary = {"errors": {"EADDRNOTAVAIL": 300}, "connections_opened": 485, "time_wait_at_start": 15,
               "first_errors": {"EADDRNOTAVAIL": {"at_s": 0.06, "connection": 486, "worker": 0}}}
    assert pf.wall_line(plan(), b, summary).endswith(
        "the budget: 500 ports, each unusable for 60 s after the client closes, 15 of them in TIME_WAIT left by "
        "earlier connections at the start.")
    advice = pf.advice(plan(), NARROW, timestamps=False, in_use=15, found=15)
    assert advice[-1].startswith("15 ports towards this target were already in TIME_WAIT at the run's start")
