"""A summary from a run folder's streams, for a run that never wrote summary.json (killed, crashed).

plan.json says what the run was (URL, close strategy, connections, workers), samples.jsonl
has the counters of every second and latency.hdr the latency histogram of every second,
so the totals and percentiles can be rebuilt exactly; only the connect-time histogram
(not streamed) and the sub-second duration are lost.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from hdrh.histogram import HdrHistogram

from twload.metrics import new_histogram, percentiles_us
from twload.results import LATENCY_LOG, read_plan, read_samples


def rebuild_summary(folder: Path) -> dict:
    samples = read_samples(folder)
    latency = new_histogram()
    log = Path(folder) / LATENCY_LOG
    if log.exists():
        for line in log.read_text().splitlines():
            if " " in line:
                latency.add(HdrHistogram.decode(line.split(" ", 1)[1].encode()))
    status: Counter = Counter()
    errors: Counter = Counter()
    for s in samples:
        status.update(s["status"])
        errors.update(s["errors"])
    requests = sum(s["requests"] for s in samples)
    duration = float(len(samples))
    plan = (read_plan(folder) or {}).get("plan", {})
    summary = {
        "url": plan.get("url", "(unknown: rebuilt from samples)"),
        "close": plan.get("close", "?"),
        "connections": plan.get("connections", 0),
        "workers": plan.get("worker_processes", plan.get("workers", 0)),
        "duration_s": duration,
        "requests": requests,
        "rps": round(requests / duration, 1) if duration else 0.0,
        "status": dict(sorted(status.items())),
        "errors": dict(sorted(errors.items())),
        "connections_opened": sum(s["connections_opened"] for s in samples),
        "latency_us": percentiles_us(latency),
        "connect_us": percentiles_us(new_histogram()),
        "bytes_in": sum(s["bytes_in"] for s in samples),
        "bytes_out": sum(s["bytes_out"] for s in samples),
        "rebuilt_from_samples": True,
    }
    if plan.get("requests") is not None:
        summary["requests_planned"] = plan["requests"]
    if plan.get("duration_s") is not None:
        summary["duration_planned_s"] = plan["duration_s"]
    return summary
