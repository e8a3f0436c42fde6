"""Runs last in tests/lab: every namespace the lab tests made is gone."""

import pytest

from tests.lab.conftest import lab_unavailable
from twload.lab import topology


def test_no_twl_namespace_remains():
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    assert topology.leftovers(mine_only=True) == []
