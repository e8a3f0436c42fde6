"""The process's file limit: read for the plan's check (twload.plan.limits), raised by each worker."""

from __future__ import annotations

import resource


def hard_file_limit() -> int | None:
    """The hard RLIMIT_NOFILE, the most a worker can raise its own to; None: unlimited."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return None if hard == resource.RLIM_INFINITY else hard


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
