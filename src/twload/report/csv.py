"""One row per second for spreadsheets (from the report's numbers; renders only)."""

from __future__ import annotations

import csv
import io

from twload.merge.summary import Summary

FIXED = (  # (column, series key); latency and connect columns are in microseconds
    ("requests", "requests"), ("rps", "rps"), ("connections_opened", "connections_opened"),
    ("latency_p50_us", "latency_p50"), ("latency_p90_us", "latency_p90"), ("latency_p99_us", "latency_p99"),
    ("latency_p99_9_us", "latency_p99_9"), ("latency_max_us", "latency_max"),
    ("connect_p50_us", "connect_p50"), ("connect_p99_us", "connect_p99"),
    ("time_wait", "time_wait"), ("time_wait_found", "time_wait_found"), ("ports_in_use", "ports_in_use"),
    ("target", "target"), ("bytes_in", "bytes_in"),
)


def render_csv(runs: list[dict]) -> str:
    """Columns: run, t (the second's end, s), the per-second fields the runs have, errors, then one per error name
    and per status code."""
    error_names = sorted({name for r in runs for name in r["series"]["errors"]})
    codes = sorted({code for r in runs for code in r["series"]["status"]})
    fixed = [(column, key) for column, key in FIXED
             if any(v is not None for r in runs for v in r["series"].get(key) or [])]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["run", "t", *(c for c, _ in fixed), "errors",
                     *(f"error_{name}" for name in error_names), *(f"status_{code}" for code in codes)])
    for r in runs:
        s = r["series"]
        for i, t in enumerate(s["t"]):
            errors = [s["errors"].get(name, [0] * len(s["t"]))[i] for name in error_names]
            writer.writerow([
                r["name"], t,
                *(_cell(s.get(key), i) for _, key in fixed),
                sum(errors), *errors,
                *(s["status"].get(code, [0] * len(s["t"]))[i] for code in codes),
            ])
    return out.getvalue()


def _cell(column: list | None, i: int) -> object:
    if column is None or column[i] is None:
        return ""
    return column[i]


TARGET_LATENCY = ("p50", "p90", "p99", "p99_9", "max", "mean")


def render_targets_csv(runs: list[tuple[str, Summary]]) -> str:
    """A request file's targets (summary.json `targets`), one row each: run, name, requests, errors,
    latency in microseconds, then one column per error name and per status code. Runs without
    targets give no rows."""
    rows = [(name, row) for name, summary in runs for row in summary.targets or ()]
    error_names = sorted({e for _, row in rows for e in row["errors"]})
    codes = sorted({code for _, row in rows for code in row["status"]})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["run", "target", "requests", "errors", *(f"latency_{p}_us" for p in TARGET_LATENCY),
                     *(f"error_{e}" for e in error_names), *(f"status_{code}" for code in codes)])
    for run, row in rows:
        writer.writerow([run, row["name"], row["requests"], sum(row["errors"].values()),
                         *(row["latency_us"][p] for p in TARGET_LATENCY),
                         *(row["errors"].get(e, 0) for e in error_names),
                         *(row["status"].get(code, 0) for code in codes)])
    return out.getvalue()
