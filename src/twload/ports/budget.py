"""Port-budget arithmetic: how many new connections per second a client can sustain.

Pure: plain values in, plain values out. The kernel rules behind it:

- A connection's local port is free again once no socket with the same 4-tuple
  exists; connect() picks among ip_local_port_range less ip_local_reserved_ports,
  per (source address, destination address:port), because uniqueness is per
  4-tuple (net/ipv4/inet_hashtables.c: __inet_hash_connect, __inet_check_established).
- The side that closes first keeps the 4-tuple in TIME_WAIT for TCP_TIMEWAIT_LEN =
  60 s (include/net/tcp.h); tcp_fin_timeout does not change that (it is FIN_WAIT2's).
- connect() may take over a TIME_WAIT 4-tuple when tcp_twsk_unique allows it
  (net/ipv4/tcp_ipv4.c): tcp_tw_reuse=1, or 2 (the current default, "loopback
  traffic only", Documentation/networking/ip-sysctl.rst) with a loopback address;
  only when timestamps were seen on the old connection (tw_ts_recent_stamp != 0);
  and only once tcp_tw_reuse_delay ms (6.13+, default 1000) have passed since it
  entered TIME_WAIT (tw_entry_stamp), or before 6.13, more than 1 s since the last
  timestamp received (ktime_get_seconds() - tw_ts_recent_stamp > 1).
- tcp_max_tw_buckets caps TIME_WAIT sockets per namespace; beyond it none is
  created (net/ipv4/inet_timewait_sock.c: inet_twsk_alloc returns NULL, counted as
  TCPTimeWaitOverflow by net/ipv4/tcp_minisocks.c: tcp_time_wait) and the port is
  free at once.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

TIME_WAIT_S = 60.0  # TCP_TIMEWAIT_LEN, include/net/tcp.h
DEFAULT_REUSE_DELAY_S = 1.0


@dataclass(frozen=True)
class BudgetInput:
    ports: int  # usable ephemeral ports per (source address, destination)
    close: str  # keepalive | fin | server | rst
    connections: int = 1  # open at once; each holds a port while open
    rate: float | None = None  # planned new connections per second, when known
    sources: int = 1
    destinations: int = 1
    tw_reuse: int = 0
    reuse_delay_ms: int | None = None  # None: the kernel has no tcp_tw_reuse_delay (before 6.13)
    timestamps: bool | None = True  # negotiated with the target; None: unknown
    loopback: bool = False
    max_tw_buckets: int = 262144
    in_use: int = 0  # ports already taken towards this destination (e.g. earlier TIME_WAIT)


@dataclass(frozen=True)
class Budget:
    ports: int  # total over every (source, destination) pair
    client_holds_time_wait: bool
    reuse_applies: bool
    reuse_after_s: float  # how long a closed connection's port stays unusable
    tw_bucket_capped: bool  # tcp_max_tw_buckets keeps TIME_WAIT below what would exhaust the ports
    sustainable_new_conn_per_s: float | None  # None: ports do not limit the rate
    exhausted_after_s: float | None  # at the planned rate; None: never (or rate unknown)
    exhausted_at_connection: int | None  # the first connection that will not get a port

    def as_dict(self) -> dict:
        return asdict(self)


def reuse_applies(tw_reuse: int, timestamps: bool | None, loopback: bool) -> bool:
    """tcp_twsk_unique: reuse needs the sysctl (2: loopback only) and timestamps on the old connection."""
    if not timestamps:
        return False
    return tw_reuse == 1 or (tw_reuse == 2 and loopback)


def compute(b: BudgetInput) -> Budget:
    total = b.ports * b.sources * b.destinations
    available = max(0, total - b.in_use)
    holds = b.close == "fin"  # keepalive closes once at the end; server and rst leave none here
    reuse = holds and reuse_applies(b.tw_reuse, b.timestamps, b.loopback)
    if not holds:
        hold_s = 0.0
    elif reuse:
        hold_s = (b.reuse_delay_ms / 1000.0) if b.reuse_delay_ms else DEFAULT_REUSE_DELAY_S
    else:
        hold_s = TIME_WAIT_S
    # Ports a steady stream keeps in TIME_WAIT can never exceed the bucket limit.
    capped = holds and b.max_tw_buckets + b.connections < available
    if not holds or capped:
        sustainable = None
    else:
        sustainable = max(0, available - b.connections) / hold_s
    exhausted_after = None
    if sustainable is not None and b.rate and b.rate > sustainable:
        # A planned rate is an open loop: every connection it opens takes a new port (open, then in
        # TIME_WAIT), so the ports last available / rate seconds; -c there only bounds the pool and
        # holds no port of its own (the closed loop's -c open connections are in `sustainable`).
        exhausted_after = available / b.rate
    at_connection = available + 1 if holds and not capped and not reuse else None
    return Budget(
        ports=total,
        client_holds_time_wait=holds,
        reuse_applies=reuse,
        reuse_after_s=hold_s if holds else 0.0,
        tw_bucket_capped=capped,
        sustainable_new_conn_per_s=sustainable,
        exhausted_after_s=exhausted_after,
        exhausted_at_connection=at_connection,
    )


def runs_out(b: Budget, requests: int | None) -> bool:
    """True when a run of `requests` connections' worth (None: until its time is up) needs more ports
    than there are, with no reuse to save it."""
    if b.exhausted_at_connection is None:
        return False
    return requests is None or requests >= b.exhausted_at_connection


def sources_needed(rate: float, ports: int, hold_s: float = TIME_WAIT_S) -> int:
    """Source addresses needed to sustain `rate` new connections/s with the client closing first."""
    if ports <= 0:
        return 0
    needed = max(1, math.ceil(rate * hold_s / ports))
    while rate > needed * ports / hold_s:  # float rounding at the boundary
        needed += 1
    return needed
