"""The text summary (report/text.py): the cause first, nothing made of zeros, within 80 columns."""

from twload.report.text import render

ZERO = {"p50": 0, "p90": 0, "p99": 0, "p99_9": 0, "max": 0, "mean": 0.0}
SOME = {"p50": 120, "p90": 300, "p99": 900, "p99_9": 1500, "max": 2000, "mean": 150.0}


def summary(**kw) -> dict:
    base = {"url": "http://10.0.0.1/", "workers": 2, "connections": 50, "close": "fin", "duration_s": 3.0,
            "requests": 500, "rps": 166.7, "status": {"200": 500}, "errors": {}, "connections_opened": 500,
            "latency_us": SOME, "connect_us": SOME, "bytes_in": 50_000, "bytes_out": 40_000}
    return base | kw


def test_a_run_at_the_wall_says_so_on_its_first_line():
    text = render(summary(errors={"EADDRNOTAVAIL": 11488}, wall="At the port wall from 0.06s: ..."))
    assert text.splitlines()[0] == "At the port wall from 0.06s: ..."


def test_nothing_succeeded_is_said_first_and_no_row_of_zeros():
    text = render(summary(requests=0, rps=0.0, status={}, errors={"protocol_error": 7114}, latency_us=ZERO))
    assert text.splitlines()[0] == "No request got a response."
    assert "  Latency  (none: no response completed)" in text
    assert " 0us" not in text


def test_max_errors_is_named():
    text = render(summary(errors={"ECONNRESET": 11}, stopped_by="max_errors", max_errors=10))
    assert "more than 10 errors (--max-errors)" in text


def test_long_lines_wrap_to_the_width_and_lose_nothing():
    advice = ("2500 ports (5 source addresses x 500), each unusable for 60 s after the client closes: at most "
              "42 new connections/s can be sustained with --close fin")
    url = "http://a-very-long-host-name.example.internal:8080/" + "x" * 60
    for width in (80, 100):
        text = render(summary(url=url, advice=[advice], rate_target=1000.0, rate_achieved=412.0, max_lag_us=1500,
                              service_us=SOME), width)
        assert all(len(line) <= width for line in text.splitlines() if url not in line)  # a URL is never cut
        assert url in text
        assert f"Advice: {advice}" in " ".join(text.split())


def test_time_wait_is_the_runs_own_and_what_earlier_connections_left_is_said_beside_it():
    """A server-close run right after a fin run (#36): none of its own, the fin run's found and reused."""
    text = render(summary(close="server", time_wait_peak=0, time_wait_at_start=14564, time_wait_found=500,
                          time_wait_found_reused=14064, budget={"ports": 28232}))
    assert "  Client TIME_WAIT towards the target: the run's own peaked at 0 of 28232 ports" in text
    assert "  14564 more were left by earlier connections; 14064 of them were reused" in text
    alone = render(summary(time_wait_peak=300, time_wait_at_start=0, time_wait_found=0, time_wait_found_reused=0))
    assert "the run's own peaked at 300" in alone and "earlier connections" not in alone


def test_tls_handshakes_and_resumed_sessions_are_said_when_counted():
    text = render(summary(tls_handshakes=30, tls_resumed=29))
    assert "TLS: 30 handshakes, 29 resumed" in text
    assert "handshake" not in render(summary())  # http://, or asyncio: no such line
