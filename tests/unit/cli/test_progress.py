"""The live line (cli/progress.py): the dominant error by name and since when, ports against the
budget, and never wider than the terminal."""

import pytest

from twload.cli.progress import progress_line
from twload.engine.supervisor import Progress
from twload.metrics import Snapshot, Totals


def snapshot(requests=0, errors=None, first_errors=None) -> Snapshot:
    return Snapshot(requests=requests, errors=errors or {},
                    first_errors={name: tuple(pair) for name, pair in (first_errors or {}).items()})


def at_the_wall() -> Progress:
    totals = Totals()
    totals.add(snapshot(500, {"EADDRNOTAVAIL": 11488}, {"EADDRNOTAVAIL": [501, 0.06]}))
    return Progress(elapsed_s=2.5, planned_s=3.0, totals=totals, time_wait=500,
                    last_sample={"rps": 0.0, "latency_us": {"p50": 120, "p99": 900}})


def test_the_dominant_error_by_name_and_since_when_and_ports_against_the_budget():
    line = progress_line(at_the_wall(), width=100, ports=500, in_use=500).plain
    assert "11488 EADDRNOTAVAIL since 0.06s" in line
    assert "ports 500/500" in line


def test_several_kinds_of_error_name_the_one_that_dominates():
    progress = at_the_wall()
    progress.totals.add(snapshot(0, {"ECONNRESET": 12}, {"ECONNRESET": [3, 0.01]}))
    line = progress_line(progress, width=100).plain
    assert "11500 errors, most EADDRNOTAVAIL since 0.06s" in line


@pytest.mark.parametrize("width", [40, 60, 80, 100, 140])
def test_the_line_fits_the_width_and_keeps_what_matters_most(width):
    progress = at_the_wall()
    line = progress_line(progress, width=width, ports=500, in_use=500).plain
    assert len(line) <= width
    assert "2.5s / 3s" in line
    if width >= 60:
        assert "EADDRNOTAVAIL since 0.06s" in line and "req/s" in line
    if width >= 80:
        assert "ports 500/500" in line
    progress.stopping = "SIGINT"
    stopping = progress_line(progress, width=width, ports=500, in_use=500).plain
    assert len(stopping) <= width and "stopping (SIGINT)" in stopping


def test_without_errors_or_probe():
    line = progress_line(Progress(elapsed_s=1.0, planned_s=10.0), width=80).plain
    assert "errors 0" in line and "ports" not in line


def test_the_runs_own_time_wait_with_what_earlier_connections_left_beside_it():
    """A server-close run right after a fin run: none of the TIME_WAIT towards the target is its own."""
    progress = Progress(elapsed_s=1.0, planned_s=2.0, time_wait=0, time_wait_found=9222)
    line = progress_line(progress, width=120, ports=28232, in_use=9223).plain
    assert "ports 9223/28232" in line
    assert "TIME_WAIT 0 (+9222 earlier)" in line
    alone = Progress(elapsed_s=1.0, planned_s=2.0, time_wait=300, time_wait_found=0)
    assert "TIME_WAIT 300  " in progress_line(alone, width=120, ports=28232, in_use=300).plain
