"""A worker's Interval, counted once a second, merged into Totals: nothing lost or skewed."""

import base64
import zlib
from array import array
from dataclasses import replace

import pytest
from hdrh.codec import ext_header_size
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from twload.metrics import (
    HIGHEST_US,
    PERCENTILES,
    IndexCountsEncoder,
    Interval,
    SpanDecoder,
    Totals,
    encode_counts,
    free_codec_garbage,
    new_histogram,
    percentile_values,
    percentiles_us,
)

latencies = st.lists(st.integers(0, HIGHEST_US), min_size=1, max_size=300)


def exact_percentile(values: list[int], p: float) -> int:
    """The value at percentile p of the raw values, by rank (as HdrHistogram ranks: p% of the
    count, rounded half up, at least 1), computed from the sorted list, not from a histogram."""
    ordered = sorted(values)
    rank = max(1, int(p / 100 * len(ordered) + 0.5))
    return ordered[rank - 1]


def within_resolution(reported: int, exact: int) -> bool:
    """3 significant digits: HdrHistogram reports the top of the bucket holding the exact value,
    and a bucket is at most 1/1024 of its values wide (2048 sub-buckets, the upper half in use)."""
    return exact <= reported <= exact + exact // 1024 + 1


@settings(max_examples=60, deadline=None)
@given(values=latencies)
def test_percentiles_agree_with_the_sorted_values(values):
    values = [max(v, 1) for v in values]  # the lowest trackable value is 1 µs
    hist = new_histogram()
    for value in values:
        hist.record_value(value)
    block = percentiles_us(hist)
    for name, p in PERCENTILES:
        assert within_resolution(block[name], exact_percentile(values, p)), (name, block[name])
    assert within_resolution(block["max"], max(values))
    # without the sum of the values, the mean comes from the buckets: off by at most a bucket's width
    assert abs(block["mean"] - sum(values) / len(values)) <= max(values) / 1024 + 1


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
    clamped = [min(max(v, 1), HIGHEST_US) for v in everything]
    for name, p in PERCENTILES:
        assert within_resolution(block[name], exact_percentile(clamped, p)), (name, block[name])


def test_the_codec_garbage_of_a_second_is_freed():
    """Each new highest value makes hdrh build a ctypes array type (a reference cycle); a process that
    allocates little (the core's worker) kept them for good: its heap grew every second."""
    import ctypes
    import gc

    def array_types() -> int:
        return sum(1 for o in gc.get_objects() if isinstance(o, type) and issubclass(o, ctypes.Array))

    values = [new_histogram().get_value_from_index(i) for i in range(3000, 3060)]
    gc.collect()
    gc.disable()  # as if no collection came (the worker's case): only free_codec_garbage may free them
    try:
        before = array_types()
        for top in values:
            encode_counts({100: 1, top: 1})
        left = array_types() - before
        free_codec_garbage()
        after = array_types() - before
    finally:
        gc.enable()
    assert left >= len(values) // 2  # the garbage this is about (else the test proves nothing)
    assert after <= 2


def test_tls_counts_are_summed_only_where_snapshots_carry_them():
    """The core's https snapshots carry tls_handshakes and tls_resumed; http:// ones do not, and
    their totals stay None (summary.json then has no such keys), whoever merges them (a supervisor or a
    Dask run's coordinator)."""
    totals = Totals()
    totals.add(Interval().snapshot())
    assert (totals.tls_handshakes, totals.tls_resumed) == (None, None)
    for handshakes, resumed in ((5, 0), (7, 6)):
        totals.add(replace(Interval().snapshot(), tls_handshakes=handshakes, tls_resumed=resumed))
    assert (totals.tls_handshakes, totals.tls_resumed) == (12, 6)


def span_of(values: list[int]) -> tuple[int, bytes, int]:
    """values as the core's counts_span: the slot of the first and the last non-zero count, the
    native int64 counts between (a slot by hdrh's own layout), and how many values."""
    layout = new_histogram()
    counts = array("q", bytes(8 * layout.counts_len))
    for v in values:
        counts[layout._counts_index_for(v)] += 1
    used = [i for i, c in enumerate(counts) if c]
    return (used[0], counts[used[0]:used[-1] + 1].tobytes(), len(values)) if used else (0, b"", 0)


@settings(max_examples=60, deadline=None)
@given(seconds=st.lists(st.lists(st.integers(1, HIGHEST_US), max_size=200), min_size=1, max_size=4))
def test_slot_counts_encode_as_the_values_would(seconds):
    """The core's histograms, copied in by slot (IndexCountsEncoder), decode to what recording each
    value gives (encode_counts); one encoder, second after second, carries nothing over."""
    encoder = IndexCountsEncoder(new_histogram().counts_len)
    for values in seconds:
        by_slot = encoder.encode(*span_of(values))
        by_value = encode_counts({v: values.count(v) for v in set(values)})
        assert (by_slot == b"") == (by_value == b"") == (not values)
        if values:
            a, b = new_histogram(), new_histogram()
            a.decode_and_add(by_slot)
            b.decode_and_add(by_value)
            assert a.get_total_count() == b.get_total_count() == len(values)
            assert (a.get_min_value(), a.get_max_value()) == (b.get_min_value(), b.get_max_value())
            assert percentiles_us(a, 0) == percentiles_us(b, 0)  # (no mean: hdrh walks every value for it)


