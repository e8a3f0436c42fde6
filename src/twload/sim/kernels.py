"""Per-kernel-version TCP rules the simulator follows, each with its source.

Version boundaries (Linux):
- 2.6.32: tcp_tw_recycle exists (net/ipv4/tcp_ipv4.c: tcp_v4_conn_request, per-peer
  timestamp check via inet_peer); no timestamp offsets (TSval = jiffies);
  TCP_TIMEOUT_INIT = 3 s (include/net/tcp.h); tcp_tw_reuse: tcp_twsk_unique allows
  reuse when get_seconds() - tw_ts_recent_stamp > 1.
- 3.1: TCP_TIMEOUT_INIT lowered to 1 s (RFC 6298; commit 9ad7c049f0f7).
- 4.10: random timestamp offset per connection (commit 95a22caee396, "tcp: randomize
  tcp timestamp offsets for each connection"), which breaks tw_recycle even
  without NAT.
- 4.11: offsets per (saddr, daddr) instead (commit 28ee1b746f49, "secure_seq:
  downgrade to per-host timestamp offsets").
- 4.12: tcp_tw_recycle removed (commit 4396e46187ca, "tcp: remove tcp_tw_recycle").
- 4.13: TCP timestamps at 1 kHz whatever HZ (commit 9a568de4818d, tcp_time_stamp
  in ms); before, jiffies (HZ 100..1000). We default to 1 kHz for every profile.
- 6.13: tcp_tw_reuse_delay (default 1000 ms) since the socket entered TIME_WAIT
  (tw_entry_stamp) replaces the 1 s since the last timestamp received.
- newest (measured on this machine's 6.18.44): net/core/secure_seq.c:
  secure_tcp_seq_and_ts_off hashes the whole 4-tuple (addresses and ports) for both
  the ISN and the timestamp offset, so each 4-tuple has its own offset.
- tcp_tw_reuse=2 ("loopback only") is the default on current kernels
  (Documentation/networking/ip-sysctl.rst); 0 on the old ones.
"""

from __future__ import annotations

from dataclasses import dataclass

NONE, PER_CONNECTION, PER_ADDRESS_PAIR, PER_4TUPLE = "none", "random-per-connection", "per-address-pair", "per-4-tuple"


@dataclass(frozen=True)
class KernelProfile:
    name: str
    ts_offsets: str
    has_tw_recycle: bool
    syn_rto_s: float  # first SYN retransmission timeout, doubling after
    reuse_rule: str  # "last-ts-1s" (before 6.13) or "entry-delay" (6.13+)
    tw_reuse_default: int
    rst_through_nat: bool  # does the NAT gateway pass the client's RST for a SYN_SENT flow


PROFILES = {
    "2.6.32": KernelProfile("2.6.32", NONE, True, 3.0, "last-ts-1s", 0, True),
    "4.4": KernelProfile("4.4", NONE, True, 1.0, "last-ts-1s", 0, True),
    "4.10": KernelProfile("4.10", PER_CONNECTION, True, 1.0, "last-ts-1s", 0, True),
    "4.11": KernelProfile("4.11", PER_ADDRESS_PAIR, True, 1.0, "last-ts-1s", 0, True),
    "4.12": KernelProfile("4.12", PER_ADDRESS_PAIR, False, 1.0, "last-ts-1s", 0, True),
    # 6.x = the kernel of these machines (6.18): measured in the lab. Its conntrack drops
    # the client's RST for a flow still in SYN_SENT, so a SYN answered with an ACK by a
    # server-side TIME_WAIT is retried until that TIME_WAIT ends (lab: connects hang).
    "6.x": KernelProfile("6.x", PER_4TUPLE, False, 1.0, "entry-delay", 2, False),
}

TIME_WAIT_S = 60.0  # TCP_TIMEWAIT_LEN, include/net/tcp.h
PAWS_MSL_S = 60.0  # TCP_PAWS_MSL, include/net/tcp.h
PAWS_WINDOW = 1  # TCP_PAWS_WINDOW, include/net/tcp.h
PAWS_24DAYS_S = 60 * 60 * 24 * 24  # TCP_PAWS_24DAYS, include/net/tcp.h
SYN_RETRIES = 6  # net.ipv4.tcp_syn_retries default
RTO_MIN_S = 0.2  # TCP_RTO_MIN
RECYCLE_TW_S = 3.5 * RTO_MIN_S  # tcp_time_wait with recycle: rto = (icsk_rto << 2) - (icsk_rto >> 1)


def s32(x: int) -> int:
    """(s32) cast of a 32-bit difference, as the kernel's before()/after() use."""
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x


def paws_check(ts_recent: int, ts_recent_stamp_s: float, tsval: int, now_s: float, window: int) -> bool:
    """include/net/tcp.h: tcp_paws_check — True when the segment's timestamp is acceptable."""
    if s32(ts_recent - tsval) <= window:
        return True
    if now_s >= ts_recent_stamp_s + PAWS_24DAYS_S:  # ts_recent too old to compare: 24-day rule
        return True
    return not ts_recent  # no timestamp recorded yet


def reuse_allowed(profile: KernelProfile, tw_reuse: int, loopback: bool, ts_seen: bool, entered_s: float,
                  last_ts_recv_s: float, now_s: float, delay_ms: int) -> bool:
    """net/ipv4/tcp_ipv4.c: tcp_twsk_unique — may connect() take over this TIME_WAIT 4-tuple?"""
    if tw_reuse == 0 or (tw_reuse == 2 and not loopback) or not ts_seen:
        return False
    if profile.reuse_rule == "entry-delay":  # 6.13+: tw_entry_stamp + tcp_tw_reuse_delay
        return now_s * 1000 > entered_s * 1000 + delay_ms
    return int(now_s) - int(last_ts_recv_s) > 1  # before 6.13: get_seconds() - tw_ts_recent_stamp > 1
