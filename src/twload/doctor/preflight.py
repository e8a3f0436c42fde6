"""The pre-flight (pure): the plan and the facts gathered before the run in, one Preflight out.

The facts are gathered first by adapters (twload.engine.preflight.gather_facts: the probe
connection's TCP_INFO, the sysctls, the client sockets already held towards the target); nothing
here does I/O. The Preflight is the doctor's rules applied to the run's plan: the port budget,
the warning when ports will run out, where the wall is, the advice for a run that meets it, and
one line that says it. `twload run` warns with it and writes it into plan.json and summary.json,
each Dask shard reports it, and the report reads what it wrote: one budget for all of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from twload.doctor import rules
from twload.plan import Plan, is_loopback
from twload.plan.schedule import Stage
from twload.plan.targets import split_connections
from twload.ports import budget, wall
from twload.ports.facts import KernelFacts
from twload.ports.timewait import Found


@dataclass(frozen=True)
class Facts:
    """What the adapters read before the run, as plain values."""

    kernel: KernelFacts
    target_timestamps: bool | None  # negotiated on the probe connection (TCP_INFO); None: not known
    start: Found | None = None  # client sockets towards the target before the first connection; None: not read
    listeners_in_range: int = 0  # listening sockets on ephemeral ports (a Dask worker's own): connect() skips them
    # targets on several destinations (plan.destinations): each one's facts, in that order (its probe, its
    # sockets at the start; the kernel's are the same)
    destinations: tuple[Facts, ...] = ()

    @property
    def time_wait_at_start(self) -> int:
        return self.start.time_wait if self.start else 0

    @property
    def ports_in_use_at_start(self) -> int:
        return self.start.ports_in_use if self.start else 0

    @property
    def in_use(self) -> int:
        """Ports the run cannot have at its start: held towards the target, or reserved by a listener."""
        return self.ports_in_use_at_start + self.listeners_in_range


@dataclass(frozen=True)
class Preflight:
    """The pre-flight's verdict on a plan, built by `preflight` only."""

    target: str  # 'address:port', as the lines name it
    facts: Facts
    budget: budget.Budget
    runs_out: bool  # the plan opens more connections than there are ports, and nothing reuses them
    warnings: tuple[str, ...]  # each a short paragraph, its first line the sentence
    wall: str  # where the budget puts the wall (twload.ports.wall.budget_phrase)
    advice: tuple[str, ...]  # what the doctor says about ports, for a run that meets the wall
    sentence: str  # the pre-flight in one line
    # targets on several destinations: each one's own pre-flight, over its part of the connections (a port
    # budget per destination address:port: connect() picks ports per 4-tuple, see ports/budget.py)
    destinations: tuple[Preflight, ...] = ()
    connections: int = 0  # the connections this pre-flight's budget holds open (plan.connections, or a part)

    def destination_block(self) -> dict:
        """One destination's pre-flight, as plan.json's `preflight.destinations` and summary.json's
        `destinations` rows hold it."""
        return {"connections": self.connections, "budget": self.budget_block(), "wall": self.wall,
                "target_timestamps": self.facts.target_timestamps,
                "time_wait_at_start": self.facts.time_wait_at_start}

    def budget_block(self) -> dict:
        """The budget as plan.json and summary.json hold it under `budget` (an interface: keys never change)."""
        b = self.budget
        return {
            "ports": b.ports,
            "reuse_after_s": b.reuse_after_s,
            "sustainable_new_conn_per_s": b.sustainable_new_conn_per_s,
            "exhausted_at_connection": b.exhausted_at_connection,
            "exhausted_after_s": b.exhausted_after_s,  # at a planned rate (open loop); the report draws it
        }

    def plan_block(self) -> dict:
        """plan.json's `preflight`."""
        block: dict = {"target_timestamps": self.facts.target_timestamps, "budget": self.budget_block(),
                       "time_wait_at_start": self.facts.time_wait_at_start,
                       "ports_in_use_at_start": self.facts.ports_in_use_at_start}
        if self.warnings:
            block["warnings"] = list(self.warnings)
        if self.destinations:
            block["destinations"] = [{"destination": d.target, **d.destination_block()} for d in self.destinations]
        return block

    def summary_block(self, errors: Mapping[str, int], connections_opened: int, wall_at_s: float | None) -> dict:
        """The keys summary.json takes from the pre-flight: `target_timestamps` and `budget`; at the port wall
        (EADDRNOTAVAIL in `errors`; `wall_at_s`: the first one) also `wall`, the sentence, and `advice`."""
        block: dict = {"target_timestamps": self.facts.target_timestamps, "budget": self.budget_block()}
        if wall.WALL_ERROR in errors:
            block["wall"] = wall.sentence(self.target, errors[wall.WALL_ERROR], connections_opened, self.wall,
                                          wall_at_s)
            block["advice"] = list(self.advice)
        return block

    def worker_block(self) -> dict:
        """A Dask shard's pre-flight, as its ShardReady detail carries it (twload.distributed.messages)."""
        k = self.facts.kernel
        block = {
            "port_range": f"{k.port_low}-{k.port_high}",
            "tcp_tw_reuse": k.tcp_tw_reuse,
            "tcp_timestamps": k.tcp_timestamps,
            "target_timestamps": self.facts.target_timestamps,
            "time_wait_held": self.facts.ports_in_use_at_start,
            "listeners_in_range": self.facts.listeners_in_range,
            "budget": self.budget_block(),
        }
        if self.warnings:
            block["warning"] = self.warnings[0]
        return block


