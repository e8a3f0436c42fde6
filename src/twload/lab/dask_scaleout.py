"""Lab: real scale-out over Dask workers, each in its own client namespace with its own address.

    c1 (10.250.1.2) ─┐
    c2 (10.250.2.2) ─┼─ s: twload serve, the Dask scheduler and `twload run --scheduler` (10.250.1.1)
    c3 (10.250.3.2) ─┘

Each client namespace keeps 100 ephemeral ports (ip_local_port_range 40000-40099) and
tcp_tw_reuse=0, and the run closes client-first (--close fin): every connection leaves
its port in TIME_WAIT for 60 s (include/net/tcp.h: TCP_TIMEWAIT_LEN, Linux 6.x), so a
worker opens exactly 100 connections to the target within one TIME_WAIT period and its
sustainable rate is 100 ports / 60 s. Two workers, then three: the connections that
fit (and so the sustainable rate) grow with the workers as the port budget predicts,
and the summary's per-worker breakdown shows where each worker hit its wall.
"""

from __future__ import annotations

import json
import subprocess
import sys

from twload.lab import topology
from twload.lab.check import Check
from twload.lab.topology import Host, LabError

PORT_RANGE = "40000 40099"
PORTS = 100
SCHEDULER_PORT = 8786
# Fixed ports outside the narrow range: a listening socket's port is one less for connect() (the worker's
# HTTP server for /health and /metrics listens even with --no-dashboard, on a random port unless told).
WORKER_PORT = 9000
WORKER_HTTP_PORT = 9001
CONNECTIONS_PER_WORKER = 1  # one slot: the first failure is exactly connection #101
WAIT_S = 90.0  # Dask processes starting on a busy host


