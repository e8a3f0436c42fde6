"""A run's own client TIME_WAIT, told from what earlier connections left towards the same port (#36).

`twload run` (the command, with its pre-flight and port probe) against one `twload serve` port per
test, back to back as a user comparing strategies would: a `--close fin` run leaves a client
TIME_WAIT socket per connection for 60 s, and the run after it finds them there.
"""

from __future__ import annotations

import json

from tests.conftest import run_cli

N = 300


def run(url: str, folder, engine: str, close: str) -> tuple[dict, dict, list[dict]]:
    """One run of N connections (bounded: -n), its summary, plan.json and samples."""
    done = run_cli("run", url, "--close", close, "-n", str(N), "-c", "4", "-w", "1", "--engine", engine,
                   "--json", "-q", "--out", str(folder))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    plan = json.loads((folder / "plan.json").read_text())
    samples = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    assert summary["requests"] == N and summary["errors"] == {}
    return summary, plan, samples


def test_a_run_records_the_time_wait_it_found_at_its_start(twload_server, tmp_path, engine):
    server = twload_server()
    first, first_plan, _ = run(server.url, tmp_path / "fin", engine, "fin")
    assert first["time_wait_at_start"] == first_plan["preflight"]["time_wait_at_start"] == 0
    second, second_plan, _ = run(server.url, tmp_path / "fin-again", engine, "fin")
    # the first run's TIME_WAIT (60 s each) is there before the second's first connection
    assert second["time_wait_at_start"] == second_plan["preflight"]["time_wait_at_start"] == N
    assert second_plan["preflight"]["ports_in_use_at_start"] >= N
    assert second["ports_in_use_at_start"] == second_plan["preflight"]["ports_in_use_at_start"]
    server.stop()
