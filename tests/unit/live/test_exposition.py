"""The metrics endpoint's pure parts: --metrics-listen's address, the histogram buckets read from an
HdrHistogram, and an exposition prometheus_client's own parsers accept (text and OpenMetrics)."""

import urllib.request

import pytest
from prometheus_client import generate_latest
from prometheus_client.core import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from twload.live.exposition import (
    LATENCY_BUCKETS_S,
    ListenError,
    MetricsEndpoint,
    RunCollector,
    buckets_of,
    exposed_of,
    parse_listen,
)
from twload.live.feed import LiveRun
from twload.live.state import RunFacts, url_without_credentials
from twload.metrics import Snapshot, Totals, encode_counts, new_histogram


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)),
    (":9464", ("127.0.0.1", 9464)),
    ("9464", ("127.0.0.1", 9464)),
    ("localhost:0", ("127.0.0.1", 0)),
    ("[::1]:9464", ("::1", 9464)),
    ("127.0.0.2:1", ("127.0.0.2", 1)),
])
def test_loopback_addresses_are_taken(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["0.0.0.0:9464", "[::]:9464", "192.0.2.1:9464"])
def test_beyond_loopback_is_refused_unless_allowed(text):
    with pytest.raises(ListenError, match="--metrics-allow-remote"):
        parse_listen(text)
    assert parse_listen(text, allow_remote=True)[1] == 9464


@pytest.mark.parametrize("text", ["example.com:9464", "127.0.0.1:http", "127.0.0.1:70000", ""])
def test_bad_addresses_get_one_line(text):
    with pytest.raises(ListenError) as caught:
        parse_listen(text)
    assert "\n" not in str(caught.value)


def test_credentials_are_taken_out_of_the_url():
    assert url_without_credentials("http://user:secret@127.0.0.1:8080/x?q=1") == "http://127.0.0.1:8080/x?q=1"
    assert url_without_credentials("https://tok@[::1]/") == "https://[::1]/"
    assert url_without_credentials("http://127.0.0.1:8080/") == "http://127.0.0.1:8080/"


def test_buckets_count_the_histogram_cumulatively():
    hist = new_histogram()
    for value_us, count in ((50, 10), (100, 5), (300, 7), (2_000, 3), (120_000, 2), (59_000_000, 1)):
        hist.record_value(value_us, count)
    buckets = buckets_of(hist, sum_us=1234)
    counts = dict(buckets.cumulative)
    assert counts["0.0001"] == 15  # 50 and 100 µs: 100 µs is exact at three digits
    assert counts["0.00025"] == 15
    assert counts["0.0005"] == 22
    assert counts["0.0025"] == 25
    assert counts["0.25"] == 27
    assert counts["60.0"] == 28 == counts["+Inf"] == buckets.count
    values = [c for _, c in buckets.cumulative]
    assert values == sorted(values)
    assert len(buckets.cumulative) == len(LATENCY_BUCKETS_S) + 1
    assert buckets.sum_s == pytest.approx(0.001234)


def test_an_empty_histogram_has_zero_buckets():
    buckets = buckets_of(new_histogram(), 0)
    assert buckets.count == 0 and all(c == 0 for _, c in buckets.cumulative)


def snapshot(requests: int, status: dict, errors: dict, latency: dict) -> Snapshot:
    return Snapshot(requests=requests, connections_opened=3, status=status, errors=errors,
                    first_errors={name: (1, 0.25) for name in errors},
                    latency=encode_counts(latency), connect=encode_counts({30: 3}),
                    sums_us={"latency": sum(v * c for v, c in latency.items()), "connect": 90})


class FakeProgress:
    def __init__(self, totals: Totals, sample: dict) -> None:
        self.elapsed_s = 1.2
        self.totals = totals
        self.stopping = None
        self.time_wait = 7
        self.time_wait_found = None
        self.last_sample = sample


