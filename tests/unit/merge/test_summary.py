"""The typed summary: summary.json's shape both ways, old run folders read back, a useful repr."""

from __future__ import annotations

import json

from twload.merge.summary import FirstError, Percentiles, Summary

EVERY_KEY = {  # a summary.json with every key a local and a distributed run can write, in their order
    "url": "http://127.0.0.1:8080/", "close": "fin", "connections": 4, "workers": 2, "engine": "core",
    "io": "epoll", "duration_s": 2.003, "requests": 900, "rps": 449.3, "status": {"200": 890, "503": 10},
    "errors": {"EADDRNOTAVAIL": 3}, "connections_opened": 903,
    "latency_us": {"p50": 100, "p75": 120, "p90": 150, "p99": 900, "p99_9": 1200, "max": 2000, "mean": 130.5},
    "connect_us": {"p50": 40, "p75": 45, "p90": 50, "p99": 90, "p99_9": 95, "max": 99, "mean": 42.0},
    "bytes_in": 90000, "bytes_out": 36000, "requests_planned": 1000, "duration_planned_s": 2.0,
    "interrupted": "SIGINT", "stopped_by": "max_errors", "max_errors": 2, "worker_failures": ["worker 1 crashed"],
    "first_errors": {"EADDRNOTAVAIL": {"at_s": 1.5, "connection": 870, "worker": 0}},
    "peer_bytes": "SSH-2.0", "tls_reason": "certificate verify failed",
    "rate_target": 500.0, "rate_achieved": 449.3,
    "service_us": {"p50": 90, "p75": 110, "p90": 140, "p99": 800, "p99_9": 1100, "max": 1900, "mean": 120.0},
    "max_lag_us": 70000, "behind": "achieved 449 of 500 req/s",
    "tls_handshake_us": {"p50": 1, "p75": 2, "p90": 3, "p99": 4, "p99_9": 5, "max": 6, "mean": 2.0},
    "time_wait_peak": 880, "time_wait_at_start": 12, "ports_in_use_at_start": 14, "time_wait_found": 10,
    "time_wait_found_reused": 2, "dask_workers": 2, "workers_detail": [{"dask_worker": "tcp://127.0.0.1:1"}],
    "target_timestamps": None, "budget": {"ports": 28232, "reuse_after_s": 60}, "malformed_events":
    {"count": 1, "first": "not a shard message"}, "lost_workers": ["tcp://127.0.0.1:2"],
    "wall": "At the port wall from 1.50s", "advice": ["raise ip_local_port_range"], "cluster": "local:2",
    "thresholds": [{"threshold": "p99<50ms", "observed": 900.0, "passed": True}],
}


def test_every_key_reads_back_and_is_written_as_read():
    summary = Summary.from_dict(EVERY_KEY)
    assert summary.first_errors["EADDRNOTAVAIL"] == FirstError(1.5, 870, 0)
    assert summary.latency_us.p99 == 900 and summary.service_us == Percentiles(90, 110, 140, 800, 1100, 1900, 120.0)
    assert summary.target_timestamps is None and summary.budget == {"ports": 28232, "reuse_after_s": 60}
    assert summary.extra == {}
    assert json.dumps(summary.to_dict()) == json.dumps(EVERY_KEY)  # the same keys, in the same order


def test_an_old_run_folders_summary_reads_with_what_it_lacks_empty():
    old = {"url": "http://h/", "close": "keepalive", "connections": 2, "workers": 1, "duration_s": 1.0,
           "requests": 10, "rps": 10.0, "status": {"200": 10}, "errors": {}, "connections_opened": 2,
           "latency_us": {"p50": 5, "p90": 6, "p99": 7, "max": 8},  # before p75, p99_9 and mean
           "bytes_in": 1, "bytes_out": 1, "time_wait_peak": 3, "a_key_from_a_newer_twload": [1, 2]}
    summary = Summary.from_dict(old)
    assert summary.engine is None and summary.connect_us == Percentiles()
    assert (summary.latency_us.p99, summary.latency_us.p75) == (7, 0)
    assert summary.time_wait_measured and summary.time_wait_at_start is None and not summary.open_loop
    written = summary.to_dict()
    assert written["a_key_from_a_newer_twload"] == [1, 2]  # kept, never dropped
    assert "engine" not in written and "time_wait_at_start" not in written


def test_the_repr_says_the_key_figures():
    summary = Summary.from_dict(EVERY_KEY)
    shown = repr(summary)
    for figure in ("requests=900", "rps=449.3", "errors=3", "p50=100us", "p99=900us", "close=fin",
                   "interrupted=SIGINT"):
        assert figure in shown
    assert len(shown) < 200


def test_figures_computed_from_the_counts():
    summary = Summary(requests=97, errors={"timeout": 2, "ECONNRESET": 1})
    assert summary.error_count == 3 and summary.error_rate == 0.03
    assert Summary().error_rate == 0.0
    assert summary.with_(requests=0).requests == 0 and summary.requests == 97  # frozen: a copy changes
