"""The text summary (report/text.py): the cause first, nothing made of zeros, within 80 columns."""

from twload.merge.summary import Summary
from twload.report.text import render

ZERO = {"p50": 0, "p90": 0, "p99": 0, "p99_9": 0, "max": 0, "mean": 0.0}
SOME = {"p50": 120, "p90": 300, "p99": 900, "p99_9": 1500, "max": 2000, "mean": 150.0}


def summary(**kw) -> Summary:
    base = {"url": "http://10.0.0.1/", "workers": 2, "connections": 50, "close": "fin", "duration_s": 3.0,
            "requests": 500, "rps": 166.7, "status": {"200": 500}, "errors": {}, "connections_opened": 500,
            "latency_us": SOME, "connect_us": SOME, "bytes_in": 50_000, "bytes_out": 40_000}
    return Summary.from_dict(base | kw)


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


def test_targets_slowest_first():
    def row(name, p99, requests=10, errors=None):
        return {"name": name, "requests": requests, "status": {"200": requests}, "errors": errors or {},
                "latency_us": SOME | {"p99": p99}}
    rows = [row("fast", 100), row("slow", 90_000, errors={"timeout": 2}), row("middle", 5_000)]
    text = render(summary(targets=rows))
    assert text.splitlines()[0] == "twload @ http://10.0.0.1/, 3 targets (--targets)"
    lines = text.splitlines()
    at = lines.index("  Targets (3, slowest first):")
    assert [line.split()[-1] for line in lines[at + 2:at + 5]] == ["slow", "middle", "fast"]
    assert lines[at + 2].split()[:4] == ["120us", "90.00ms", "10", "2"]
    many = render(summary(targets=[row(f"t{i}", i) for i in range(25)]))
    assert "  ... 5 more in summary.json" in many and "t24" in many and " t4\n" not in many + "\n"


def test_errors_window_retransmits_and_slow_connects_are_said():
    text = render(summary(errors={"ECONNREFUSED": 407}, errors_window={"ECONNREFUSED": {"first_t": 3, "last_t": 5}},
                          retransmits=40, retransmits_per_s=13.3, retransmits_peak_per_s=17,
                          slow_connects={"count": 4, "at_least_s": 1.0, "why": "connects that took 1 s or more: ..."}),
                  width=200)
    assert "ECONNREFUSED counted from second 3 to second 5 of the run" in text
    assert "Retransmits: 40 (13.3 retransmits/s, peak 17/s;" in text
    assert "Slow connects: 4, connects that took 1 s or more: ..." in text
    assert "Retransmits" not in render(summary(retransmits=0, retransmits_per_s=0.0, retransmits_peak_per_s=0))


def test_an_http2_run_says_its_ports_against_http1s_in_one_line():
    text = render(summary(http2=True, streams=10, connections_opened=4, http1_ports_needed=500), width=200)
    lines = [line for line in text.splitlines() if "HTTP/2" in line]
    assert lines == ["  HTTP/2: 4 connections (ports), 10 streams per connection; the same rate as HTTP/1.1 short "
                     "connections would hold 500 ports"]
    capped = render(summary(http2=True, streams=10, connections_opened=4, http1_ports_needed=500,
                            h2_server_max_streams=1), width=200)
    assert "(the server capped them at 1)" in capped
    assert "HTTP/2" not in render(summary())


def test_tls_handshakes_and_resumed_sessions_are_said_when_counted():
    text = render(summary(tls_handshakes=30, tls_resumed=29))
    assert "TLS: 30 handshakes, 29 resumed" in text
    assert "handshake" not in render(summary())  # http://: no such line