def test_slot_counts_outside_the_layout_are_refused():
    encoder = IndexCountsEncoder(new_histogram().counts_len)
    with pytest.raises(ValueError, match="outside"):
        encoder.encode(new_histogram().counts_len - 1, array("q", [1, 1]).tobytes(), 2)
    with pytest.raises(RuntimeError, match="layout"):
        IndexCountsEncoder(new_histogram().counts_len + 1)


def same_histogram(a, b) -> bool:
    def facts(h):
        return h.get_total_count(), h.get_min_value(), h.get_max_value(), percentiles_us(h, 0), bytes(h.counts)

    return facts(a) == facts(b)


@settings(max_examples=60, deadline=None)
@given(seconds=st.lists(st.lists(st.integers(0, HIGHEST_US), max_size=200), min_size=1, max_size=4))
def test_a_span_decoded_histogram_adds_up_as_hdrhs_own_decode(seconds):
    """SpanDecoder.add, second after second into one histogram, leaves what decode_and_add leaves: the
    same slots, count, min, max and percentiles; an empty one adds nothing (hdrh's own add would set
    the min to 0); its scratch array is clean after each."""
    decoder = SpanDecoder()
    by_span, by_hdrh = new_histogram(), new_histogram()
    for values in seconds:
        encoded = encode_counts({v: values.count(v) for v in set(values)})
        decoder.add(by_span, encoded or new_histogram().encode())
        if encoded:
            by_hdrh.decode_and_add(encoded)
        assert same_histogram(by_span, by_hdrh)
        assert not any(decoder.scratch.counts)


def test_a_histogram_of_another_layout_is_added_by_hdrhs_decode():
    other = HdrHistogram(1, 3_600_000_000, 2)
    for value in (5, 700, 90_000, 1_000_000):
        other.record_value(value, 3)
    by_span, by_hdrh = new_histogram(), new_histogram()
    SpanDecoder().add(by_span, other.encode())
    by_hdrh.decode_and_add(other.encode())
    assert by_span.get_total_count() == 12
    assert same_histogram(by_span, by_hdrh)


def test_a_malformed_or_inflating_histogram_is_refused():
    decoder = SpanDecoder()
    with pytest.raises(ValueError):  # binascii.Error, as hdrh's decode
        decoder.add(new_histogram(), b"not a histogram")
    valid = base64.b64decode(encode_counts({100: 1}))
    # a payload that inflates past what any histogram of this layout can take (a zlib bomb)
    bomb = valid[:ext_header_size] + zlib.compress(valid[ext_header_size:][:0] + b"\0" * 10_000_000)
    with pytest.raises(ValueError, match="larger than its layout"):
        decoder.add(new_histogram(), base64.b64encode(bomb))
    assert new_histogram().get_total_count() == 0


def overrunning(encoded: bytes) -> bytes:
    """encoded with counts past the last slot of its layout appended (a ZigZag 1, slot after slot)."""
    raw = base64.b64decode(encoded)
    payload = zlib.decompress(raw[ext_header_size:])
    return base64.b64encode(raw[:ext_header_size] + zlib.compress(payload + b"\x02" * 30_000))


def test_a_histogram_past_its_layout_is_refused_and_leaves_the_scratch_clean():
    """decode_varints writes the slots it read before it finds the overrun: they are cleared, so the
    next histogram adds only its own counts."""
    decoder = SpanDecoder()
    with pytest.raises(IndexError):
        decoder.add(new_histogram(), overrunning(encode_counts({100: 1, 5000: 3})))
    assert not any(decoder.scratch.counts)
    hist = new_histogram()
    decoder.add(hist, encode_counts({1: 2, HIGHEST_US: 5}))
    assert hist.get_total_count() == 7 and sum(hist.counts) == 7


def test_check_refuses_what_add_refuses_and_adds_nothing():
    decoder = SpanDecoder()
    good = encode_counts({100: 1, 90_000: 4})
    decoder.check(good)
    assert not any(decoder.scratch.counts)
    other = HdrHistogram(1, 3_600_000_000, 2)
    other.record_value(700, 2)
    decoder.check(other.encode())  # another layout: hdrh's decode
    for bad, error in ((b"not a histogram", ValueError), (overrunning(good), IndexError),
                       (base64.b64encode(base64.b64decode(good)[:ext_header_size + 4]), Exception)):
        with pytest.raises(error):
            decoder.add(new_histogram(), bad)
        with pytest.raises(error):
            decoder.check(bad)
        assert not any(decoder.scratch.counts)


@settings(max_examples=80, deadline=None)
@given(seconds=st.lists(st.lists(st.integers(0, HIGHEST_US), min_size=1, max_size=200), min_size=1, max_size=3),
       percentiles=st.lists(st.floats(0, 100), min_size=1, max_size=6))
def test_percentile_values_agree_with_hdrhs_own(seconds, percentiles):
    """From running totals over the recorded slots, as hdrh's get_percentile_to_value_dict, for histograms
    recorded into and for histograms added up from encoded ones (whose min hdrh may have left at 0)."""
    recorded, added = new_histogram(), new_histogram()
    for values in seconds:
        for value in values:
            recorded.record_value(max(value, 1))
        added.decode_and_add(encode_counts({v: values.count(v) for v in set(values)}))
        added.decode_and_add(new_histogram().encode())  # hdrh's add of an empty one sets min_value to 0
    for hist in (recorded, added):
        assert percentile_values(hist, percentiles) == hist.get_percentile_to_value_dict(percentiles)
