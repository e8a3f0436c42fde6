"""Runs last in tests/lab: every namespace the lab tests made is gone, those of `twload lab run`
subprocesses included (their owner PID is dead, so they count as orphans)."""

import pytest

from tests.lab.conftest import lab_unavailable
from twload.lab import topology


def test_no_twl_namespace_remains():
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    assert topology.leftovers(mine_only=True) + topology.orphans() == []
