"""The supervisor's hooks the live view and the metrics endpoint hang on: on_second gets every second
written to samples.jsonl, in order, and LiveRun's numbers at the end are summary.json's."""

from __future__ import annotations

import json
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from twload.cli.run import build_plan
from twload.engine.supervisor import run_to_folder
from twload.live.exposition import MetricsEndpoint
from twload.live.feed import LiveRun, facts_of


def test_every_second_reaches_the_observers_and_the_last_numbers_are_the_summarys(twload_server, tmp_path):
    server = twload_server()
    plan = build_plan(server.url, 4, "3s", None, 2, "GET", [], None, None, "10s", "5s", "fin")
    seen: list[dict] = []
    endpoint = MetricsEndpoint("127.0.0.1", 0, facts_of(plan))
    live = LiveRun(facts_of(plan), endpoint, linger_s=0.0)
    try:
        summary = run_to_folder(plan, tmp_path / "run", live.on_progress, None, None, None,
                                on_second=[seen.append, live.on_second])
        samples = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
        assert seen == samples and [s["t"] for s in seen] == list(range(1, len(seen) + 1))
        assert live.state.requests == summary["requests"] > 0
        assert live.state.status == summary["status"]
        assert live.state.run_latency_us == summary["latency_us"]
        with urllib.request.urlopen(endpoint.url, timeout=5) as response:
            families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
        requests = {s.labels["status"]: s.value for s in families["twload_requests"].samples
                    if s.name == "twload_requests_total"}
        assert requests == {k: float(v) for k, v in summary["status"].items()}
        opened = families["twload_connections_opened"].samples[0].value
        assert opened == summary["connections_opened"]
    finally:
        live.close()
