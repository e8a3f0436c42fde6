import pytest

from twload.merge.summary import Summary
from twload.plan import PlanError
from twload.thresholds import evaluate, parse

SUMMARY = Summary.from_dict({
    "requests": 9990, "rps": 999.0, "errors": {"ECONNRESET": 10},
    "latency_us": {"p50": 1000, "p75": 2000, "p90": 3000, "p99": 40_000, "p99_9": 90_000, "max": 120_000, "mean": 1500},
    "service_us": {"p50": 900, "p75": 1000, "p90": 1100, "p99": 2000, "p99_9": 3000, "max": 5000, "mean": 950},
})


@pytest.mark.parametrize("text, passed", [
    ("p99<50ms", True), ("p99<40ms", False), ("p99<=40ms", True), ("p99.9<100ms", True), ("max<100ms", False),
    ("mean<2ms", True), ("errors<0.1%", False), ("errors<0.2%", True), ("errors<11", True), ("rps>1000", False),
    ("rps>=999", True), ("requests>9000", True), ("service_p99<3ms", True), ("p50<1500us", True), ("p90<1s", True),
])
def test_thresholds(text, passed):
    assert evaluate([parse(text)], SUMMARY)[0]["passed"] is passed


@pytest.mark.parametrize("bad", ["p99", "p99<", "p99<50", "latency<5ms", "rps>5ms", "p99<5%", "p99~5ms"])
def test_bad_thresholds(bad):
    with pytest.raises(PlanError):
        parse(bad)


def test_service_thresholds_read_the_latency_of_a_closed_loop_run():
    closed = SUMMARY.with_(service_us=None)  # no intended send times: service is latency
    assert evaluate([parse("service_p99<41ms")], closed)[0]["observed"] == 40_000.0
    assert evaluate([parse("service_p99<41ms")], SUMMARY)[0]["observed"] == 2000.0