def doctor_view(plan: Plan, facts: Facts) -> tuple[rules.TargetFacts, rules.DoctorPlan]:
    """The run's plan as the doctor's facts: the budget, the warning, the live line and the advice all
    come from rules.budget_input over these, so their numbers agree."""
    target = rules.TargetFacts(plan.target.address[0], plan.target.port, is_loopback(plan.target),
                               timestamps=facts.target_timestamps)
    per_connection = plan.per_connection or 1
    rate = plan.rate / per_connection if plan.rate and plan.close != "keepalive" else None  # new connections/s
    if plan.http2 and plan.per_connection is None:
        rate = None  # the streams share the -c connections for the whole run: none are opened per request
    return target, rules.DoctorPlan(close=plan.close, rate=rate, connections=plan.connections,
                                    sources=max(1, len(plan.sources)), in_use=facts.in_use)


def connections_needed(plan: Plan) -> int | None:
    """The connections a run opens (None: as many as its time allows): over HTTP/1.1 one a request of
    --requests (the budget's worst case); with --http2 one per --requests-per-connection streams, or
    without it the pool alone (-c, or --max-connections in the open loop), each kept for the whole run."""
    if not plan.http2:
        return plan.requests
    if plan.per_connection is None:
        return plan.max_connections if plan.open_loop else plan.connections
    return None if plan.requests is None else -(-plan.requests // plan.per_connection)


def warning(target: str, b: budget.Budget, facts: Facts) -> str:
    """Ports will run out: why, how many are free, which connection fails, and what to change."""
    why = (f"tcp_tw_reuse={facts.kernel.tcp_tw_reuse}"
           + ("" if facts.target_timestamps else ", and the target does not negotiate TCP timestamps"))
    free = (b.exhausted_at_connection or 1) - 1
    in_use = facts.in_use
    held = f" ({in_use} of {b.ports} still held from before, freed within 60 s)" if in_use else f" (of {b.ports})"
    # short lines, each a whole statement, so the warning reads the same at 80 columns and in a log
    return "\n".join([
        f"pre-flight: ports towards {target} will run out.",
        "  --close fin leaves each port in TIME_WAIT for 60 s and nothing reuses it:",
        f"  {why}.",
        f"  {free} ports are free{held},",
        f"  so connection {b.exhausted_at_connection} within 60 s fails with EADDRNOTAVAIL",
        f"  (sustainable: {b.sustainable_new_conn_per_s:.0f} new connections/s).",
        "  Use --close server or --close rst, or more source addresses.",
    ])


def preflight(plan: Plan, facts: Facts) -> Preflight:
    """The pre-flight of `plan` on a host with `facts`: the one place its budget, warning, wall and advice
    are decided."""
    target = f"{plan.target.address[0]}:{plan.target.port}"
    # the doctor's view first (its budget's inputs, its advice), then the arithmetic, then the words
    doctor_target, doctor_plan = doctor_view(plan, facts)
    inputs = rules.budget_input(facts.kernel, doctor_target, doctor_plan)
    advice = rules.advice(rules.diagnose(facts.kernel, doctor_target, doctor_plan), plan.close,
                          facts.time_wait_at_start)
    b = budget.compute(inputs)
    out = budget.runs_out(b, connections_needed(plan))
    phrase = wall.budget_phrase(b.ports, b.reuse_after_s if b.client_holds_time_wait else None,
                                facts.time_wait_at_start)
    warnings: tuple[str, ...] = (warning(target, b, facts),) if out else ()
    if warnings:
        sentence = warnings[0].splitlines()[0]
    else:
        sentence = f"pre-flight: towards {target}, {phrase}"
        if b.sustainable_new_conn_per_s is not None:
            sentence += f"; at most {b.sustainable_new_conn_per_s:,.0f} new connections/s"
    each = destinations(plan, facts)
    if each:  # the run's ports are each destination's: their warnings, not the first one's over every connection
        out = any(d.runs_out for d in each)
        warnings = tuple(w for d in each for w in d.warnings)
    return Preflight(target, facts, b, out, warnings, phrase, tuple(advice), sentence, each, plan.connections)


def destinations(plan: Plan, facts: Facts) -> tuple[Preflight, ...]:
    """Targets on several destinations: a pre-flight for each, over the connections its slots hold (the
    run's split by the destinations' weights, plan/targets.py split_connections)."""
    if not plan.destinations or len(facts.destinations) != len(plan.destinations):
        return ()
    weights = plan.destination_weights or (1,) * len(plan.destinations)
    if plan.open_loop:  # each its share of the rate (the weights' cycle) and of --max-connections
        whole = sum(weights)
        parts = split_connections(weights, plan.max_connections)
        return tuple(preflight(replace(
            plan, target=d, destinations=(), destination_weights=(), max_connections=n, connections=n,
            rate=None if plan.rate is None else plan.rate * w / whole,
            stages=tuple(Stage(s.duration_s, s.target * w / whole) for s in plan.stages)), f)
            for d, n, w, f in zip(plan.destinations, parts, weights, facts.destinations, strict=True))
    total = plan.connections
    if plan.stages:
        total = max(total, int(max(s.target for s in plan.stages) + 0.5))
    parts = split_connections(weights, total)
    return tuple(preflight(replace(plan, target=d, destinations=(), destination_weights=(), connections=n), f)
                 for d, n, f in zip(plan.destinations, parts, facts.destinations, strict=True))
