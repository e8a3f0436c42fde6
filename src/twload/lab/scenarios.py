"""Lab scenarios: each builds a topology, measures a claim on the real kernel, and says what the simulator predicts.

A scenario returns Checks: claim, expected, measured, verdict, and (where the
simulator models the same thing) the simulator's prediction and whether the two
agree within the stated tolerance.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from twload.lab import faults, http2, topology
from twload.lab.check import Check
from twload.lab.inside import counters, delta, doctor, finding, port_of, probe, sim, time_wait, twload_run
from twload.lab.topology import Host

NARROW = "40000 40019"  # 20 ports
TWO_PORTS = "40000 40001"


# -- scenarios -------------------------------------------------------------------

def time_wait_60s() -> list[Check]:
    with topology.direct().lab as lab:
        client, server = lab.hosts["client"], lab.hosts["server"]
        url = lab.serve(server)
        lasted = probe(client, "tw-lifetime", server.address, str(port_of(url)), "--limit", "70")["time_wait_s"]
    predicted = 60.0  # TCP_TIMEWAIT_LEN, the simulator's constant
    ok = lasted is not None and 59.5 <= lasted <= 63.0
    return [Check("TIME_WAIT lasts 60 s on the side that closes first", "60-63 s (timer slack)",
                  f"{lasted} s", ok, f"{predicted:g} s", ok and abs(lasted - predicted) <= 3.0)]


def client_close_exhaustion() -> list[Check]:
    with topology.direct().lab as lab:
        client, server = lab.hosts["client"], lab.hosts["server"]
        client.sysctl("net.ipv4.ip_local_port_range", NARROW)
        client.sysctl("net.ipv4.tcp_tw_reuse", 0)
        url = lab.serve(server)
        summary, _ = twload_run(client, url, "-n", "40", "-c", "1", "--close", "fin")
        other, _ = twload_run(client, lab.serve(server), "-n", "5", "-c", "1", "--close", "fin")
    first = summary.get("first_errors", {}).get("EADDRNOTAVAIL", {}).get("connection")
    predicted = sim("client-close-exhaustion", ports=20, rate=10, duration=4)
    sim_before = predicted["established"]
    return [
        Check("client closes first, 20 ports: connections before EADDRNOTAVAIL equal the range", "20, then #21 fails",
              f"{summary['requests']}, first EADDRNOTAVAIL at #{first}", summary["requests"] == 20 and first == 21,
              f"{sim_before} before the first failure", sim_before == summary["requests"]),
        Check("a different destination port still gets a port (4-tuple rule)", "5 of 5",
              f"{other['requests']} of 5", other["requests"] == 5),
    ]


def tw_reuse() -> list[Check]:
    checks = []
    with topology.direct().lab as lab:
        client, server = lab.hosts["client"], lab.hosts["server"]
        client.sysctl("net.ipv4.ip_local_port_range", TWO_PORTS)
        client.sysctl("net.ipv4.tcp_tw_reuse", 1)
        has_delay = client.read_sysctl("net.ipv4.tcp_tw_reuse_delay") != ""
        for delay_ms in ((1000, 200) if has_delay else (None,)):
            if delay_ms:
                client.sysctl("net.ipv4.tcp_tw_reuse_delay", delay_ms)
            url = lab.serve(server)  # a fresh destination: its 4-tuples hold no TIME_WAIT yet
            got = probe(client, "reuse-delay", server.address, str(port_of(url)), "--fill", "2", "--limit", "5")
            measured = got["reused_after_s"]
            want = (delay_ms or 1000) / 1000
            predicted = sim("tw-reuse", ports=2, rate=200, duration=want + 1, tw_reuse_delay_ms=delay_ms or 1000)
            first_reuse = predicted["first_reuse_s"]
            ok = measured is not None and want <= measured <= want + 0.3
            agree = measured is not None and first_reuse is not None and abs(measured - first_reuse) <= 0.15
            checks.append(Check(
                "tcp_tw_reuse=1 with timestamps: a TIME_WAIT port is reused after the delay"
                + (f" (tcp_tw_reuse_delay={delay_ms})" if delay_ms else ""),
                f"{want:g}-{want + 0.3:g} s", f"{measured} s", ok,
                f"{first_reuse:.3f} s" if first_reuse is not None else "no reuse", agree))
    return checks


def tw_reuse_lb_no_timestamps(balancer: str = "nginx") -> list[Check]:
    with topology.lb(balancer=balancer) as lab:
        client, front = lab.hosts["client"], lab.hosts["lb"]
        client.sysctl("net.ipv4.ip_local_port_range", TWO_PORTS)
        client.sysctl("net.ipv4.tcp_tw_reuse", 1)
        got = probe(client, "reuse-delay", front.address, "80", "--fill", "2", "--limit", "4")
    predicted = sim("tw-reuse-lb-no-timestamps", ports=2, rate=50, duration=4)
    measured = got["reused_after_s"]
    return [Check(f"tcp_tw_reuse=1 against {balancer} with timestamps off: no reuse until TIME_WAIT ends",
                  "no reuse within 4 s", "none" if measured is None else f"reused after {measured} s",
                  measured is None and got["failures"].get("EADDRNOTAVAIL", 0) > 0,
                  f"{predicted['tw_reused']} reuses", predicted["tw_reused"] == 0 and measured is None)]


def fin_wall_lb(balancer: str) -> list[Check]:
    """--close fin through the load balancer, 20 ports, tcp_tw_reuse=1: the doctor says before the run that
    reuse will not help (no timestamps) and where the wall is; the run meets it at connection 21.

    tcp_tw_reuse lets a connect take a TIME_WAIT port only when that connection carried timestamps
    (net/ipv4/tcp_ipv4.c: tcp_twsk_unique tests tcptw->tw_ts_recent_stamp, Linux 6.x), and the load
    balancer's namespace has tcp_timestamps=0: every port waits out its 60 s."""
    with topology.lb(balancer=balancer) as lab:
        client = lab.hosts["client"]
        client.sysctl("net.ipv4.ip_local_port_range", NARROW)
        client.sysctl("net.ipv4.tcp_tw_reuse", 1)
        before = doctor(client, lab.url, "--close", "fin", "-c", "1", "--rate", "50")
        summary, _ = twload_run(client, lab.url, "-d", "3s", "-c", "1", "--close", "fin")
        client_tw = time_wait(client, dport=80)
    reuse, budget = finding(before, "tw_reuse"), finding(before, "port_budget")
    first = summary.get("first_errors", {}).get("EADDRNOTAVAIL", {}).get("connection")
    predicted = sim("tw-reuse-lb-no-timestamps", ports=20, rate=50, duration=3)
    return [
        Check(f"doctor through {balancer}, before the run: timestamps off, so tcp_tw_reuse=1 will not help and "
              "20 ports last 60 s", "timestamps false; tw_reuse and port_budget problems; ports reusable after 60 s",
              f"timestamps {str(before['target']['timestamps']).lower()}; tw_reuse {reuse['level']}, "
              f"port_budget {budget['level']}; reusable after {before['budget']['reuse_after_s']:g} s",
              before["target"]["timestamps"] is False and reuse["level"] == "problem"
              and "will not help" in reuse["message"] and budget["level"] == "problem"
              and before["budget"]["reuse_after_s"] == 60.0),
        Check(f"--close fin through {balancer} with tcp_tw_reuse=1: the wall at the port budget, nothing reused",
              "20 requests in 3 s, EADDRNOTAVAIL from #21 (the budget's #21), client TIME_WAIT 20",
              f"{summary['requests']} requests, first EADDRNOTAVAIL at #{first} (budget: "
              f"#{summary['budget']['exhausted_at_connection']}), client TIME_WAIT {client_tw}",
              summary["requests"] == 20 and first == 21 and summary["budget"]["exhausted_at_connection"] == 21
              and summary["target_timestamps"] is False and client_tw == 20,
              f"{predicted['tw_reused']} reuses", predicted["tw_reused"] == 0 and summary["requests"] == 20),
    ]


