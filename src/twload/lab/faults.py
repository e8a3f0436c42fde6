"""Faults on the real kernel, in namespaces: what twload counts and says when the target restarts, the
path loses packets, the target's accept queue is full, or one of twload's own workers is killed.

Each scenario runs `twload run` in the client namespace in the background, does the fault to the
server side (or to a worker) while it runs, and checks the run's summary.json and samples.jsonl
against what the server side saw (nginx's access log, the namespace's counters).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from twload.lab import topology
from twload.lab.check import Check
from twload.lab.inside import counters, delta, doctor, finding, probe
from twload.lab.topology import Host, Lab, LabError

RUN_TIMEOUT_S = 60.0


class BackgroundRun:
    """`twload run URL --json --out FOLDER ...` in `host`, started now; a lab process (stopped by PID at
    the lab's close if it is still running)."""

    def __init__(self, lab: Lab, host: Host, url: str, *args: str) -> None:
        self.folder = Path(lab.scratch("run"))
        self.proc = lab.start(host, sys.executable, "-m", "twload", "run", url, "--json", "-q",
                              "--out", str(self.folder), *args,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def samples(self) -> list[dict]:
        try:
            text = (self.folder / "samples.jsonl").read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.endswith("}")]

    def wait_seconds(self, n: int) -> int:
        """Until the run has written n seconds of samples; the last second written."""
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while time.monotonic() < deadline and self.proc.poll() is None:
            lines = self.samples()
            if len(lines) >= n:
                return lines[-1]["t"]
            time.sleep(0.05)
        stderr = self.proc.stderr.read() if self.proc.stderr else ""
        raise LabError(f"twload run wrote fewer than {n} seconds of samples: {stderr[-400:]}")

    def finish(self) -> tuple[dict, int, list[dict]]:
        """Its summary (stdout), exit code and samples, once it has ended."""
        stdout, stderr = self.proc.communicate(timeout=RUN_TIMEOUT_S)
        if not stdout.strip():
            raise LabError(f"twload run printed no summary (exit {self.proc.returncode}): {stderr[-400:]}")
        return json.loads(stdout), self.proc.returncode, self.samples()


def static_nginx(lab: Lab, server: Host, client: Host) -> tuple[topology.NginxProcess, str]:
    """nginx answering 200 on server:80, logging every request; its URL."""
    target = topology.start_nginx(lab, server, f'listen {server.address}:80 backlog=4096; '
                                               'location / { return 200 "ok\\n"; }',
                                  http="access_log {workdir}/access.log;")
    topology.wait_listening(client, server.address, 80)
    return target, f"http://{server.address}/"


# -- the target stops for 2 s and comes back ---------------------------------------

RESTART_RATE, RESTART_S, OUTAGE_S = 200, 7, 2.0


def target_restart() -> list[Check]:
    with topology.direct().lab as lab:
        client, server = lab.hosts["client"], lab.hosts["server"]
        target, url = static_nginx(lab, server, client)
        run = BackgroundRun(lab, client, url, "-w", "1", "--rate", str(RESTART_RATE), "-d", f"{RESTART_S}s")
        stopped_after = run.wait_seconds(2)
        target.quit()  # graceful: what it read it answers and logs; then its port refuses (RST to a SYN)
        time.sleep(OUTAGE_S)
        target = topology.start_nginx(lab, server, "", again=target)
        topology.wait_listening(client, server.address, 80)
        summary, code, samples = run.finish()
        target.quit()
        logged = target.access_lines()
    refused = summary["errors"].get("ECONNREFUSED", 0)
    window = summary.get("errors_window", {}).get("ECONNREFUSED", {})
    first, last = window.get("first_t"), window.get("last_t")
    after = [s for s in samples if last is not None and s["t"] > last]
    results = summary["requests"] + sum(summary["errors"].values())
    planned = RESTART_RATE * RESTART_S
    return [
        Check("the target stops for 2 s mid-run: the refused connects are counted by name, with their window",
              f"ECONNREFUSED > 0, counted from second > {stopped_after} for 2-3 s (errors_window)",
              f"ECONNREFUSED {refused}, seconds {first}-{last} (first at "
              f"{summary.get('first_errors', {}).get('ECONNREFUSED', {}).get('at_s', '?')} s)",
              refused > 0 and first is not None and last is not None and first > stopped_after
              and 1 <= last - first + 1 <= 4),
        Check("after the target is back the run goes on: answers every second, no more errors, exit 0",
              "each second after the window: answers > 0, no errors; exit 0",
              f"{len(after)} seconds after it: answers {[s['requests'] for s in after]}, "
              f"errors {sum(sum(s['errors'].values()) for s in after)}; exit {code}",
              len(after) >= 2 and all(s["requests"] > 0 and not s["errors"] for s in after) and code == 0),
        Check("the counts are exact: every answer twload counted is a line in nginx's access log, and every "
              "request scheduled has one result", f"answers == access log lines; answers + errors == {planned}",
              f"answers {summary['requests']}, access log {logged}; answers + errors {results}",
              summary["requests"] == logged == summary["status"].get("200", 0) and results == planned),
    ]


# -- a lossy path ------------------------------------------------------------------

LOSS_PERCENT = 5
# numgen random mod 100 < 5: nftables draws a number in 0..99 per packet (this kernel has no netem
# qdisc). In prerouting of both namespaces: each side loses 5 % of what arrives, so both directions
# of the path lose packets, and nothing is dropped on its way out: a drop in an output hook is an error
# returned to the sender's own transmit (net/netfilter/core.c: nf_hook_slow returns -EPERM for NF_DROP,
# up through ip_local_out to tcp_transmit_skb, Linux 6.x), which TCP handles differently from a loss
# on the wire (the segment is not counted as sent, so it is not retransmitted either).
LOSS_RULES = f"""table ip {topology.PREFIX}loss {{
  chain in {{
    type filter hook prerouting priority 0; policy accept;
    meta l4proto tcp numgen random mod 100 < {LOSS_PERCENT} drop
  }}
}}
"""
# include/net/tcp.h: TCP_RTO_MIN (HZ / 5): a lost segment that no duplicate ACK reveals waits at
# least 200 ms for its retransmission; a lost SYN waits TCP_TIMEOUT_INIT (1 s).
RTO_MIN_US = 200_000


def lossy_path() -> list[Check]:
    with topology.direct().lab as lab:
        client, server = lab.hosts["client"], lab.hosts["server"]
        url = lab.serve(server)
        for host in (client, server):
            proc = host.run("nft", "-f", "-", input=LOSS_RULES)
            if proc.returncode != 0:
                raise LabError(f"nft failed in {host.netns}: {proc.stderr.strip()}")
        before = counters(client)
        run = BackgroundRun(lab, client, url, "-w", "1", "-c", "4", "-d", "3s")
        summary, code, samples = run.finish()
        lab_counted = delta(before, counters(client), "TcpRetransSegs")
    in_samples = sum(s.get("retransmits", 0) for s in samples)
    retrans = summary.get("retransmits", 0)
    tail = summary["latency_us"]["max"]
    return [
        Check(f"{LOSS_PERCENT} % of TCP packets dropped on the path: retransmissions counted each second "
              "(samples.jsonl `retransmits`) and in the summary",
              "retransmits > 0; samples' sum == summary; <= the client namespace's RetransSegs (which also "
              "holds the pre-flight probe's and the last closes')",
              f"summary {retrans} ({summary.get('retransmits_per_s')} retransmits/s, peak "
              f"{summary.get('retransmits_peak_per_s')}/s); samples {in_samples}; namespace +{lab_counted}",
              0 < retrans == in_samples <= lab_counted and "retransmits" in samples[0]),
        Check("the latency shows the retransmission timeout's tail", "max latency >= 200 ms (TCP_RTO_MIN)",
              f"max {tail / 1000:.0f} ms, p99 {summary['latency_us']['p99'] / 1000:.1f} ms, "
              f"{summary['requests']} answers; exit {code}",
              tail >= RTO_MIN_US and summary["requests"] > 0 and code == 0),
    ]


# -- a full accept queue -----------------------------------------------------------

BACKLOG, ACCEPT_EVERY_S, SYN_RATE = 1, 0.1, 40
# An accept queue holds backlog + 1 connections (include/net/sock.h: sk_acceptq_is_full, ">"); while it
# is full the listener drops each SYN (net/ipv4/tcp_input.c: tcp_conn_request, LINUX_MIB_LISTENOVERFLOWS
# then tcp_listendrop, Linux 6.x), and the client sends its SYN again after 1 s. Opening connections
# faster than the application accepts them (an open loop, --close server: a new connection per request)
# keeps the queue full when new SYNs come; a closed loop would not: its few connections complete their
# handshake while the queue has room, and a full queue then drops their final ACK instead (an overflow
# too, but the client's connect has completed).


def full_accept_queue() -> list[Check]:
    with topology.direct().lab as lab:
        client, server = lab.hosts["client"], lab.hosts["server"]
        # it accepts nothing until a SYN was dropped: the doctor's first, once the queue is filled below
        listener = lab.start(server, sys.executable, "-m", "twload.lab.probes", "slow-accept", server.address,
                             "8080", "--backlog", str(BACKLOG), "--every", str(ACCEPT_EVERY_S), "--limit", "30",
                             "--start-after-drops", "1",
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if "listening on" not in (listener.stdout.readline() if listener.stdout else ""):
            raise LabError(f"the slow accepter did not start in {server.netns}")
        url = f"http://{server.address}:8080/"
        probe(client, "connect", server.address, "8080", "--count", str(BACKLOG + 1))  # the queue is full now
        before = counters(server)
        said = doctor(client, url, "--close", "server", "-c", "1")
        run = BackgroundRun(lab, client, url, "-w", "1", "--rate", str(SYN_RATE), "-d", "3s",
                            "--close", "server")
        summary, code, _ = run.finish()
        after = counters(server)
        listener.send_signal(signal.SIGTERM)
    overflows = delta(before, after, "TcpExtListenOverflows")
    drops = delta(before, after, "TcpExtListenDrops")
    slow = summary.get("slow_connects", {})
    warned = finding(said, "slow_connect")
    connect_s = (said.get("target") or {}).get("connect_s")
    return [
        Check("doctor against a full accept queue (filled, its application not accepting until a SYN is "
              "dropped): its connect waits for the SYN to go again, and it says why",
              "connect >= 1 s; slow_connect warning naming the accept queue",
              f"connect {connect_s} s; slow_connect {warned['level']}: {warned['message'][:90]}...",
              connect_s is not None and connect_s >= 1.0 and warned["level"] == "warning"
              and "accept queue" in warned["message"]),
        Check(f"a run against it (backlog {BACKLOG}, one accept every {ACCEPT_EVERY_S:g} s, {SYN_RATE} new "
              "connections/s): SYNs dropped, connects that waited for the SYN to go again counted and explained",
              "server ListenOverflows > 0; slow_connects > 0 with its reason; slowest connect >= 1 s",
              f"server ListenOverflows +{overflows}, ListenDrops +{drops}; slow_connects {slow.get('count', 0)}; "
              f"slowest connect {summary['connect_us']['max'] / 1e6:.2f} s; {summary['requests']} answers",
              overflows > 0 and 0 < slow.get("count", 0) <= summary["connections_opened"]
              and "accept queue" in slow.get("why", "")
              and summary["connect_us"]["max"] >= 1_000_000 and summary["requests"] > 0),
    ]


# -- a worker killed mid-run -------------------------------------------------------

def worker_pids(run_pid: int) -> list[int]:
    """The run's worker processes: its children started by multiprocessing's spawn (the resource
    tracker, also a child, is not one), oldest first (worker 0 is started first)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == run_pid and b"spawn_main" in cmdline:
            found.append(int(entry))
    return sorted(found)


def killed_worker() -> list[Check]:
    with topology.direct().lab as lab:
        client, server = lab.hosts["client"], lab.hosts["server"]
        url = lab.serve(server)
        # an open loop: the other worker's seconds are its share of the rate, and the lab's CPU stays free
        run = BackgroundRun(lab, client, url, "-w", "2", "--rate", "1000", "-d", "4s")
        killed_at = run.wait_seconds(1)
        workers = worker_pids(run.proc.pid)  # `ip netns exec` execs python: the Popen's PID is twload's
        if len(workers) != 2:
            raise LabError(f"expected 2 worker processes of twload run, found {workers}")
        os.kill(workers[1], signal.SIGKILL)
        summary, code, samples = run.finish()
    failures = summary.get("worker_failures", [])
    after = [s for s in samples if s["t"] > killed_at + 1]
    return [
        Check("a worker killed mid-run: named in the summary; the other's seconds go on",
              "worker_failures names worker 1 (SIGKILL); answers every second after the kill",
              f"worker_failures {failures}; answers after it {[s['requests'] for s in after]}",
              any(f.startswith("worker 1 ") and "SIGKILL" in f for f in failures) and len(failures) == 1
              and len(after) >= 2 and all(s["requests"] > 0 for s in after)),
        Check("what both workers reported is kept, and the exit code is as documented (docs/ARCHITECTURE.md "
              "\"Exit codes\": a lost worker is exit 3)",
              "summary answers == the samples' sum; exit 3",
              f"summary {summary['requests']}, samples {sum(s['requests'] for s in samples)}; exit {code}",
              summary["requests"] == sum(s["requests"] for s in samples) > 0 and code == 3),
    ]
