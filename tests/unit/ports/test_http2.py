"""ports/http2.py: the port-wall arithmetic of an HTTP/2 run."""

from twload.kernel.resolve import parse_target
from twload.plan import Plan
from twload.ports.http2 import Http1PortsWindow, http1_ports_needed, sample_keys, summary_keys


def plan(url="http://127.0.0.1:8080/a?b=1", **kw):
    return Plan(target=parse_target(url), url=url, http2=True, **kw)


def test_http1_ports_needed_is_every_request_within_a_time_wait_and_the_rate_times_60s_beyond():
    assert http1_ports_needed(1000, 10.0) == 1000  # all of them still in TIME_WAIT at the end
    assert http1_ports_needed(600_000, 600.0) == 60_000  # 1000/s held 60 s each
    assert http1_ports_needed(0, 1.0) == 0


def test_summary_keys_say_the_cap_only_when_the_server_set_one():
    assert summary_keys(plan(streams=10), 100, 1.0, 0) == {"http2": True, "streams": 10, "http1_ports_needed": 100}
    assert summary_keys(plan(streams=10), 100, 1.0, 1)["h2_server_max_streams"] == 1


def test_the_rows_ports_are_the_requests_still_within_a_time_wait():
    window = Http1PortsWindow()
    assert [window.add(t, 100) for t in (1, 2, 3)] == [100, 200, 300]
    for t in range(4, 61):
        window.add(t, 100)
    assert window.add(61, 100) == 6000  # seconds 2..61: the first second's ports are free again
    assert window.add(62, 0) == 5900


def test_sample_keys_carry_the_streams_the_connections_and_the_cap_once_there_is_one():
    keys = sample_keys(plan(streams=8), 0, 3, 20, 500)
    assert keys == {"streams": 8, "connections_open": 3, "streams_open": 20, "http1_ports_needed": 500}
    assert sample_keys(plan(streams=8), 2, 3, 6, 500)["h2_server_max_streams"] == 2
