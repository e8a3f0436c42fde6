"""Each doctor rule (twload.doctor.rules) over plain facts."""

import pytest

from twload.doctor import rules as doctor
from twload.kernel.sysctl import KernelFacts

MODERN = KernelFacts(tcp_timestamps=1, tcp_tw_reuse=2, tcp_tw_reuse_delay_ms=1000, tcp_tw_recycle=None,
                     port_low=32768, port_high=60999, tcp_max_tw_buckets=262144, nofile_soft=65536)
REMOTE = doctor.TargetFacts("192.0.2.10", 80, loopback=False, timestamps=True, server_closes_first=True,
                            keepalive=True)
LB_NO_TS = doctor.TargetFacts("192.0.2.10", 80, loopback=False, timestamps=False)
LOOP = doctor.TargetFacts("127.0.0.1", 8080, loopback=True, timestamps=True)


def facts(**kw) -> KernelFacts:
    return KernelFacts(**{**MODERN.raw(), **kw})


def by_id(findings, rule_id):
    return [f for f in findings if f.id == rule_id]


def test_timestamps_off_at_the_target():
    found = by_id(doctor.diagnose(facts(tcp_tw_reuse=1), LB_NO_TS, doctor.DoctorPlan()), "tw_reuse")
    assert found[0].level == doctor.PROBLEM
    assert "will not help: the target does not negotiate TCP timestamps" in found[0].message


def test_tw_reuse_0():
    found = by_id(doctor.diagnose(facts(tcp_tw_reuse=0), REMOTE, doctor.DoctorPlan()), "tw_reuse")
    assert found[0].level == doctor.WARNING and found[0].fix == {"net.ipv4.tcp_tw_reuse": "1"}


def test_tw_reuse_1_with_timestamps_is_fine():
    found = by_id(doctor.diagnose(facts(tcp_tw_reuse=1), REMOTE, doctor.DoctorPlan()), "tw_reuse")
    assert found[0].level == doctor.OK


def test_tw_reuse_2_loopback_vs_remote():
    remote = by_id(doctor.diagnose(MODERN, REMOTE, doctor.DoctorPlan()), "tw_reuse")[0]
    loop = by_id(doctor.diagnose(MODERN, LOOP, doctor.DoctorPlan()), "tw_reuse")[0]
    assert remote.level == doctor.WARNING and "loopback only" in remote.message
    assert loop.level == doctor.OK


def test_budget_message_names_the_remedies():
    found = by_id(doctor.diagnose(facts(tcp_tw_reuse=0), REMOTE, doctor.DoctorPlan(rate=2000)), "port_budget")[0]
    assert found.level == doctor.PROBLEM
    assert found.message == ("at 2000 new connections/s with client close, 28232 ports last 14 s: "
                             "use --close server or --close rst, or 5 source addresses")


def test_many_sources_make_the_rate_sustainable():
    found = by_id(doctor.diagnose(facts(tcp_tw_reuse=0), REMOTE, doctor.DoctorPlan(rate=2000, sources=5)),
                  "port_budget")[0]
    assert found.level == doctor.WARNING  # sustainable, but only without reuse's help
    assert f"at most {(5 * 28232 - 50) / 60:.0f} new connections/s" in found.message


def test_narrow_port_range():
    found = by_id(doctor.diagnose(facts(port_low=40000, port_high=40019), REMOTE, doctor.DoctorPlan()), "port_range")
    assert found[0].level == doctor.WARNING and "only 20 ephemeral ports" in found[0].message


def test_tw_recycle_present_and_absent():
    absent = by_id(doctor.diagnose(MODERN, None, doctor.DoctorPlan()), "tw_recycle")[0]
    assert "does not exist on this kernel (removed in 4.12)" in absent.message
    on = by_id(doctor.diagnose(facts(tcp_tw_recycle=1), None, doctor.DoctorPlan()), "tw_recycle")[0]
    assert on.level == doctor.PROBLEM and on.fix == {"net.ipv4.tcp_tw_recycle": "0"}


