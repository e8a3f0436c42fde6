"""Many keep-alive connections at once over worker processes and --source addresses (issue #13 "Scale",
count-based; benchmarks/many_connections.py measures 100,000 and the memory per connection)."""

import resource

import pytest

from tests.integration.backends import BACKENDS
from twload.engine.supervisor import run_to_folder
from twload.plan import Plan, parse_target

CONNECTIONS = 20_000


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
    summary = run_to_folder(plan, tmp_path / "run")
    assert summary["errors"] == {}
    assert summary["connections_opened"] == CONNECTIONS
    assert summary["requests"] == CONNECTIONS
    assert server.stop() == CONNECTIONS  # the server's own count
