"""What the run should be doing at time t: a constant rate or connection count, or k6-style stages.

Pure. `--stages "30s:100,1m:1000,30s:0"` ramps linearly from the previous stage's
target (0 before the first) to each stage's target over its duration. In open loop
the value is requests per second and Schedule.next_send() walks the intended send
times (wrk2 / vegeta: they never depend on responses); in closed loop it is the
number of connections.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from twload.plan.errors import PlanError


@dataclass(frozen=True)
class Stage:
    duration_s: float
    target: float


def parse_stages(text: str, parse_duration: Callable[[str], float]) -> tuple[Stage, ...]:
    stages = []
    for item in (part.strip() for part in text.split(",")):
        duration, sep, target = item.partition(":")
        if not sep:
            raise PlanError(f"bad stage {item!r}: use DURATION:TARGET, e.g. 30s:100")
        try:
            value = float(target)
        except ValueError:
            raise PlanError(f"bad stage {item!r}: target must be a number") from None
        if value < 0:
            raise PlanError(f"bad stage {item!r}: target must not be negative")
        stages.append(Stage(parse_duration(duration), value))
    if not stages:
        raise PlanError("--stages: no stage given")
    return tuple(stages)


def worker_part(total: float, workers: int, index: int) -> int:
    """Worker `index`'s whole connections of a staged `total` shared by `workers`: the parts add up
    to the total rounded half up (each worker rounding its own fraction lost them: 1 connection over
    2 workers was 0.5 each, rounded to 0 by both, and the run sent nothing)."""
    whole = math.floor(total + 0.5)
    return whole // workers + (1 if index < whole % workers else 0)


class Schedule:
    """value(t) for t in seconds since the start; `share` scales it to one worker."""

    MIN_RATE = 1e-6

    def __init__(self, stages: tuple[Stage, ...], share: float = 1.0, ramp_from_zero: bool = True) -> None:
        self.stages = stages
        self.share = share
        self.start_value = 0.0 if ramp_from_zero else stages[0].target
        self.total_s = sum(s.duration_s for s in stages)

    @classmethod
    def constant(cls, value: float, duration_s: float | None, share: float = 1.0) -> Schedule:
        """A flat plan: `value` from the first instant (no ramp), for duration_s (None: until stopped)."""
        return cls((Stage(duration_s or float("inf"), value),), share, ramp_from_zero=False)

    def value(self, t: float) -> float:
        start, previous = 0.0, self.start_value
        for stage in self.stages:
            if t < start + stage.duration_s:
                fraction = (t - start) / stage.duration_s if stage.duration_s != float("inf") else 1.0
                return (previous + (stage.target - previous) * fraction) * self.share
            start += stage.duration_s
            previous = stage.target
        return 0.0

    def planned_requests(self) -> float:
        """The integral of the rate over the whole plan (open loop)."""
        total, previous = 0.0, self.start_value
        for stage in self.stages:
            total += (previous + stage.target) / 2 * stage.duration_s
            previous = stage.target
        return total * self.share

    def send_time(self, k: int) -> float | None:
        """When request k (0, 1, 2, …) is due: where the planned count N(t) = ∫rate reaches k.

        Exact for constant rates and linear ramps (N is piecewise quadratic), so latency
        measured from these times is free of coordinated omission and of rounding drift.
        None once the plan is over.
        """
        done, previous, start = 0.0, self.start_value * self.share, 0.0
        for stage in self.stages:
            a, end = previous, stage.target * self.share
            d = stage.duration_s
            if d == float("inf"):
                return start + (k - done) / a if a > self.MIN_RATE else None
            in_stage = (a + end) / 2 * d
            if k < done + in_stage or (k == done and a > self.MIN_RATE):
                delta = k - done
                b = (end - a) / d
                if abs(b) < 1e-12:
                    tau = delta / a
                else:
                    tau = (-a + math.sqrt(max(0.0, a * a + 2 * b * delta))) / b
                return start + min(tau, d)
            done += in_stage
            previous, start = end, start + d
        return None