def test_fin_timeout_is_not_time_wait():
    assert not by_id(doctor.diagnose(MODERN, None, doctor.DoctorPlan()), "fin_timeout")
    found = by_id(doctor.diagnose(facts(tcp_fin_timeout=15), None, doctor.DoctorPlan()), "fin_timeout")[0]
    assert "does NOT shorten TIME_WAIT" in found.message


def test_open_files_limit():
    found = by_id(doctor.diagnose(facts(nofile_soft=1024), None, doctor.DoctorPlan(connections=5000)), "open_files")
    assert found[0].level == doctor.PROBLEM and "EMFILE" in found[0].message


def test_server_close_and_keepalive_findings():
    t = doctor.TargetFacts("192.0.2.10", 80, False, timestamps=True, server_closes_first=False, keepalive=False)
    findings = doctor.diagnose(MODERN, t, doctor.DoctorPlan())
    assert by_id(findings, "server_close")[0].level == doctor.WARNING
    assert by_id(findings, "keepalive")[0].level == doctor.WARNING


def test_json_report_keys():
    plan = doctor.DoctorPlan()
    findings = doctor.diagnose(MODERN, REMOTE, plan)
    report = doctor.report(MODERN, {"net.ipv4.tcp_tw_reuse": "2"}, REMOTE, plan, findings)
    assert set(report) == {"sysctl", "target", "budget", "findings"}
    assert {"timestamps", "server_closes_first", "keepalive"} <= set(report["target"])
    assert set(report["budget"]) == {"ports", "reuse_after_s", "sustainable_new_conn_per_s"}
    assert all(set(f) == {"level", "id", "message"} for f in report["findings"])


def test_advice_says_each_thing_once_and_the_remedy_once():
    findings = doctor.diagnose(facts(tcp_tw_reuse=1), LB_NO_TS, doctor.DoctorPlan(close="fin"))
    lines = doctor.advice(findings)
    assert sum("timestamps" in line for line in lines) == 1  # tw_reuse already names the target's timestamps
    assert sum("--close server" in line for line in lines) == 1
    assert len(lines) == len(set(lines))


def test_advice_with_source_addresses_counts_their_ports():
    plan = doctor.DoctorPlan(close="fin", sources=5, connections=1)
    lines = doctor.advice(doctor.diagnose(facts(tcp_tw_reuse=0, port_low=40000, port_high=40499), LB_NO_TS, plan))
    budget_line = next(line for line in lines if "ports" in line and "each unusable" in line)
    assert budget_line.startswith("2500 ports (5 source addresses x 500), each unusable for 60 s")
    assert "at most 42 new connections/s" in budget_line  # (2500 - 1) / 60


def test_a_client_without_timestamps_is_not_blamed_on_the_target():
    target = doctor.TargetFacts("192.0.2.10", 80, loopback=False, timestamps=False)
    findings = doctor.diagnose(facts(tcp_timestamps=0, tcp_tw_reuse=1), target, doctor.DoctorPlan())
    assert not by_id(findings, "tw_reuse")
    assert "this client sends none (tcp_timestamps=0)" in by_id(findings, "target_timestamps")[0].message
    assert by_id(findings, "client_timestamps")[0].level == doctor.WARNING


def test_a_wider_port_range_leaves_well_known_and_service_ports_alone_and_names_reserved_ports():
    found = by_id(doctor.diagnose(facts(port_low=40000, port_high=40499, reserved_ports=0), REMOTE,
                                  doctor.DoctorPlan()), "port_range")[0]
    low, high = (int(x) for x in found.fix["net.ipv4.ip_local_port_range"].split())
    assert low >= 1024 and high <= 65535 and high - low + 1 >= 28232  # wider than the default, no well-known port
    assert (low + high) % 2 == 1  # ends of different parity (ip-sysctl.rst)
    assert "net.ipv4.ip_local_reserved_ports (none reserved now)" in found.message
    assert "below 10000 (the well-known ones included)" in found.message


