"""The port wall in words, said once (pure): where the budget puts it, and the one sentence a summary
starts with when connect() found no free local port (EADDRNOTAVAIL).

A local run's pre-flight (twload.doctor.preflight), a distributed run's merge of its workers'
pre-flights (twload.distributed), and a report over a run folder whose summary lacks the sentence
(twload.report.numbers) all take their words from here, so a run at the wall reads the same
wherever it is read.
"""

from __future__ import annotations

WALL_ERROR = "EADDRNOTAVAIL"  # connect() found no free local port


def budget_phrase(ports: int, hold_s: float | None, found_at_start: int = 0) -> str:
    """The budget behind the wall. `hold_s`: how long a closed connection's port stays unusable (the
    client closes first); None: the client keeps no TIME_WAIT, so only open connections hold ports.
    `found_at_start`: client TIME_WAIT towards the target that earlier connections left."""
    phrase = (f"the budget: {ports} ports, each unusable for {hold_s:g} s after the client closes" if hold_s
              else f"the budget: {ports} ports, held while connections are open")
    if found_at_start:
        phrase += f", {found_at_start} of them in TIME_WAIT left by earlier connections at the start"
    return phrase


def pools_phrase(workers: int, pool_ports: list[int], sustainable_new_conn_per_s: float) -> str:
    """The budget of a run over several workers: '3 workers x 28,232 ports: the wall is at 1,412 new
    connections/s'. `pool_ports`: each pool of ports once (workers that share a host's ports share a pool)."""
    pools = len(pool_ports)
    who = f"{workers} worker{'s' if workers > 1 else ''}"
    if pools < workers:
        who += f" sharing {pools} port pool{'s' if pools > 1 else ''}"
    sizes = set(pool_ports)
    each = f" x {sizes.pop():,} ports" if len(sizes) == 1 else f", {sum(pool_ports):,} ports in all"
    return f"{who}{each}: the wall is at {sustainable_new_conn_per_s:,.0f} new connections/s"


def sentence(target: str, count: int, connections_opened: int, budget: str, at_s: float | None = None,
             walled: tuple[int, int] | None = None) -> str:
    """The summary's first line at the wall: when (`at_s`, the first EADDRNOTAVAIL), on how many workers
    (`walled`: (at the wall, in all), a distributed run), after how many connections, towards `target`
    ('host:port'), how many connects failed (`count`), and the budget (one of the phrases above)."""
    when = f" from {at_s:.2f}s" if at_s is not None else ""
    where = f" on {walled[0]} of {walled[1]} workers" if walled else ""
    return (f"At the port wall{when}{where}, after {connections_opened} connections: no free local port towards "
            f"{target} ({WALL_ERROR} x{count}); {budget}.")
