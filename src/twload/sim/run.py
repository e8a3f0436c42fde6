"""Run a named scenario and explain its numbers (pure: parameters in, a dict out)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict

from twload.sim import kernels
from twload.sim.model import Params, Result, simulate
from twload.sim.scenarios import SCENARIOS, params_for


def paws_wrap(p: Params, extras: dict) -> Result:
    """A connection idle for d days, then a segment: does tcp_paws_check accept it?

    TSval moves by hz per second and wraps at 2^32, so after 2^31 ticks (24.86 days
    at 1 kHz) a newer value compares as older. include/net/tcp.h: tcp_paws_check
    stops comparing once ts_recent is TCP_PAWS_24DAYS old, which is just before that.
    """
    r = Result()
    day = 86400.0
    steps = int(extras["idle_days_max"] / extras["step_days"]) + 1
    ts_recent = 1_000_000
    for i in range(steps):
        idle_s = i * extras["step_days"] * day
        tsval = (ts_recent + int(idle_s * p.ts_hz)) & 0xFFFFFFFF
        r.attempted += 1
        if kernels.paws_check(ts_recent, 0.0, tsval, idle_s, kernels.PAWS_WINDOW):
            r.established += 1
            if kernels.s32(ts_recent - tsval) > kernels.PAWS_WINDOW:
                r.rules["TCP_PAWS_24DAYS: a ts_recent older than 24 days is not compared (tcp_paws_check)"] += 1
        else:
            r.failed["paws_reject"] += 1
            if r.first_failure_s is None:
                r.first_failure_s = idle_s
        if kernels.s32(ts_recent - tsval) > kernels.PAWS_WINDOW:
            r.syn_dropped["would_be_rejected_without_24day_rule"] += 1
    return r


def explain(name: str, p: Params, r: Result, extras: dict) -> list[str]:
    lines = []
    if name in ("client-close-exhaustion", "tw-reuse", "tw-reuse-lb-no-timestamps", "server-close", "rst-close"):
        sustainable = p.ports / kernels.TIME_WAIT_S
        lines.append(f"{p.ports} ports / 60 s TIME_WAIT = {sustainable:.1f} new connections/s with the client "
                     f"closing first and no reuse; the plan is {p.rate:g}/s per client.")
        if r.first_failure_s is not None:
            lines.append(f"the first connect failed after {r.first_failure_s:.1f} s "
                         f"(expected {p.ports / p.rate:.1f} s = ports / rate).")
    if name == "paws-wrap":
        lines.append(f"at {p.ts_hz} Hz TSval wraps its sign after {2**31 / p.ts_hz / 86400:.2f} days; "
                     f"{r.syn_dropped['would_be_rejected_without_24day_rule']} of {r.attempted} idle periods would "
                     "be rejected without the 24-day rule, and none is with it.")
    if name in ("nat-tw-recycle", "ts-offsets-4.10") and r.attempted:
        dropped = sum(r.syn_dropped.values())
        lines.append(f"{dropped} SYNs dropped for {r.attempted} connections attempted "
                     f"({100 * r.failed.get('connect_timeout', 0) / r.attempted:.1f}% never connected).")
    if name == "nat-timewait-collision" and r.attempted:
        lines.append(f"{sum(r.syn_dropped.values())} SYNs met a server TIME_WAIT; {r.retried} connections got through "
                     f"only after retransmission (mean extra delay {r.as_dict()['mean_extra_delay_s']:.2f} s), "
                     f"{r.failed.get('connect_timeout', 0)} timed out.")
    for rule, count in Counter(r.rules).most_common():
        lines.append(f"rule fired {count}x: {rule}")
    return lines


def run_scenario(name: str, overrides: dict[str, str], kernel: str | None = None, seed: int = 1,
                 trace: bool = False) -> dict:
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}: see `twload simulate list`")
    p, extras = params_for(name, overrides, kernel, seed)
    p.trace = trace
    result = paws_wrap(p, extras) if name == "paws-wrap" else simulate(p)
    out = result.as_dict()
    out["scenario"] = name
    out["kernel"] = p.kernel
    out["params"] = {k: v for k, v in asdict(p).items() if k != "trace"} | extras
    out["explanation"] = explain(name, p, result, extras)
    if trace:
        out["trace"] = result.trace
    return out