def start_worker(lab: topology.Lab, host: Host, scheduler: str) -> None:
    lab.start(host, sys.executable, "-m", "dask", "worker", scheduler, "--host", host.address,
              "--worker-port", str(WORKER_PORT), "--dashboard-address", f"{host.address}:{WORKER_HTTP_PORT}",
              "--nthreads", "1", "--no-nanny", "--no-dashboard",
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# Fixed code run as `python -c CODE ARGS...`: the values come in as argv, never formatted into the code.
WAIT_FOR_WORKERS = """
import sys
from distributed import Client
scheduler, count, wait_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
with Client(scheduler, timeout=wait_s) as c:
    c.wait_for_workers(count, timeout=wait_s)
"""
STATS_REQUESTS = """
import json, sys, urllib.request
print(json.load(urllib.request.urlopen(sys.argv[1]))["requests"])
"""


def wait_for_workers(host: Host, scheduler: str, count: int) -> None:
    proc = host.run(sys.executable, "-c", WAIT_FOR_WORKERS, scheduler, str(count), str(WAIT_S), timeout=2 * WAIT_S)
    if proc.returncode != 0:
        raise LabError(f"{count} Dask workers did not join {scheduler}: {proc.stderr.strip()[-300:]}")


def distributed_run(host: Host, scheduler: str, url: str, workers: int) -> dict:
    out = topology.scratch(host, "dask")
    # The scheduler listens on an address of the lab's own namespaces, a network nothing else can
    # reach, so its plain tcp:// is allowed by name.
    proc = host.run(sys.executable, "-m", "twload", "run", url, "--scheduler", scheduler, "--allow-insecure-scheduler",
                    "--close", "fin",
                    "-c", str(CONNECTIONS_PER_WORKER * workers), "-d", "3s", "--json", "--out", out, timeout=300)
    if not proc.stdout.strip():
        raise LabError(f"twload run --scheduler failed in {host.netns}: {proc.stderr.strip()[-400:]}")
    return json.loads(proc.stdout)


def build(lab: topology.Lab) -> tuple[Host, list[Host]]:
    server_ns = lab.namespace("s")
    server, clients = None, []
    for i in range(1, 4):
        name = lab.namespace(f"c{i}")
        gateway, address = lab.link(server_ns, name)
        server = server or lab.host("server", server_ns, gateway)
        lab.default_route(name, gateway)  # the other links' addresses of s, the target's included
        client = lab.host(f"client{i}", name, address)
        client.sysctl("net.ipv4.ip_local_port_range", PORT_RANGE)
        client.sysctl("net.ipv4.tcp_tw_reuse", 0)
        clients.append(client)
    assert server is not None
    return server, clients


def scale_out() -> tuple[dict, dict, list[str], list[int]]:
    """The 2-worker and 3-worker runs' summaries, the client addresses, the target's own counts."""
    with topology.Lab() as lab:
        server, clients = build(lab)
        scheduler = f"tcp://{server.address}:{SCHEDULER_PORT}"
        lab.start(server, sys.executable, "-m", "dask", "scheduler", "--host", server.address,
                  "--port", str(SCHEDULER_PORT), "--no-dashboard",
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        summaries, served, started = [], [], 0
        for count in (2, 3):  # a new target port for each run: the 2-worker run's TIME_WAIT does not touch it
            for client in clients[started:count]:
                start_worker(lab, client, scheduler)
            started = count
            wait_for_workers(server, scheduler, count)
            url = lab.serve(server)
            summaries.append(distributed_run(server, scheduler, url, count))
            served.append(stats_requests(server, url))
        return summaries[0], summaries[1], [c.address for c in clients], served


def stats_requests(host: Host, url: str) -> int:
    proc = host.run(sys.executable, "-c", STATS_REQUESTS, url.rstrip("/") + "/__twload/stats")
    return int(proc.stdout.strip() or -1)


def checks() -> list[Check]:
    two, three, addresses, served = scale_out()
    result = []
    for summary, count, target_count in ((two, 2, served[0]), (three, 3, served[1])):
        detail = summary["workers_detail"]
        own = sorted(a for w in detail for a in w["sources"])
        result.append(Check(
            f"{count} Dask workers, each in its own namespace, connect from their own address",
            ", ".join(addresses[:count]), ", ".join(own),
            own == sorted(addresses[:count]) and len({w["preflight"]["netns"] for w in detail}) == count))
        walls = [w.get("first_errors", {}).get("EADDRNOTAVAIL", {}).get("connection") for w in detail]
        result.append(Check(
            f"{count} workers x {PORTS} ports, client closes: each opens {PORTS} connections, then hits its wall",
            f"{count} x {PORTS} ok, each worker's first EADDRNOTAVAIL at #{PORTS + 1}; server saw {count * PORTS}",
            f"{[w['requests'] for w in detail]} ok, walls at {walls}; server saw {target_count}",
            all(w["requests"] == PORTS for w in detail) and walls == [PORTS + 1] * count
            and summary["requests"] == target_count == count * PORTS))
        peaks = [w.get("time_wait_peak") for w in detail]
        result.append(Check(
            "each worker's own TIME_WAIT peak is its whole port range", f"{[PORTS] * count}", f"{peaks}",
            peaks == [PORTS] * count))
    per_worker = (PORTS - CONNECTIONS_PER_WORKER) / 60.0
    predicted = [s["budget"]["sustainable_new_conn_per_s"] for s in (two, three)]
    measured = [s["requests"] / 60.0 for s in (two, three)]  # what fits in one TIME_WAIT period, per second
    result.append(Check(
        "the sustainable new-connection rate grows with the workers as the merged port budget predicts",
        f"budget {2 * per_worker:.2f} -> {3 * per_worker:.2f}/s (x1.5)",
        f"budget {predicted[0]:.2f} -> {predicted[1]:.2f}/s; connections per 60 s {measured[0] * 60:.0f} -> "
        f"{measured[1] * 60:.0f} (x{measured[1] / measured[0]:.2f})",
        abs(predicted[0] - 2 * per_worker) < 0.01 and abs(predicted[1] - 3 * per_worker) < 0.01
        and three["requests"] * 2 == two["requests"] * 3))
    wall = next((line for line in three.get("advice", []) if "the wall is at" in line), "")
    result.append(Check("the run's advice merges the workers' budgets", "3 workers x 100 ports: the wall is at 5 …",
                        wall or "no such line", wall.startswith("3 workers x 100 ports: the wall is at 5 ")))
    return result
