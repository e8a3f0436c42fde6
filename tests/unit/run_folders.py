"""Small run folders written the way `twload run` writes them, for the report's tests.

Each second is given as what happened in it (latencies, connections, errors); the folder
then holds samples.jsonl, the HdrHistogram interval logs (written with hdrh's own
HistogramLogWriter, or the older latency.hdr), plan.json and summary.json as asked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from hdrh.log import HistogramLogWriter

from twload.metrics import new_histogram, percentiles_us

START_EPOCH_S = 1_795_000_000.0


@dataclass
class Second:
    latencies_us: list[int] = field(default_factory=list)
    connect_us: list[int] = field(default_factory=list)
    connections_opened: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    time_wait: int | None = None  # the run's own
    time_wait_found: int | None = None  # found at the start (earlier connections'), still held
    time_wait_found_reused: int | None = None  # of those, taken over by the run's connects so far


def _hist(values: list[int]):
    hist = new_histogram()
    for v in values:
        hist.record_value(v)
    return hist


def write_run(folder: Path, seconds: list[Second], *, summary: dict | None = None, plan: dict | None = None,
              log: str = "hdrh", short_samples: bool = False) -> Path:
    """short_samples: samples carry only p50/p99/max (as older runs wrote), the rest is in the log."""
    folder.mkdir(parents=True)
    lines = []
    for t, sec in enumerate(seconds, start=1):
        lat = percentiles_us(_hist(sec.latencies_us)) if sec.latencies_us else None
        con = percentiles_us(_hist(sec.connect_us)) if sec.connect_us else None
        sample = {
            "t": t, "requests": len(sec.latencies_us), "rps": float(len(sec.latencies_us)),
            "connections_opened": sec.connections_opened, "errors": sec.errors,
            "status": {"200": len(sec.latencies_us)} if sec.latencies_us else {},
            "latency_us": ({k: lat[k] for k in (("p50", "p99", "max") if short_samples
                                                else ("p50", "p90", "p99", "p99_9", "max"))} if lat else
                           {"p50": 0, "p99": 0, "max": 0}),
            "bytes_in": 100 * len(sec.latencies_us), "bytes_out": 50 * len(sec.latencies_us),
        }
        if not short_samples:  # a second without connects has zeros, as the supervisor writes it
            sample["connect_us"] = {"p50": con["p50"], "p99": con["p99"]} if con else {"p50": 0, "p99": 0}
        for key in ("time_wait", "time_wait_found", "time_wait_found_reused"):
            if getattr(sec, key) is not None:
                sample[key] = getattr(sec, key)
        lines.append(json.dumps(sample))
    (folder / "samples.jsonl").write_text("\n".join(lines) + "\n")
    if log == "hdrh":
        for name, attr in (("hdrh.log", "latencies_us"), ("hdrh-connect.log", "connect_us")):
            with open(folder / name, "w") as fh:
                writer = HistogramLogWriter(fh)
                writer.output_log_format_version()
                writer.output_comment(f"[StartTime: {START_EPOCH_S:f} (seconds since epoch), x]")
                writer.output_base_time(START_EPOCH_S * 1000)
                writer.output_legend()
                for t, sec in enumerate(seconds, start=1):
                    if getattr(sec, attr):
                        # the last second is cut short, as a run's last interval is
                        end = t - 0.95 if t == len(seconds) else t
                        writer.output_interval_histogram(_hist(getattr(sec, attr)), t - 1 or 1e-9, end, 1000.0)
    elif log == "legacy":
        with open(folder / "latency.hdr", "w") as fh:
            for t, sec in enumerate(seconds, start=1):
                if sec.latencies_us:
                    fh.write(f"{t} {_hist(sec.latencies_us).encode().decode()}\n")
    if plan is not None:
        (folder / "plan.json").write_text(json.dumps(plan))
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def summary_of(seconds: list[Second], **extra) -> dict:
    """The summary the supervisor would write for these seconds (its totals and percentiles)."""
    latency = _hist([v for s in seconds for v in s.latencies_us])
    connect = _hist([v for s in seconds for v in s.connect_us])
    errors: dict[str, int] = {}
    for s in seconds:
        for name, n in s.errors.items():
            errors[name] = errors.get(name, 0) + n
    requests = sum(len(s.latencies_us) for s in seconds)
    tw = [s.time_wait for s in seconds if s.time_wait is not None]
    out = {
        "url": "http://127.0.0.1:8080/", "close": "keepalive", "connections": 4, "workers": 1,
        "duration_s": float(len(seconds)), "requests": requests, "rps": requests / len(seconds),
        "status": {"200": requests} if requests else {}, "errors": errors,
        "connections_opened": sum(s.connections_opened for s in seconds),
        "latency_us": percentiles_us(latency), "connect_us": percentiles_us(connect),
        "bytes_in": 100 * requests, "bytes_out": 50 * requests,
    }
    if tw:
        out["time_wait_peak"] = max(tw)
    return out | extra


def plan_json(**plan) -> dict:
    return {
        "command": ["twload", "run", plan.get("url", "http://127.0.0.1:8080/")],
        "started_utc": "2026-11-25T10:00:00Z", "started_epoch_s": START_EPOCH_S, "host": "testhost",
        "kernel": "6.18.0", "twload_version": "0.1.0",
        "plan": {"url": "http://127.0.0.1:8080/", "method": "GET", "close": "keepalive", "connections": 4,
                 "workers": 1, "duration_s": 3.0} | plan,
        "sysctls": {"net.ipv4.ip_local_port_range": "40000 40499", "net.ipv4.tcp_tw_reuse": 0},
        "preflight": {"target_timestamps": True,
                      "budget": {"ports": 500, "reuse_after_s": 60.0, "sustainable_new_conn_per_s": 8.2,
                                 "exhausted_at_connection": 501}},
    }
