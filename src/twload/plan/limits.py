"""How many files a worker may open, against how many connections the plan gives it (pure: the hard
limit is read by the caller, twload.engine.limits.hard_file_limit)."""

from __future__ import annotations

import math

from twload.plan.model import Plan

FILES_BESIDES_SOCKETS = 64  # the worker's pipe, epoll/io_uring, stdio, the interpreter's own files


def files_per_worker(plan: Plan) -> int:
    """The most sockets one worker can have open at once, plus its other files."""
    shares = plan.worker_shares()
    if plan.stages and not plan.open_loop:
        most = math.ceil(max(s.target for s in plan.stages) / len(shares))
    else:
        most = max(conns for conns, _ in shares)
    return most + FILES_BESIDES_SOCKETS


def file_limit_problem(plan: Plan, hard_limit: int | None) -> str | None:
    """One line for the user when the workers cannot open the connections asked for, else None.
    `hard_limit`: the hard RLIMIT_NOFILE (None: unlimited).

    Each worker raises its soft RLIMIT_NOFILE to the hard limit (engine/limits.py: raise_file_limit);
    only root can raise the hard one.
    """
    if hard_limit is None:
        return None
    need = files_per_worker(plan)
    if need <= hard_limit:
        return None
    workers = len(plan.worker_shares())
    total = need - FILES_BESIDES_SOCKETS
    asked = "--max-connections" if plan.open_loop else "-c"
    enough = math.ceil(total * workers / (hard_limit - FILES_BESIDES_SOCKETS))
    return (f"{asked} needs {need:,} open files in each of {workers} worker(s), but a process may open at most "
            f"{hard_limit:,} here (hard RLIMIT_NOFILE): use --workers {enough} or more, or raise the hard "
            f"limit (ulimit -Hn)")