def tw_reuse_2_loopback() -> list[Check]:
    with topology.direct().lab as lab:
        client, server = lab.hosts["client"], lab.hosts["server"]
        local = lab.serve(Host(client.netns, "127.0.0.1"))  # before narrowing: it takes an ephemeral port
        client.sysctl("net.ipv4.ip_local_port_range", TWO_PORTS)
        client.sysctl("net.ipv4.tcp_tw_reuse", 2)
        on_lo = probe(client, "reuse-delay", "127.0.0.1", str(port_of(local)), "--fill", "2", "--limit", "4")
        remote = lab.serve(server)
        on_veth = probe(client, "reuse-delay", server.address, str(port_of(remote)), "--fill", "2", "--limit", "3")
    lo_s, veth_s = on_lo["reused_after_s"], on_veth["reused_after_s"]
    sim_lo = sim("tw-reuse", ports=2, rate=100, duration=3, tw_reuse=2, loopback="on")["tw_reused"]
    sim_veth = sim("tw-reuse", ports=2, rate=100, duration=3, tw_reuse=2, loopback="off")["tw_reused"]
    return [Check("tcp_tw_reuse=2 reuses TIME_WAIT ports on loopback only", "127.0.0.1: ~1 s; veth: none in 3 s",
                  f"127.0.0.1: {lo_s} s; veth: {veth_s}", lo_s is not None and lo_s < 1.5 and veth_s is None,
                  f"loopback reuses {sim_lo}, veth {sim_veth}", (sim_lo > 0) == (lo_s is not None)
                  and (sim_veth > 0) == (veth_s is not None))]


