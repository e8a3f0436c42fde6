"""Splitting a Plan over Dask workers, and merging their pre-flights (pure: plain values in and out).

Each Dask worker gets its own Plan (a shard): its part of the connections, the request
budget, the rate or the stages, and of --max-connections; the --source addresses are
dealt out so that each address belongs to exactly one worker (a shared address would
share its ports, and the budget would count them twice).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from twload.plan import Plan, PlanError
from twload.plan.schedule import Stage
from twload.ports import wall


@dataclass(frozen=True)
class WorkerSlot:
    """A Dask worker as the scheduler lists it."""

    address: str
    host: str
    nthreads: int


@dataclass(frozen=True)
class Shard:
    index: int
    worker: WorkerSlot
    plan: Plan


def _part(total: int, parts: int, i: int) -> int:
    return total // parts + (1 if i < total % parts else 0)


def split(plan: Plan, slots: list[WorkerSlot], processes_per_worker: int | None = None) -> list[Shard]:
    """One shard per Dask worker (fewer when there is less to share than workers).

    processes_per_worker: engine processes each Dask worker runs (-w); None: as many as the
    Dask worker has threads (a LocalCluster's workers have one each).
    """
    if not slots:
        raise PlanError("the Dask cluster has no workers")
    if plan.targets_spool is not None:  # engine/spool.py: its records are on this host's disk only
        raise PlanError("--cluster / --scheduler: a request file this large is streamed from this host's disk; "
                        "run it on one host, or split it into files of fewer targets")
    scheduled = plan.open_loop or bool(plan.stages)
    pool = plan.max_connections if scheduled else plan.connections
    count = min(len(slots), pool, plan.requests or pool)
    if plan.sources:
        if len(plan.sources) < count:
            raise PlanError(f"--source gives {len(plan.sources)} address(es) for {count} Dask workers: give at least "
                            "one per worker, or none (each worker then connects from its host's own address)")
    if plan.destinations and not scheduled and plan.connections // count < len(plan.destinations):
        raise PlanError(f"-c {plan.connections} over {count} Dask workers leaves a worker fewer connections than the "
                        f"{len(plan.destinations)} destinations (host:port) of the targets; each needs one at least "
                        "on every worker: raise -c")
    if plan.destinations and scheduled and plan.max_connections // count < len(plan.destinations):
        raise PlanError(f"--max-connections {plan.max_connections} over {count} Dask workers leaves a worker fewer "
                        f"than the {len(plan.destinations)} destinations (host:port) of the targets: raise it")
    shards = []
    for i, slot in enumerate(slots[:count]):
        processes = processes_per_worker or max(1, slot.nthreads)
        shards.append(Shard(i, slot, replace(
            plan,
            connections=max(1, _part(plan.connections, count, i)),
            requests=None if plan.requests is None else _part(plan.requests, count, i),
            rate=None if plan.rate is None else plan.rate / count,
            stages=tuple(Stage(s.duration_s, s.target / count) for s in plan.stages),
            max_connections=max(1, _part(plan.max_connections, count, i)),
            workers=processes,
            sources=plan.sources[i::count],
        )))
    return numbered(shards)


def numbered(shards: list[Shard]) -> list[Shard]:
    """Each shard's engine processes numbered after the earlier shards' (a request file's {{seq}} is the
    k-th request of process w of W in all: k * W + w, so no two processes of the run send the same value)."""
    counts = [len(s.plan.worker_shares()) for s in shards]
    total = sum(counts)
    return [replace(s, plan=replace(s.plan, worker_base=sum(counts[:i]), worker_total=total))
            for i, s in enumerate(shards)]


def port_pools(preflights: list[dict]) -> list[dict]:
    """One pre-flight per pool of ports: workers in one network namespace of one host, connecting
    from the same addresses, draw on the same ports (uniqueness is per 4-tuple), so count them once."""
    pools: dict[tuple, dict] = {}
    for p in preflights:
        pools.setdefault((p["netns"], tuple(p["sources"])), p)
    return list(pools.values())


def merged_budget(preflights: list[dict]) -> dict:
    """The run's port budget: each pool of ports once, with its own TIME_WAIT (its worker's pre-flight)."""
    budgets = [p["budget"] for p in port_pools(preflights)]
    sustainable = [b["sustainable_new_conn_per_s"] for b in budgets]
    exhausted = [b["exhausted_at_connection"] for b in budgets]
    return {
        "ports": sum(b["ports"] for b in budgets),
        "reuse_after_s": max(b["reuse_after_s"] for b in budgets),
        "sustainable_new_conn_per_s": None if None in sustainable else sum(sustainable),
        # the run's first failing connection: every pool's free ports used up (None: one never runs out)
        "exhausted_at_connection": None if None in exhausted else sum(e - 1 for e in exhausted) + 1,
    }


def wall_line(preflights: list[dict]) -> str | None:
    """'3 workers x 28,232 ports: the wall is at 1,411 new connections/s' (None: ports set no wall)."""
    merged = merged_budget(preflights)
    if merged["sustainable_new_conn_per_s"] is None:
        return None
    pool_ports = [p["budget"]["ports"] for p in port_pools(preflights)]
    return wall.pools_phrase(len(preflights), pool_ports, merged["sustainable_new_conn_per_s"])
