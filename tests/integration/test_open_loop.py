"""Open loop and stages against `twload serve`: latency from the intended send time, and ramps."""

import json

import pytest

from tests.conftest import run_cli
from twload.results import read_hdrh

RATE = 400


def count_at_least(run_dir, us: int) -> int:
    total = 0
    for hist in read_hdrh(run_dir):
        total += sum(item.count_added_in_this_iter_step for item in hist.get_recorded_iterator()
                     if item.value_iterated_to >= us)
    return total


def test_a_one_second_stall_is_seen_by_the_requests_that_were_due(twload_server, tmp_path):
    """Known answer: R requests are due during a 1 s stall; from their intended send times their
    latencies spread over 1 s .. 0, so about R/2 are >= 0.5 s, while the service time of all but
    the one request caught in the stall stays low."""
    server = twload_server("--stall", "1s", "--stall-after", str(RATE))
    out = tmp_path / "run"
    proc = run_cli("run", server.url, "--rate", str(RATE), "-d", "4s", "-w", "1",
                   "--max-connections", "1", "--json", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["errors"] == {}
    assert summary["requests"] == RATE * 4
    slow = count_at_least(out, 500_000)
    assert 0.3 * RATE <= slow <= 0.7 * RATE, slow
    assert summary["latency_us"]["max"] >= 900_000
    assert summary["service_us"]["p99"] < 100_000  # the queue waited, the server answered fast
    assert summary["service_us"]["max"] >= 900_000  # the one request in flight during the stall
    assert summary["rate_target"] == RATE


def test_closed_loop_hides_the_same_stall(twload_server, tmp_path):
    """The contrast: a closed loop sends nothing during the stall, so one request carries it all."""
    server = twload_server("--stall", "1s", "--stall-after", "300")
    out = tmp_path / "run"
    proc = run_cli("run", server.url, "-c", "1", "-d", "3s", "-w", "1", "--json", "--out", str(out))
    summary = json.loads(proc.stdout)
    # the one request in flight during the stall carries all of it (a busy machine may add a slow
    # response or two of its own, but not another whole second)
    assert count_at_least(out, 900_000) == 1
    assert count_at_least(out, 500_000) <= 3
    assert "service_us" not in summary


def planned_by(t: float) -> float:
    """Requests due by t for the stages 2s:200,2s:600 (the integral of the ramped rate)."""
    if t <= 2:
        return 50 * t * t  # 0 -> 200/s over 2 s
    t = min(t, 4.0) - 2
    return 200 + 200 * t + 100 * t * t  # 200 -> 600/s over 2 s


def test_open_loop_stages_follow_the_ramp(target, tmp_path):
    server = target()
    out = tmp_path / "run"
    proc = run_cli("run", server.url, *server.args, "--stages", "2s:200,2s:600", "--open-loop", "-w", "2",
                   "--json", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    targets = [s["target"] for s in samples[:4]]
    assert targets == [50, 150, 300, 500]  # the rate at the middle of each second
    # Counts, not tight time windows: a request is never sent before it is due, so by each second's
    # snapshot at most the planned number has completed. A snapshot is taken at the worker's next
    # sweep after the second ends (later on a loaded machine): allow it half a second.
    done = 0
    for k, s in enumerate(samples[:4], start=1):
        done += s["requests"]
        assert done <= planned_by(k + 0.5) + 2, (k, done)
    assert sum(s["requests"] for s in samples[2:]) > 2 * sum(s["requests"] for s in samples[:2])  # it ramps
    summary = json.loads(proc.stdout)
    assert summary["rate_target"] == 250  # 0->200 over 2 s (200) + 200->600 over 2 s (800): 1000 in 4 s
    assert abs(summary["requests"] - 1000) <= 10


def test_closed_loop_stages_ramp_the_connections(target, tmp_path):
    server = target()
    out = tmp_path / "run"
    proc = run_cli("run", server.url, *server.args, "--stages", "2s:8,1s:8,1s:2", "-w", "1", "--json",
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [s["target"] for s in samples[:4]] == [2, 6, 8, 5]
    summary = json.loads(proc.stdout)
    assert summary["connections_opened"] == 8  # grows to 8, shrinks without reconnecting


@pytest.mark.parametrize("stages, opened", [("2s:1", 1), ("1s:3,2s:3", 3)])
def test_staged_connections_over_workers_add_up_to_the_target(twload_server, tmp_path, stages, opened):
    """Two workers share a staged count by whole connections: 1 is one connection (each worker's 0.5
    rounded to 0 sent nothing), 3 is three (1.5 rounded to 2 by each opened four)."""
    server = twload_server()
    proc = run_cli("run", server.url, "--stages", stages, "-w", "2", "--json",
                   "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["requests"] > 0 and summary["connections_opened"] == opened  # keep-alive: each opened once