def a_run() -> tuple[LiveRun, Totals]:
    facts = RunFacts(url="http://127.0.0.1:8080/", destination="127.0.0.1:8080", engine="core", io="epoll",
                     close="fin", connections=4, planned_s=5.0, open_loop=True)
    run = LiveRun(facts)
    run.state.set_budget({"ports": 28232, "exhausted_at_connection": None})
    totals = Totals()
    totals.add(snapshot(12, {200: 10, 503: 2}, {"ECONNRESET": 2, 'we"ird\\name': 1}, {150: 10, 4000: 2}))
    sample = {"t": 1, "rps": 12.0, "target": 100.0, "max_lag_us": 1500, "ports_in_use": 11, "time_wait": 7}
    run.on_second(sample)
    run.on_progress(FakeProgress(totals, sample))
    return run, totals


def test_the_exposition_is_what_prometheus_client_parses_back():
    run, totals = a_run()
    registry = CollectorRegistry(auto_describe=False)  # the collector alone, no server
    registry.register(RunCollector(exposed_of(run.state, totals)))
    for text, parse in ((generate_latest(registry).decode(), text_string_to_metric_families),
                        (generate_openmetrics(registry).decode(), parse_openmetrics)):
        families = {f.name: f for f in parse(text)}
        requests = {s.labels["status"]: s.value for s in families["twload_requests"].samples
                    if s.name == "twload_requests_total"}
        assert requests == {"200": 10, "503": 2}
        errors = {s.labels["error"]: s.value for s in families["twload_errors"].samples
                  if s.name == "twload_errors_total"}
        assert errors == {"ECONNRESET": 2, 'we"ird\\name': 1}
        latency = {s.name: s for s in families["twload_latency_seconds"].samples if not s.labels.get("le")}
        assert latency["twload_latency_seconds_count"].value == 12
        assert latency["twload_latency_seconds_sum"].value == pytest.approx((150 * 10 + 4000 * 2) / 1e6)
        gauges = {name: families[name].samples[0] for name in ("twload_ports_in_use", "twload_port_budget",
                                                                "twload_time_wait_sockets", "twload_target_rate")}
        assert gauges["twload_ports_in_use"].value == 11
        assert gauges["twload_ports_in_use"].labels == {"destination": "127.0.0.1:8080"}
        assert gauges["twload_port_budget"].value == 28232
        assert gauges["twload_time_wait_sockets"].value == 7
        assert gauges["twload_target_rate"].value == 100
        # an info metric in OpenMetrics; the older text format knows no info type: a gauge, _info named
        info = (families.get("twload_run") or families["twload_run_info"]).samples[0].labels
        assert info["url"] == "http://127.0.0.1:8080/" and info["close"] == "fin" and info["engine"] == "core"


def test_the_endpoint_serves_on_loopback_and_stops():
    run, totals = a_run()
    endpoint = MetricsEndpoint("127.0.0.1", 0, run.state.facts)
    try:
        endpoint.update(run.state, totals)
        with urllib.request.urlopen(endpoint.url, timeout=5) as response:
            text = response.read().decode()
        assert 'twload_requests_total{status="200"} 10.0' in text
    finally:
        endpoint.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(endpoint.url, timeout=2)


def test_a_port_in_use_is_one_line():
    first = MetricsEndpoint("127.0.0.1", 0, a_run()[0].state.facts)
    try:
        with pytest.raises(ListenError, match="in use"):
            MetricsEndpoint("127.0.0.1", first.port, a_run()[0].state.facts)
    finally:
        first.close()


def test_the_grafana_dashboard_reads_only_metrics_the_endpoint_serves():
    import json
    import re
    from pathlib import Path

    run, totals = a_run()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunCollector(exposed_of(run.state, totals)))
    served = {s.name for f in text_string_to_metric_families(generate_latest(registry).decode()) for s in f.samples}
    dashboard = json.loads((Path(__file__).resolve().parents[3] / "docs" / "grafana-twload.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\btwload_[a-z_]+", expr)}
    assert used and used <= served, used - served