def test_advice_at_the_wall_without_client_close_blames_open_connections_not_time_wait():
    findings = doctor.diagnose(facts(port_low=40000, port_high=40019), REMOTE, doctor.DoctorPlan(close="keepalive"))
    lines = doctor.advice(findings, "keepalive")
    assert lines[-1].startswith("EADDRNOTAVAIL: no free local port towards this target: its open connections")
    assert not any("TIME_WAIT for 60 s" in line for line in lines)
    assert any(line.startswith("ip_local_port_range 40000-40019") for line in lines)


def test_advice_at_the_wall_names_the_time_wait_earlier_connections_left():
    """#36: a server-close run that finds an earlier fin run's TIME_WAIT on most ports: not its open connections."""
    findings = doctor.diagnose(facts(port_low=40000, port_high=40019), REMOTE, doctor.DoctorPlan(close="server"))
    lines = doctor.advice(findings, "server", found=15)
    assert any(line.startswith("15 ports towards this target were already in TIME_WAIT at the run's start, left by "
                               "earlier connections (up to 60 s each); this run's --close server leaves none of its "
                               "own") for line in lines)
    assert not any("its open connections" in line for line in lines)
    fin = doctor.advice(doctor.diagnose(facts(tcp_tw_reuse=0), REMOTE, doctor.DoctorPlan(close="fin")), "fin", found=15)
    assert fin[-1].startswith("15 ports towards this target were already in TIME_WAIT at the run's start")
    assert sum("--close server" in line for line in fin) == 1


def test_every_fix_the_rules_propose_is_one_restore_may_write_back():
    """FIXABLE_SYSCTLS is the one list: what --fix may set is what --restore accepts."""
    from twload.ports.facts import FIXABLE_SYSCTLS

    kernels = [facts(tcp_tw_recycle=1), facts(tcp_timestamps=0), facts(tcp_tw_reuse=0), facts(tcp_tw_reuse=2),
               facts(port_low=60000, port_high=60999), facts(tcp_max_tw_buckets=100), facts(tcp_fin_timeout=30)]
    proposed = set()
    for kernel in kernels:
        for target in (None, REMOTE, LB_NO_TS, LOOP):
            proposed |= set(doctor.proposed_fixes(doctor.diagnose(kernel, target, doctor.DoctorPlan(rate=5000))))
    assert proposed == FIXABLE_SYSCTLS  # every one is reachable, and no other
    with pytest.raises(ValueError, match="kernel.core_pattern"):
        doctor.Finding(doctor.WARNING, "x", "a fix restore could never undo", {"kernel.core_pattern": "core"})


def test_a_keepalive_run_is_not_said_to_leave_no_time_wait_of_its_own():
    """keepalive closes its connections first at the end (plan.close.WHY: "TIME_WAIT only for the -c closed
    at the end", one per connection with --requests-per-connection): only server and rst leave none."""
    findings = doctor.diagnose(facts(port_low=40000, port_high=40019), REMOTE, doctor.DoctorPlan(close="keepalive"))
    lines = doctor.advice(findings, "keepalive", found=15)
    assert any(line.startswith("15 ports towards this target were already in TIME_WAIT") for line in lines)
    assert not any("leaves none of its own" in line for line in lines)
    for close in ("server", "rst"):
        lines = doctor.advice(doctor.diagnose(facts(), REMOTE, doctor.DoctorPlan(close=close)), close, found=15)
        assert any(f"this run's --close {close} leaves none of its own" in line for line in lines)


def test_a_connect_of_a_second_or_more_is_explained():
    slow = doctor.TargetFacts("192.0.2.10", 80, loopback=False, timestamps=True, connect_s=1.02)
    found = {f.id: f for f in doctor.diagnose(MODERN, slow, doctor.DoctorPlan())}
    assert found["slow_connect"].level == "warning"
    assert "1.02 s" in found["slow_connect"].message and "accept queue is full" in found["slow_connect"].message
    fast = doctor.TargetFacts("192.0.2.10", 80, loopback=False, timestamps=True, connect_s=0.002)
    assert "slow_connect" not in {f.id for f in doctor.diagnose(MODERN, fast, doctor.DoctorPlan())}