def server_close_lb(balancer: str = "nginx") -> list[Check]:
    with topology.lb(balancer=balancer) as lab:
        client, front = lab.hosts["client"], lab.hosts["lb"]
        before = doctor(client, lab.url, "--close", "server", "-c", "2", "--rate", "50")
        summary, _ = twload_run(client, lab.url, "-n", "50", "-c", "2", "--close", "server")
        time.sleep(0.3)
        client_tw = time_wait(client)
        lb_tw = time_wait(front, sport=80)
    said = finding(before, "server_close")
    predicted = sim("server-close", ports=1000, rate=50, duration=1)["time_wait_peak"]
    return [
        Check(f"doctor through {balancer}, before the run: the target closes first after Connection: close",
              "server_close ok", f"server_close {said['level']}: {said['message']}",
              before["target"]["server_closes_first"] is True and said["level"] == "ok"),
        Check(f"--close server through {balancer}: the client holds no TIME_WAIT; the load balancer does",
              "client 0, LB >= 50", f"client {client_tw}, LB {lb_tw} ({summary['requests']} requests)",
              client_tw == 0 and lb_tw >= 50 and summary["requests"] == 50,
              f"peaks {predicted}", "client1" not in predicted and predicted.get("server", 0) > 0),
    ]


def rst_close() -> list[Check]:
    with topology.direct().lab as lab:
        client, server = lab.hosts["client"], lab.hosts["server"]
        url = lab.serve(server)
        before = counters(server)
        summary, _ = twload_run(client, url, "-n", "50", "-c", "2", "--close", "rst")
        time.sleep(0.3)
        after = counters(server)
        tw = (time_wait(client), time_wait(server))
    resets = delta(before, after, "TcpEstabResets")
    predicted = sim("rst-close", ports=1000, rate=50, duration=1)["time_wait_peak"]
    return [
        Check("--close rst: nobody holds TIME_WAIT", "client 0, server 0", f"client {tw[0]}, server {tw[1]}",
              tw == (0, 0) and summary["requests"] == 50, f"peaks {predicted}", predicted == {} and tw == (0, 0)),
        Check("--close rst: the server sees each connection reset (ECONNRESET), not a clean EOF",
              "TcpEstabResets +50", f"TcpEstabResets +{resets}", resets >= 50),
    ]


