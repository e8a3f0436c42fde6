"""Pass/fail thresholds over a summary, k6 style: 'p99<50ms', 'errors<0.1%', 'rps>1000'.

Pure: parse() turns the text into a Threshold, evaluate() checks it against a
Summary. Latency metrics (p50 p75 p90 p99 p99_9 max mean, also p99.9) read its
latency_us; `service_p99` and friends read its service_us when the run was open loop.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from twload.merge.summary import Summary
from twload.plan import PlanError, parse_duration

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
LATENCY_KEYS = {"p50", "p75", "p90", "p99", "p99_9", "max", "mean"}
_PATTERN = re.compile(r"^\s*([a-z0-9_.]+)\s*(<=|>=|<|>)\s*([0-9.]+)\s*(ms|us|s|m|%)?\s*$")


@dataclass(frozen=True)
class Threshold:
    text: str
    metric: str
    op: str
    limit: float  # µs for latencies, a fraction for rates in %, a plain number otherwise


def parse(text: str) -> Threshold:
    match = _PATTERN.match(text.lower())
    if not match:
        raise PlanError(f"bad threshold {text!r}: use e.g. 'p99<50ms', 'errors<0.1%', 'rps>1000'")
    metric, op, number, unit = match.groups()
    metric = metric.replace("p99.9", "p99_9")
    base = metric.removeprefix("service_")
    if base in LATENCY_KEYS:
        if unit in (None, "%"):
            raise PlanError(f"bad threshold {text!r}: give a time unit (us, ms, s)")
        limit = float(number) if unit == "us" else parse_duration(number + unit) * 1_000_000
    elif metric in ("errors", "error_rate"):
        metric = "errors"
        limit = float(number) / 100 if unit == "%" else float(number)
        if unit != "%":
            metric = "error_count"
    elif metric in ("rps", "requests"):
        if unit:
            raise PlanError(f"bad threshold {text!r}: {metric} takes a plain number")
        limit = float(number)
    else:
        raise PlanError(f"bad threshold {text!r}: unknown metric {metric!r} "
                        "(p50 p75 p90 p99 p99.9 max mean, service_p99 …, errors, rps, requests)")
    return Threshold(text, metric, op, limit)


def observed(t: Threshold, summary: Summary) -> float:
    if t.metric == "errors":
        return summary.error_rate
    if t.metric == "error_count":
        return float(summary.error_count)
    if t.metric == "rps":
        return float(summary.rps)
    if t.metric == "requests":
        return float(summary.requests)
    if t.metric.startswith("service_"):
        return float((summary.service_us or summary.latency_us)[t.metric.removeprefix("service_")])
    return float(summary.latency_us[t.metric])


def evaluate(thresholds: list[Threshold], summary: Summary) -> list[dict]:
    results = []
    for t in thresholds:
        value = observed(t, summary)
        results.append({"threshold": t.text, "observed": value, "passed": OPS[t.op](value, t.limit)})
    return results
