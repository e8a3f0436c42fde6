"""A performance gate in pytest: the test fails when the p99 latency or the error rate is over its bound.

    pytest docs/examples/test_perf_gate.py                                  # the embedded target
    TWLOAD_URL=http://127.0.0.1:8080/ pytest docs/examples/test_perf_gate.py  # your service
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import twload

P99_BOUND_MS = float(os.environ.get("P99_BOUND_MS", "50"))
ERROR_RATE_BOUND = float(os.environ.get("ERROR_RATE_BOUND", "0.001"))  # errors / attempts: 0.1 %


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    if os.environ.get("TWLOAD_URL"):
        yield os.environ["TWLOAD_URL"]
    else:
        with twload.serve() as served:  # `twload serve` on a free loopback port, stopped afterwards
            yield served


def test_p99_and_errors_within_bounds(url: str, tmp_path: Path) -> None:
    summary = twload.run(url, connections=10, duration="2s", workers=1, out=tmp_path / "run")
    assert summary.requests > 0, summary
    assert summary.latency_us.p99 <= P99_BOUND_MS * 1000, f"p99 over {P99_BOUND_MS} ms: {summary}"
    assert summary.error_rate <= ERROR_RATE_BOUND, f"errors over {ERROR_RATE_BOUND:.2%}: {summary.errors}"
