"""Many keep-alive connections at once over worker processes and --source addresses (issue #13 "Scale",
count-based; benchmarks/many_connections.py measures 100,000 and the memory per connection)."""

import os
import resource
from contextlib import contextmanager

import pytest

from tests.integration.backends import BACKENDS
from twload.engine.supervisor import run_to_folder
from twload.kernel.resolve import parse_target
from twload.plan import Plan

CONNECTIONS = 20_000


@contextmanager
def client_on_one_cpu():
    """The client's worker processes (spawned, so they inherit this affinity) share one CPU while the
    server's stay free, so each connection's segments are processed on a single CPU.

    Why: a segment looked up while another CPU replaces the connection's request sock by its child
    can find neither and fall back to the listener, which answers it with a RST (net/ipv4/tcp_input.c:
    tcp_rcv_state_process, TCP_LISTEN with ACK, reason TCP_FLAGS). Kernels without "inet: Avoid ehash
    lookup race in inet_ehash_insert()" (Xuanqiang Luo, net-next Oct 2025, then stable) delete the
    request sock from the ehash chain before adding the child (net/ipv4/inet_hashtables.c:
    inet_ehash_insert), so a lockless lookup (__inet_lookup_established) can miss both. Over loopback a
    segment is processed on the CPU that sent it (net/core/dev.c: netif_rx -> enqueue_to_backlog, RPS
    off), so when a client worker moves between CPUs from its connect to its send, the handshake's
    ACK (sent while its old CPU processes the SYN-ACK) and the request run on two CPUs at once. Seen on
    this host's 6.18.44 kernel: in 1 run in 6 of the CI sequence one of the 20,000 requests got the
    listener's RST (perf: tcp:tcp_send_reset from the LISTEN socket, TCP_FLAGS, inside the client's
    send) while the server accepted that connection's child and answered it 0.5 s later."""
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


@pytest.mark.parametrize("io", BACKENDS)
@pytest.mark.skipif(resource.getrlimit(resource.RLIMIT_NOFILE)[1] < CONNECTIONS // 2 + 200,
                    reason="two worker processes cannot hold 20,000 sockets under this file limit")
def test_twenty_thousand_connections_over_two_workers_are_each_answered(twload_server, tmp_path, io):
    """Each of 20,000 connections (two client and two server processes, two source addresses) carries one
    request and gets its response: the connect storm is absorbed (listen backlog, SYN retries within
    the connect timeout), and no connection is left unanswered by the server's file limit."""
    server = twload_server("-w", "2")
    url = server.url
    plan = Plan(target=parse_target(url), url=url, engine="core", io=io, workers=2, connections=CONNECTIONS,
                requests=CONNECTIONS, duration_s=None, sources=("127.0.0.2", "127.0.0.3"),
                timeout_s=25.0, connect_timeout_s=25.0)
    with client_on_one_cpu():
        summary = run_to_folder(plan, tmp_path / "run")
    assert summary["errors"] == {}
    assert summary["connections_opened"] == CONNECTIONS
    assert summary["requests"] == CONNECTIONS
    assert server.stop() == CONNECTIONS  # the server's own count
