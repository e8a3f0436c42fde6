"""Who holds TIME_WAIT after each close strategy, measured on the real kernel over loopback.

Each test gets its own `twload serve` port, so TIME_WAIT sockets left by other tests
(they last 60 s) cannot be counted here.
"""

import time

import pytest

from tests.conftest import time_wait_until
from twload.engine.core.worker import DRAIN_S
from twload.engine.supervisor import run_to_folder
from twload.kernel.resolve import parse_target
from twload.plan import Plan
from twload.results import read_samples, read_summary


def run(url, tmp_path, **kw):
    plan = Plan(target=parse_target(url), url=url, workers=kw.pop("workers", 1), **kw)
    summary = run_to_folder(plan, tmp_path / "run")
    time.sleep(0.3)  # let the closing handshakes settle into their final states
    return summary


N = 300


@pytest.mark.parametrize("workers", [1, 2])
def test_fin_leaves_time_wait_on_the_client(twload_server, tmp_path, workers):
    server = twload_server()
    summary = run(server.url, tmp_path, close="fin", requests=N, duration_s=None, connections=4,
                  workers=workers)
    tw = time_wait_until(server.port, lambda tw: tw == {"client": N, "server": 0})
    assert summary["requests"] == N and summary["errors"] == {}
    assert summary["connections_opened"] == N
    assert tw == {"client": N, "server": 0}
    assert server.stop() == N


def test_server_close_leaves_time_wait_on_the_server_only(twload_server, tmp_path):
    server = twload_server()
    summary = run(server.url, tmp_path, close="server", requests=N, duration_s=None, connections=4)
    tw = time_wait_until(server.port, lambda tw: tw == {"client": 0, "server": N})
    assert summary["requests"] == N and summary["errors"] == {}
    assert tw == {"client": 0, "server": N}
    assert server.stop() == N


def test_rst_leaves_no_time_wait(twload_server, tmp_path):
    server = twload_server()
    summary = run(server.url, tmp_path, close="rst", requests=N, duration_s=None, connections=4)
    tw = time_wait_until(server.port, lambda tw: tw == {"client": 0, "server": 0})
    assert summary["requests"] == N and summary["errors"] == {}
    assert tw == {"client": 0, "server": 0}
    assert server.stop() == N


def test_keepalive_only_the_opened_connections(twload_server, tmp_path):
    server = twload_server()
    summary = run(server.url, tmp_path, close="keepalive", requests=2000, duration_s=None, connections=7)
    tw = time_wait_until(server.port, lambda tw: tw == {"client": 7, "server": 0})
    assert summary["requests"] == 2000 and summary["errors"] == {}
    assert summary["connections_opened"] == 7
    assert tw == {"client": 7, "server": 0}
    assert server.stop() == 2000


def test_keepalive_reconnects_when_the_server_closes(twload_server, tmp_path):
    server = twload_server("--close-after", "10")
    summary = run(server.url, tmp_path, close="keepalive", requests=500, duration_s=None, connections=5)
    assert summary["requests"] == 500 and summary["errors"] == {}
    # At most 10 requests per connection, then the server closes; when the budget runs out
    # mid-connection (at most one per slot) the client closes that one itself.
    opened = summary["connections_opened"]
    assert 50 <= opened <= 55
    tw = time_wait_until(server.port, lambda tw: tw["server"] + tw["client"] == opened)
    assert tw["server"] >= 50 - 5 and tw["client"] <= 5
    assert tw["server"] + tw["client"] == opened
    assert server.stop() == 500


def test_duration_run_streams_samples_and_matches_server_count(twload_server, tmp_path):
    server = twload_server("--workers", "2")
    summary = run(server.url, tmp_path, close="keepalive", duration_s=2.0, connections=10, workers=2)
    served = server.stop()
    samples = read_samples(tmp_path / "run")
    assert read_summary(tmp_path / "run")["requests"] == summary["requests"]
    assert [s["t"] for s in samples] == list(range(1, len(samples) + 1))
    assert 2 <= len(samples) <= 3
    assert sum(s["requests"] for s in samples) == summary["requests"]
    # requests still in flight at the deadline drain within the grace: nothing is lost or double counted
    assert summary["requests"] == served
    # the workers ran for the duration, and stopped: the drain after it is bounded (2 x DRAIN_S),
    # with room for a loaded machine
    assert 1.9 < summary["duration_s"] < 2.0 + 2 * DRAIN_S + 4.0
    for key in ("p50", "p75", "p90", "p99", "p99_9", "max", "mean"):
        assert key in summary["latency_us"] and key in summary["connect_us"]
    assert summary["latency_us"]["p50"] <= summary["latency_us"]["p99"] <= summary["latency_us"]["max"]
