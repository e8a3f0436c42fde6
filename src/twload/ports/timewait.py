"""Which client TIME_WAIT sockets towards the target are the run's own, and which it found.

Pure: readings in, counts out. A run towards a port that an earlier run used finds that run's
TIME_WAIT sockets still there (60 s), and connect() may take them over (tcp_tw_reuse). Counted
towards the destination alone, they would read as the new run's own: a `--close server` run
right after a `--close fin` run would seem to leave client TIME_WAIT, the opposite of the truth.

What tells them apart is when each socket entered TIME_WAIT. The kernel arms the socket's timer
then, for TCP_TIMEWAIT_LEN = 60 s (include/net/tcp.h), as `jiffies + timeo` (net/ipv4/
inet_timewait_sock.c: __inet_twsk_schedule via inet_twsk_schedule, from tcp_time_wait; Linux
4.1-6.x), and sock_diag reports the time left on it (twload.kernel.sockdiag). So a socket read
with `left` ms remaining entered TIME_WAIT 60,000 - left ms before the reading: whole jiffies,
so a reading is right to one jiffy (10 ms at the coarsest HZ=100; 4 ms at HZ=250).

Once due, the timer still fires late: a 60 s timer sits in a coarse level of the timer wheel
(kernel/time/timer.c, Linux 4.8+: LVL_CLK_SHIFT 3, 64 slots a level) whose granularity it may
wait out: 512 jiffies at HZ=250 (2.048 s; TIME_WAIT sockets were seen here to vanish 60.05-62 s
after close), 4,096 ms at HZ=1000, 5,120 ms at HZ=100. Meanwhile the socket is still there and its
time left reads 0, which dates it only to "60 to 65 s ago": such a socket counts as the run's own
only once none found at the start can still be waiting.

A socket's timer is re-armed (mod_timer_pending, the `rearm` case of __inet_twsk_schedule) when
the peer retransmits its FIN; such a socket would then read as newer than it is. Rare, and only
on a lossy path.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

TIME_WAIT_MS = 60_000  # TCP_TIMEWAIT_LEN, include/net/tcp.h
JIFFY_MS = 10  # the coarsest jiffy (HZ=100): a time left is this close to the truth
TIMER_SLACK_MS = 5_120  # the latest a due TIME_WAIT timer fires, over HZ=100/250/300/1000 (see above)


@dataclass(frozen=True)
class Found:
    """The client sockets towards the target at the run's start, before its first connection."""

    begun_s: float  # time.monotonic() when the reading began: each time left counts from after it
    at_s: float  # time.monotonic() when the reading was complete
    time_wait: int  # TIME_WAIT sockets towards the target: left by earlier connections
    ports_in_use: int  # every client socket towards the target, all states but LISTEN
    left_ms: tuple[int, ...] | None  # each TIME_WAIT socket's time left, sorted; None: not readable here
    closing: int = 0  # client sockets closed first and still closing (FIN_WAIT1, FIN_WAIT2, CLOSING)


def found(begun_s: float, at_s: float, time_wait: int, ports_in_use: int, left_ms: Iterable[int] | None,
          closing: int = 0) -> Found:
    return Found(begun_s, at_s, time_wait, ports_in_use, None if left_ms is None else tuple(sorted(left_ms)),
                 closing)


@dataclass(frozen=True)
class Split:
    """One reading during the run: its TIME_WAIT sockets towards the target, told apart."""

    own: int  # entered TIME_WAIT after the run started: the run's own
    found: int  # those found at the start, still held
    reused: int  # found at the start, gone before their 60 s ran out: taken over by connect()


def split(start: Found, at_s: float, left_ms: Iterable[int]) -> Split:
    """Tell apart the TIME_WAIT sockets of a reading begun at `at_s` (time.monotonic(), before it).

    A socket found at the start entered TIME_WAIT before start.at_s, so it reads as having entered
    before start.at_s + one jiffy; the run's own entered after its first connection closed, later
    than that by the workers' start-up at least.
    """
    start_left = start.left_ms or ()
    since_ms = (at_s - start.at_s) * 1000.0
    own_from = TIME_WAIT_MS - since_ms + JIFFY_MS  # time left of a socket that entered after the start
    due_are_own = since_ms > TIME_WAIT_MS + TIMER_SLACK_MS + JIFFY_MS  # every found one has gone by now
    own = found_live = found_due = 0
    for left in left_ms:
        if left == 0:
            if due_are_own:
                own += 1
            else:
                found_due += 1
        elif left >= own_from:
            own += 1
        else:
            found_live += 1
    # Found sockets whose timer has not run out yet are there unless a connect() took their 4-tuple
    # over (net/ipv4/inet_hashtables.c: __inet_check_established, counted as TcpExtTWRecycled); a
    # timer never fires early. (One that runs out while this reading is taken may count as reused.)
    due_by = (at_s - start.begun_s) * 1000.0 + JIFFY_MS
    not_due = len(start_left) - bisect.bisect_right(start_left, due_by)
    return Split(own=own, found=found_live + found_due, reused=max(0, not_due - found_live))
