"""HTTP/2 past the port wall (issue #31): at a rate where `--close fin` over HTTP/1.1 runs out of
ephemeral ports (EADDRNOTAVAIL from the range's first connection past its end), the same rate with
`--http2` is carried by a handful of connections, so the same 20 ports hold it.

One nginx in the server namespace serves both runs: HTTP/1.1 on port 80, h2c with prior knowledge
on port 8080 (nginx 1.22's `listen ... http2` without ssl speaks HTTP/2 alone there). Two
destination ports, so the HTTP/1.1 run's TIME_WAIT does not take the HTTP/2 run's ports: a port is
taken per 4-tuple (net/ipv4/inet_hashtables.c: __inet_hash_connect checks each candidate port
against the destination address and port, Linux 6.x), which `client-close-exhaustion` shows too.
nginx logs each request with its port and protocol, so each run's count is held against its own.
"""

from __future__ import annotations

from twload.lab import topology
from twload.lab.check import Check
from twload.lab.inside import sim, time_wait, twload_run
from twload.lab.topology import Host, Lab

PORTS = "40000 40019"  # 20 ephemeral ports (the other wall scenarios' range)
RANGE_SIZE = 20
RATE, SECONDS = 200, 3  # 200 new connections/s against 20 ports / 60 s: the wall in 0.1 s
PLANNED = RATE * SECONDS
STREAMS = 10  # --streams: concurrent requests a connection
# --max-connections of the HTTP/2 run: the rate needs one connection, and the open loop opens another only
# while every stream of those open is busy, which a stall of the shared machine could make for a moment
HANDFUL = 4
H1_PORT, H2_PORT = 80, 8080
# one line a request: port, protocol, status (nginx's log variables)
LOG_FORMAT = "log_format lab '$server_port $server_protocol $status'; access_log {workdir}/access.log lab;"


def start_server(lab: Lab, server: Host, client: Host) -> topology.NginxProcess:
    """nginx answering 200 "ok" on :80 (HTTP/1.1) and :8080 (h2c), logging port and protocol."""
    target = topology.start_nginx(
        lab, server,
        f"listen {server.address}:{H1_PORT} backlog=4096; listen {server.address}:{H2_PORT} backlog=4096 http2; "
        'location / { return 200 "ok\\n"; }',
        http=LOG_FORMAT)
    for port in (H1_PORT, H2_PORT):
        topology.wait_listening(client, server.address, port)
    return target


def logged(target: topology.NginxProcess) -> dict[tuple[str, str], int]:
    """nginx's access log as counts by (port, protocol); read once nginx has quit (each line written)."""
    counts: dict[tuple[str, str], int] = {}
    try:
        with open(target.access_log) as fh:
            for line in fh:
                port, protocol, _ = line.split()
                counts[port, protocol] = counts.get((port, protocol), 0) + 1
    except FileNotFoundError:
        pass
    return counts


def http2_past_the_wall() -> list[Check]:
    with topology.direct().lab as lab:
        client, server = lab.hosts["client"], lab.hosts["server"]
        client.sysctl("net.ipv4.ip_local_port_range", PORTS)
        client.sysctl("net.ipv4.tcp_tw_reuse", 0)
        target = start_server(lab, server, client)  # before any run: the probes leave no TIME_WAIT
        load = ("--rate", str(RATE), "-d", f"{SECONDS}s", "--close", "fin")
        fin, _ = twload_run(client, f"http://{server.address}:{H1_PORT}/", *load)
        h2, _ = twload_run(client, f"http://{server.address}:{H2_PORT}/", *load, "--http2", "--streams", str(STREAMS),
                           "--max-connections", str(HANDFUL))
        h2_tw = time_wait(client, dport=H2_PORT)
        target.quit()
        counts = logged(target)
    first = fin.get("first_errors", {}).get("EADDRNOTAVAIL", {}).get("connection")
    fin_results = fin["requests"] + sum(fin["errors"].values())
    h2_results = h2["requests"] + sum(h2["errors"].values())
    h1_logged, h2_logged = counts.get((str(H1_PORT), "HTTP/1.1"), 0), counts.get((str(H2_PORT), "HTTP/2.0"), 0)
    predicted = sim("client-close-exhaustion", ports=RANGE_SIZE, rate=RATE, duration=SECONDS)
    return [
        Check(f"--close fin at {RATE} requests/s over HTTP/1.1, {RANGE_SIZE} ports: the wall",
              f"{RANGE_SIZE} answers, then EADDRNOTAVAIL from connection #{RANGE_SIZE + 1}; "
              f"answers + errors == {PLANNED}",
              f"{fin['requests']} answers, first EADDRNOTAVAIL at #{first} ({fin['errors'].get('EADDRNOTAVAIL', 0)} "
              f"of them); answers + errors {fin_results}",
              fin["requests"] == RANGE_SIZE and first == RANGE_SIZE + 1 and fin_results == PLANNED,
              f"{predicted['established']} connections before the first failure",
              predicted["established"] == fin["requests"]),
        Check(f"the same rate over HTTP/2 (h2c, --close fin, --streams {STREAMS}, --max-connections {HANDFUL}) on the "
              f"same {RANGE_SIZE} ports: every request answered on a handful of connections",
              f"{PLANNED} answers, no errors; 1-{HANDFUL} connections opened, no more left in TIME_WAIT, "
              f"where HTTP/1.1 would hold one port a request (summary: http1_ports_needed > {RANGE_SIZE})",
              f"{h2['requests']} answers, errors {h2['errors'] or 'none'}; {h2['connections_opened']} connections, "
              f"client TIME_WAIT {h2_tw}; http1_ports_needed {h2.get('http1_ports_needed')}",
              h2["requests"] == PLANNED == h2_results and not h2["errors"]
              and 1 <= h2["connections_opened"] <= HANDFUL and h2_tw <= h2["connections_opened"]
              and h2.get("http2") is True and h2.get("http1_ports_needed", 0) > RANGE_SIZE),
        Check("the counts are exact: each run's answers are lines in nginx's access log, by port and protocol",
              f"HTTP/1.1 on :{H1_PORT} == the fin run's answers; HTTP/2.0 on :{H2_PORT} == the HTTP/2 run's",
              f"HTTP/1.1 {h1_logged} (answers {fin['requests']}), HTTP/2.0 {h2_logged} (answers {h2['requests']}); "
              f"all lines {sum(counts.values())}",
              h1_logged == fin["requests"] and h2_logged == h2["requests"] and sum(counts.values()) == h1_logged
              + h2_logged),
    ]
