"""How many files a worker may open, against how many connections the plan gives it."""

from __future__ import annotations

import math
import resource

from twload.plan import Plan

FILES_BESIDES_SOCKETS = 64  # the worker's pipe, epoll/io_uring, stdio, the interpreter's own files


def files_per_worker(plan: Plan) -> int:
    """The most sockets one worker can have open at once, plus its other files."""
    shares = plan.worker_shares()
    if plan.stages and not plan.open_loop:
        most = math.ceil(max(s.target for s in plan.stages) / len(shares))
    else:
        most = max(conns for conns, _ in shares)
    return most + FILES_BESIDES_SOCKETS


def file_limit_problem(plan: Plan, hard_limit: int | None = None) -> str | None:
    """One line for the user when the workers cannot open the connections asked for, else None.

    Each worker raises its soft RLIMIT_NOFILE to the hard limit (worker.raise_file_limit); only
    root can raise the hard one.
    """
    if hard_limit is None:
        hard_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard_limit == resource.RLIM_INFINITY:
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


def raise_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (child processes inherit it); returns the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft
        return hard
    return soft