def rst_close_lb(balancer: str) -> list[Check]:
    with topology.lb(balancer=balancer) as lab:
        client, front = lab.hosts["client"], lab.hosts["lb"]
        before = doctor(client, lab.url, "--close", "rst", "-c", "2", "--rate", "50")
        summary, _ = twload_run(client, lab.url, "-n", "50", "-c", "2", "--close", "rst")
        time.sleep(0.3)
        tw = (time_wait(client), time_wait(front, sport=80))
    said = finding(before, "port_budget")
    predicted = sim("rst-close", ports=1000, rate=50, duration=1)["time_wait_peak"]
    return [Check(f"doctor through {balancer}, before the run: --close rst leaves no TIME_WAIT, ports do not limit "
                  "the rate", "port_budget ok", f"port_budget {said['level']}: {said['message']}",
                  said["level"] == "ok" and "no TIME_WAIT" in said["message"]),
            Check(f"--close rst through {balancer}: no TIME_WAIT on the client or the load balancer's front",
                  "client 0, LB 0", f"client {tw[0]}, LB {tw[1]} ({summary['requests']} requests)",
                  tw == (0, 0) and summary["requests"] == 50, f"peaks {predicted}", predicted == {} and tw == (0, 0))]


def nat_timewait_collision() -> list[Check]:
    with topology.nat(2, (40000, 40001)) as lab:
        server = lab.hosts["server"]
        url = lab.serve(server)
        before = counters(server)
        procs = [lab.hosts[f"client{i}"].popen(
            sys.executable, "-m", "twload", "run", url, "-w", "1", "-c", "1", "-d", "6s", "--close", "server",
            "--connect-timeout", "2s", "--json", "--out", lab.scratch(f"nat-{i}"),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for i in (1, 2)]
        summaries = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
        after = counters(server)
    acked = delta(before, after, "TcpExtPAWSTimewait")
    timeouts = sum(s["errors"].get("connect_timeout", 0) for s in summaries)
    slowest = max(s["connect_us"]["max"] for s in summaries) / 1e6
    predicted = sim("nat-timewait-collision", clients=2, nat_ports=2, rate=2, duration=6, connect_timeout=2)
    sim_acked = predicted["syn_dropped"].get("PAWSTimewait", 0)
    return [Check("behind a NAT with 2 ports, a reused quintuple meets the server's TIME_WAIT: the SYN gets an "
                  "ACK, not a SYN-ACK, and the connect waits", "TcpExtPAWSTimewait > 0; connects delayed or timed out",
                  f"TcpExtPAWSTimewait +{acked}; {timeouts} connect timeouts; slowest connect {slowest:.2f} s",
                  acked > 0 and (timeouts > 0 or slowest >= 1.0),
                  f"{sim_acked} SYNs answered with ACK, {predicted['failed'].get('connect_timeout', 0)} timeouts",
                  (sim_acked > 0) == (acked > 0))]


def source_addresses() -> list[Check]:
    with topology.direct().lab as lab:
        client, server = lab.hosts["client"], lab.hosts["server"]
        client.sysctl("net.ipv4.ip_local_port_range", NARROW)
        client.sysctl("net.ipv4.tcp_tw_reuse", 0)
        extra = [client.address.rsplit(".", 1)[0] + f".{n}" for n in (11, 12)]
        for address in extra:
            lab.add_address(client.netns, address, like=client.address)
        one, _ = twload_run(client, lab.serve(server), "-n", "21", "-c", "1", "--close", "fin",
                            "--source", client.address)
        three, _ = twload_run(client, lab.serve(server), "-n", "60", "-c", "1", "--close", "fin",
                              "--source", ",".join([client.address, *extra]))
    first = one.get("first_errors", {}).get("EADDRNOTAVAIL", {}).get("connection")
    return [
        Check("one source address, 20 ports: the 21st connection within 60 s fails", "20 ok, #21 EADDRNOTAVAIL",
              f"{one['requests']} ok, first EADDRNOTAVAIL at #{first}", one["requests"] == 20 and first == 21),
        Check("each added source address adds a whole port range (--source, IP_BIND_ADDRESS_NO_PORT)",
              "3 addresses: 60 ok", f"{three['requests']} ok, {sum(three['errors'].values())} errors",
              three["requests"] == 60 and three["errors"] == {}),
    ]


def max_tw_buckets() -> list[Check]:
    with topology.direct().lab as lab:
        client, server = lab.hosts["client"], lab.hosts["server"]
        client.sysctl("net.ipv4.tcp_max_tw_buckets", 10)
        url = lab.serve(server)
        before = counters(client)
        summary, _ = twload_run(client, url, "-n", "30", "-c", "1", "--close", "fin")
        after = counters(client)
        tw = time_wait(client)
    overflow = delta(before, after, "TcpExtTCPTimeWaitOverflow")
    return [Check("tcp_max_tw_buckets=10: TIME_WAIT sockets beyond it are not kept", "10 kept, overflow +20",
                  f"{tw} kept, TcpExtTCPTimeWaitOverflow +{overflow}",
                  tw == 10 and overflow == 20 and summary["requests"] == 30)]


def dask_scale_out() -> list[Check]:
    from twload.lab import dask_scaleout  # imports dask only when asked

    return dask_scaleout.checks()


@dataclass(frozen=True)
class LabScenario:
    name: str
    summary: str
    run: Callable[[], list[Check]]
    seconds: int  # about how long it takes


SCENARIOS = {s.name: s for s in (
    LabScenario("time-wait-60s", "TIME_WAIT lasts 60 s on the side that closes first (measured)", time_wait_60s, 62),
    LabScenario("client-close-exhaustion", "20 ports, client closes: #21 fails; another port works",
                client_close_exhaustion, 3),
    LabScenario("tw-reuse", "tcp_tw_reuse=1 + timestamps: TIME_WAIT port reused after ~1 s (and the delay sysctl)",
                tw_reuse, 4),
    LabScenario("tw-reuse-lb-no-timestamps", "the same against a load balancer with timestamps off: no reuse",
                tw_reuse_lb_no_timestamps, 6),
    LabScenario("lb-haproxy-fin-wall", "HAProxy, timestamps off: doctor and run agree, the wall at #21, "
                "tcp_tw_reuse=1 no help", partial(fin_wall_lb, "haproxy"), 5),
    LabScenario("tw-reuse-2-loopback", "tcp_tw_reuse=2 applies to loopback only", tw_reuse_2_loopback, 8),
    LabScenario("server-close", "--close server through the lb: TIME_WAIT on the LB, none on the client",
                server_close_lb, 4),
    LabScenario("lb-haproxy-server-close", "--close server through HAProxy: TIME_WAIT on the LB, none on the client",
                partial(server_close_lb, "haproxy"), 3),
    LabScenario("rst-close", "--close rst: no TIME_WAIT anywhere; the server counts resets", rst_close, 3),
    LabScenario("lb-haproxy-rst-close", "--close rst through HAProxy: no TIME_WAIT on the client or the LB",
                partial(rst_close_lb, "haproxy"), 2),
    LabScenario("nat-timewait-collision", "NAT reuses a quintuple in the server's TIME_WAIT: ACK instead of SYN-ACK",
                nat_timewait_collision, 10),
    LabScenario("source-addresses", "each added source address adds a port range", source_addresses, 3),
    LabScenario("max-tw-buckets", "beyond tcp_max_tw_buckets TIME_WAIT sockets are not kept", max_tw_buckets, 3),
    LabScenario("fault-target-restart", "the target stops for 2 s mid-run: ECONNREFUSED counted with its window, "
                "the run goes on, counts match nginx's log", faults.target_restart, 9),
    LabScenario("fault-lossy-path", "5 % of TCP packets dropped (nftables): retransmits/s counted, the RTO tail",
                faults.lossy_path, 6),
    LabScenario("fault-full-accept-queue", "tiny backlog, slow accepter: SYNs dropped, slow connects counted "
                "and explained", faults.full_accept_queue, 5),
    LabScenario("fault-killed-worker", "a worker killed mid-run: named, the other's results kept, exit as documented",
                faults.killed_worker, 6),
    LabScenario("dask-scale-out", "2, then 3 Dask workers in their own namespaces: the port wall moves out",
                dask_scale_out, 60),
    LabScenario("http2-past-the-wall", "200 requests/s, 20 ports: --close fin fails with EADDRNOTAVAIL from #21; "
                "the same rate over HTTP/2 holds on a handful of ports (nginx h2c)", http2.http2_past_the_wall, 8),
)}


def run(name: str) -> list[Check]:
    return SCENARIOS[name].run()
