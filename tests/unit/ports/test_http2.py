"""ports/http2.py: the port-wall arithmetic of an HTTP/2 run."""

from twload.kernel.resolve import parse_target
from twload.plan import Plan
from twload.ports.http2 import http1_ports_needed, summary_keys


def plan(url="http://127.0.0.1:8080/a?b=1", **kw):
    return Plan(target=parse_target(url), url=url, http2=True, **kw)


def test_http1_ports_needed_is_every_request_within_a_time_wait_and_the_rate_times_60s_beyond():
    assert http1_ports_needed(1000, 10.0) == 1000  # all of them still in TIME_WAIT at the end
    assert http1_ports_needed(600_000, 600.0) == 60_000  # 1000/s held 60 s each
    assert http1_ports_needed(0, 1.0) == 0


def test_summary_keys_say_the_cap_only_when_the_server_set_one():
    assert summary_keys(plan(streams=10), 100, 1.0, 0) == {"http2": True, "streams": 10, "http1_ports_needed": 100}
    assert summary_keys(plan(streams=10), 100, 1.0, 1)["h2_server_max_streams"] == 1
