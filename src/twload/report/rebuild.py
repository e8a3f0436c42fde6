"""A summary from a run folder's streams, for a run that never wrote summary.json (killed, crashed).

plan.json says what the run was (URL, close strategy, connections, workers), samples.jsonl
has the counters of every second, hdrh.log and hdrh-connect.log the latency and connect-time
histograms of every second, so the totals and percentiles can be rebuilt exactly; only the
sub-second duration is lost.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from twload.merge.summary import Percentiles, Summary
from twload.metrics import new_histogram, percentiles_us
from twload.results import HDRH_CONNECT_LOG, HDRH_LOG, read_hdrh, read_plan, read_samples


def rebuild_summary(folder: Path) -> Summary:
    samples = read_samples(folder)
    latency, connect = new_histogram(), new_histogram()
    for hist in read_hdrh(folder, HDRH_LOG):
        latency.add(hist)
    for hist in read_hdrh(folder, HDRH_CONNECT_LOG):
        connect.add(hist)
    status: Counter = Counter()
    errors: Counter = Counter()
    for s in samples:
        status.update(s["status"])
        errors.update(s["errors"])
    requests = sum(s["requests"] for s in samples)
    duration = float(len(samples))
    plan = (read_plan(folder) or {}).get("plan", {})
    return Summary(
        url=plan.get("url", "(unknown: rebuilt from samples)"),
        close=plan.get("close", "?"),
        connections=plan.get("connections", 0),
        workers=plan.get("worker_processes", plan.get("workers", 0)),
        duration_s=duration,
        requests=requests,
        rps=round(requests / duration, 1) if duration else 0.0,
        status={str(k): v for k, v in sorted(status.items())},
        errors=dict(sorted(errors.items())),
        connections_opened=sum(s["connections_opened"] for s in samples),
        latency_us=Percentiles.from_dict(percentiles_us(latency)),
        connect_us=Percentiles.from_dict(percentiles_us(connect)),
        bytes_in=sum(s["bytes_in"] for s in samples),
        bytes_out=sum(s["bytes_out"] for s in samples),
        requests_planned=plan.get("requests"),
        duration_planned_s=plan.get("duration_s"),
        rebuilt_from_samples=True,
    )
