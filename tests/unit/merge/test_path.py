"""merge/path.py: the errors' windows, the retransmissions read from this namespace, slow connects."""

from hypothesis import given, settings
from hypothesis import strategies as st

from twload.kernel.snmp import retransmitted_segments, tcp_counters
from twload.merge.path import SLOW_CONNECT_US, PathFacts, count_at_least
from twload.metrics import HIGHEST_US, new_histogram


def test_an_errors_window_is_its_first_and_last_second():
    facts = PathFacts()
    facts.begin(None)
    for tick, errors in enumerate([{}, {"ECONNREFUSED": 3}, {"ECONNREFUSED": 1, "timeout": 1}, {},
                                   {"ECONNREFUSED": 2}, {"ECONNREFUSED": 0}], start=1):
        facts.sample(tick, errors, None)
    window = facts.summary(new_histogram(), 6.0)["errors_window"]
    assert window == {"ECONNREFUSED": {"first_t": 2, "last_t": 5}, "timeout": {"first_t": 3, "last_t": 3}}


def test_retransmits_are_this_namespaces_counter_and_the_seconds_add_up():
    assert retransmitted_segments() == tcp_counters()["TcpRetransSegs"] >= 0
    facts = PathFacts()
    facts.begin(retransmitted_segments())
    seconds = [facts.sample(t, {}, retransmitted_segments()) for t in (1, 2, 3)]
    assert all(set(s) == {"retransmits"} and s["retransmits"] >= 0 for s in seconds)
    summary = facts.summary(new_histogram(), 3.0)
    assert summary["retransmits"] == sum(s["retransmits"] for s in seconds)
    assert summary["retransmits_peak_per_s"] == max(s["retransmits"] for s in seconds)
    assert "errors_window" not in summary and "slow_connects" not in summary


def test_without_the_counter_no_retransmits_are_claimed():
    facts = PathFacts()
    facts.begin(None)
    assert facts.sample(1, {}, None) == {}
    assert "retransmits" not in facts.summary(new_histogram(), 1.0)


def test_slow_connects_are_those_of_one_second_or_more_and_are_explained():
    hist = new_histogram()
    for value, count in ((80, 500), (999_000, 2), (1_003_000, 3), (3_010_000, 1)):
        hist.record_value(value, count)
    assert count_at_least(hist, SLOW_CONNECT_US) == 4
    slow = PathFacts().summary(hist, 1.0)["slow_connects"]
    assert slow["count"] == 4 and slow["at_least_s"] == 1.0
    assert "accept queue" in slow["why"] and "ListenOverflows" in slow["why"]


@settings(max_examples=80, deadline=None)
@given(values=st.lists(st.integers(1, HIGHEST_US), max_size=200), at_least=st.integers(0, 2 * HIGHEST_US))
def test_count_at_least_agrees_with_hdrhs_recorded_iterator(values, at_least):
    hist = new_histogram()
    for value in values:
        hist.record_value(value)
    by_iterator = sum(item.count_at_value_iterated_to for item in hist.get_recorded_iterator()
                      if item.value_iterated_to >= at_least)
    assert count_at_least(hist, at_least) == by_iterator
