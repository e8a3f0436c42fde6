"""A worker's Interval, counted once a second, merged into Totals: nothing lost or skewed."""

from hypothesis import given, settings
from hypothesis import strategies as st

from twload.metrics import HIGHEST_US, PERCENTILES, Interval, Totals, new_histogram, percentiles_us

latencies = st.lists(st.integers(0, HIGHEST_US), min_size=1, max_size=300)


@settings(max_examples=60, deadline=None)
@given(values=latencies)
def test_percentiles_in_one_pass_match_hdrhistogram(values):
    hist = new_histogram()
    for value in values:
        hist.record_value(max(value, 1))
    block = percentiles_us(hist)
    for name, p in PERCENTILES:
        assert block[name] == hist.get_value_at_percentile(p)
    assert block["max"] == hist.get_max_value()


@settings(max_examples=40, deadline=None)
@given(seconds=st.lists(st.tuples(latencies, st.lists(st.sampled_from([200, 404, 503])), st.integers(0, 300)),
                        min_size=1, max_size=4))
def test_snapshots_merge_into_exact_totals(seconds):
    totals = Totals()
    everything, statuses = [], []
    for values, codes, fold_at in seconds:
        iv = Interval()
        latency_list = iv.latency
        iv.latency.extend(values[:fold_at])
        iv.status_codes.extend(codes[:fold_at])
        iv.fold()  # the worker's sweep, part way through a second
        assert not iv.latency and iv.latency is latency_list
        iv.latency.extend(values[fold_at:])
        iv.status_codes.extend(codes[fold_at:])
        totals.add(iv.snapshot())
        everything += values
        statuses += codes
    assert totals.latency.get_total_count() == len(everything)
    assert dict(totals.status) == {code: statuses.count(code) for code in set(statuses)}
    block = percentiles_us(totals.latency, totals.sums_us["latency"])
    assert block["mean"] == round(sum(everything) / len(everything), 1)
    assert block["p50"] == totals.latency.get_value_at_percentile(50)
