"""The compiled core records into HdrHistogram's own counts layout: the same slot for every value."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twload.engine import core
from twload.metrics import HIGHEST_US, LOWEST_US, new_histogram

pytestmark = pytest.mark.skipif(not core.available(), reason="the compiled core is not built")


@given(st.integers(min_value=LOWEST_US, max_value=HIGHEST_US))
def test_core_slot_equals_hdrh_slot(value):
    assert core._core.hist_index(value) == new_histogram()._counts_index_for(value)


def test_each_slot_maps_back_to_its_value():
    hist = new_histogram()
    assert hist.counts_len == core._core.HIST_LEN
    for index in (1, 1023, 1024, 2047, 2048, 5000, core._core.HIST_LEN - 1):
        value = hist.get_value_from_index(index)
        if value <= HIGHEST_US:
            assert core._core.hist_index(value) == index == hist._counts_index_for(value)
