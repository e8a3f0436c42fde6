"""A deterministic model of short TCP connections: ports, TIME_WAIT, PAWS, tw_reuse, tw_recycle, NAT.

Pure Python, no I/O, seeded. Each connection attempt is one event; the SYN's fate
is decided by the kernel rules of sim.kernels at the moment it arrives, and the
rest of its life (handshake, one request, close by the chosen strategy) follows
from the RTT, so that a million connections stay cheap. SYN retransmissions are
events of their own. Results stream into counters; no connection is kept after
it is decided, only the ports and TIME_WAIT entries the kernel would keep.

Simplifications, named: ports are handed out in sequence (consecutive connect()
calls continue after the last port chosen, as the kernel's table_perturb makes
them, net/ipv4/inet_hashtables.c: __inet_hash_connect) without the even-ports-first
order; one request per connection; a constant RTT.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twload.sim import kernels
from twload.sim.kernels import PER_4TUPLE, PER_ADDRESS_PAIR, PER_CONNECTION, KernelProfile, s32
from twload.sim.nat import NatGateway

SERVER_IP = "198.51.100.80"  # documentation prefix: nothing here is ever sent anywhere
SERVER_PORT = 80

# (held port entry, now) -> may connect() take that TIME_WAIT port over
ReuseCheck = Callable[[tuple, float], bool]


@dataclass
class Params:
    kernel: str = "6.x"
    ports: int = 28232  # client ephemeral range size
    rate: float = 100.0  # new connections per second, per client
    duration: float = 60.0  # simulated seconds of connection attempts
    clients: int = 1
    nat: bool = False
    nat_ports: int = 28232
    nat_policy: str = "sequential"  # keep | sequential | random
    close: str = "fin"  # fin | server | rst
    server_timestamps: bool = True
    client_timestamps: bool = True
    tw_reuse: int | None = None  # None: the kernel's default
    tw_reuse_delay_ms: int = 1000
    tw_recycle: bool = False  # on the server (kernels that have it)
    loopback: bool = False
    rtt_ms: float = 1.0
    ts_hz: int = 1000
    clock_spread_s: float = 3600.0  # client clocks start at random uptimes within this span
    connect_timeout: float = 10.0
    seed: int = 1
    trace: bool = False


@dataclass
class Result:
    attempted: int = 0
    established: int = 0
    failed: Counter = field(default_factory=Counter)
    syn_dropped: Counter = field(default_factory=Counter)
    time_wait_peak: Counter = field(default_factory=Counter)
    first_failure_s: float | None = None
    retried: int = 0  # connections established only after SYN retransmission
    extra_delay_s: float = 0.0  # total added time to establish
    max_delay_s: float = 0.0
    tw_reused: int = 0  # TIME_WAIT ports taken over by connect() (TcpExtTWRecycled)
    first_reuse_s: float | None = None
    tw_killed_by_syn: int = 0  # server TIME_WAIT taken over by a new SYN
    rules: Counter = field(default_factory=Counter)  # rule -> times it decided something
    established_by_host: Counter = field(default_factory=Counter)
    syn_accepted: int = 0  # the server answered with SYN-ACK
    trace: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "attempted": self.attempted,
            "established": self.established,
            "failed": dict(sorted(self.failed.items())),
            "syn_dropped": dict(sorted(self.syn_dropped.items())),
            "time_wait_peak": dict(sorted(self.time_wait_peak.items())),
            "first_failure_s": None if self.first_failure_s is None else round(self.first_failure_s, 6),
            "retried": self.retried,
            "mean_extra_delay_s": round(self.extra_delay_s / self.retried, 6) if self.retried else 0.0,
            "max_extra_delay_s": round(self.max_delay_s, 6),
            "tw_reused": self.tw_reused,
            "first_reuse_s": self.first_reuse_s,
            "tw_killed_by_syn": self.tw_killed_by_syn,
            "rules": dict(sorted(self.rules.items())),
            "established_by_host": dict(sorted(self.established_by_host.items())),
        }


def _hash32(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=4).digest(), "big")


class Host:
    """A host's timestamp clock and its live TIME_WAIT count (for the peak)."""

    def __init__(self, name: str, ip: str, profile: KernelProfile, hz: int, uptime_s: float, secret: int) -> None:
        self.name = name
        self.ip = ip
        self.profile = profile
        self.hz = hz
        self.uptime_s = uptime_s
        self.secret = secret
        self.tw_fifo: deque = deque()  # (end time, token) in creation order: all TIME_WAITs last as long
        self.tw_count = 0

    def tsval(self, now_s: float, saddr: str, daddr: str, sport: int, dport: int, conn_salt: int) -> int:
        """TSval this host sends: its clock plus the kernel's offset policy (see sim.kernels)."""
        policy = self.profile.ts_offsets
        if policy == PER_CONNECTION:
            offset = _hash32(self.secret, conn_salt)
        elif policy == PER_ADDRESS_PAIR:
            offset = _hash32(self.secret, saddr, daddr)
        elif policy == PER_4TUPLE:
            offset = _hash32(self.secret, saddr, daddr, sport, dport)
        else:
            offset = 0
        return (int((self.uptime_s + now_s) * self.hz) + offset) & 0xFFFFFFFF

    def add_time_wait(self, start_s: float, end_s: float, result: Result) -> list:
        """Count a new TIME_WAIT socket; the token lets a takeover end it early."""
        fifo = self.tw_fifo
        while fifo and fifo[0][0] <= start_s:
            self.end_time_wait(fifo.popleft()[1])
        token = [True]
        fifo.append((end_s, token))
        self.tw_count += 1
        result.time_wait_peak[self.name] = max(result.time_wait_peak[self.name], self.tw_count)
        return token

    def end_time_wait(self, token: list) -> None:
        if token[0]:
            token[0] = False
            self.tw_count -= 1


class PortPool:
    """A client's ephemeral ports towards one destination (one 4-tuple space)."""

    def __init__(self, low: int, size: int) -> None:
        self.free: deque = deque(range(low, low + size))
        # (port, free_at, TIME_WAIT token or None, entered_s, last_ts_recv_s) in the order ports were taken
        self.held: deque = deque()

    def allocate(self, now: float, may_reuse: ReuseCheck, owner: Host) -> tuple[int | None, bool]:
        """(port, reused a TIME_WAIT port) or (None, False): EADDRNOTAVAIL."""
        held = self.held
        while held and held[0][1] <= now:  # TIME_WAIT ended, or the connection closed cleanly
            self.free.append(held.popleft()[0])
        if self.free:
            return self.free.popleft(), False
        if held and held[0][2] is not None and may_reuse(held[0], now):
            port, _, token, _, _ = held.popleft()
            owner.end_time_wait(token)
            return port, True
        return None, False

    def hold(self, port: int, free_at: float, token: list | None, entered: float, last_ts_recv: float) -> None:
        self.held.append((port, free_at, token, entered, last_ts_recv))


@dataclass
class ServerTw:
    end_s: float
    ts_recent: int  # the client's last TSval (0: none seen)
    ts_recent_stamp_s: float
    rcv_nxt: int
    token: list  # the server Host's count of it


class Simulation:
    def __init__(self, p: Params) -> None:
        if p.kernel not in kernels.PROFILES:
            raise ValueError(f"unknown kernel {p.kernel!r}: one of {', '.join(kernels.PROFILES)}")
        self.p = p
        self.profile = kernels.PROFILES[p.kernel]
        self.rng = random.Random(p.seed)
        self.tw_reuse = self.profile.tw_reuse_default if p.tw_reuse is None else p.tw_reuse
        self.result = Result()
        rtt = p.rtt_ms / 1000
        self.rtt = rtt
        self.clients = [
            Host(f"client{i + 1}", f"192.0.2.{i + 1}", self.profile, p.ts_hz,
                 self.rng.uniform(0, p.clock_spread_s), self.rng.getrandbits(32))
            for i in range(p.clients)
        ]
        self.server = Host("server", SERVER_IP, self.profile, p.ts_hz, self.rng.uniform(0, p.clock_spread_s),
                           self.rng.getrandbits(32))
        self.pools = {c.name: PortPool(32768, p.ports) for c in self.clients}
        self.nat = NatGateway("203.0.113.1", p.nat_ports, p.nat_policy, self.rng) if p.nat else None
        self.server_tw: dict[tuple, ServerTw] = {}
        self.peers: dict[str, tuple[int, float]] = {}  # tw_recycle: peer IP -> (last TSval, when)
        self.events: list = []
        self.seq = 0
        self.live: dict[tuple, float] = {}  # only with check_invariants: 4-tuple -> closes at
        self.tracing = p.trace
        self.reuse_check = self.may_reuse(p.loopback)

    # -- scheduling ----------------------------------------------------------
    def push(self, at: float, kind: str, data: Any) -> None:
        self.seq += 1
        heapq.heappush(self.events, (at, self.seq, kind, data))

    def run(self, check_invariants: bool = False) -> Result:
        p = self.p
        self.check = check_invariants
        if p.rate > 0:
            step = 1.0 / p.rate
            for i, client in enumerate(self.clients):
                # clients start evenly staggered within one interval
                self.push(step * i / max(1, len(self.clients)), "attempt", client)
        while self.events:
            at, _, kind, data = heapq.heappop(self.events)
            if kind == "attempt":
                if at >= p.duration:
                    continue
                self.push(at + 1.0 / p.rate, "attempt", data)
                self.attempt(data, at)
            else:
                self.syn(at, *data)
        return self.result

    def trace(self, line: str) -> None:
        if len(self.result.trace) < 400:
            self.result.trace.append(line)

    def fail(self, at: float, reason: str) -> None:
        r = self.result
        r.failed[reason] += 1
        if r.first_failure_s is None:
            r.first_failure_s = at

    # -- a connection --------------------------------------------------------
    def may_reuse(self, loopback: bool) -> ReuseCheck:
        profile, tw_reuse, delay = self.profile, self.tw_reuse, self.p.tw_reuse_delay_ms
        ts_seen = self.p.client_timestamps and self.p.server_timestamps

        def check(entry: tuple, now: float) -> bool:
            _, _, _, entered, last_ts_recv = entry
            return kernels.reuse_allowed(profile, tw_reuse, loopback, ts_seen, entered, last_ts_recv, now, delay)

        return check

    def attempt(self, client: Host, at: float) -> None:
        r = self.result
        r.attempted += 1
        port, reused = self.pools[client.name].allocate(at, self.reuse_check, client)
        if port is None:
            r.rules["ephemeral ports exhausted (inet_hash_connect)"] += 1
            if self.tracing:
                self.trace(f"{at:10.4f} {client.name}: connect() -> EADDRNOTAVAIL (every port in TIME_WAIT)")
            self.fail(at, "EADDRNOTAVAIL")
            return
        if reused:
            r.tw_reused += 1
            if r.first_reuse_s is None:
                r.first_reuse_s = at
            r.rules["tcp_tw_reuse takes over a TIME_WAIT port (tcp_twsk_unique)"] += 1
        src = (client.ip, port)
        if self.nat is not None:
            public = self.nat.translate(client.ip, port, at)
            if public is None:
                self.pools[client.name].hold(port, at, None, at, at)
                r.rules["NAT port range exhausted"] += 1
                self.fail(at, "nat_ports_exhausted")
                return
            src = public
        salt = self.rng.getrandbits(32)
        self.syn(at, client, port, src, at, salt, self.profile.syn_rto_s, 0)

    def syn(self, at: float, client: Host, port: int, src: tuple, started: float, salt: int,
            rto: float, tries: int) -> None:
        p = self.p
        tsval = client.tsval(at, client.ip, SERVER_IP, port, SERVER_PORT, salt) if p.client_timestamps else 0
        isn = _hash32(client.secret, client.ip, port, salt) + int(at * 250_000)  # clock-driven ISN
        arrive = at + self.rtt / 2
        key = (src[0], src[1], SERVER_PORT)
        if self.tracing:
            self.trace(f"{at:10.4f} {client.name}:{port} -> server  SYN" + (f" TSval={tsval}" if tsval else "")
                       + (f" (via NAT {src[0]}:{src[1]})" if self.nat else "") + (f" retry {tries}" if tries else ""))
        verdict = self.server_decides(arrive, key, src[0], tsval, isn & 0xFFFFFFFF)
        if verdict == "accept":
            self.result.syn_accepted += 1
            self.established(at, client, port, src, started, salt, tsval, tries)
            return
        # dropped or answered with an ACK: the client retransmits after its RTO
        if at + rto - started > min(p.connect_timeout, self._syn_give_up()):
            self.pools[client.name].hold(port, at, None, at, at)
            if self.nat is not None:
                self.nat.release(src, at)
            self.fail(at, "connect_timeout")
            if self.tracing:
                self.trace(f"{at:10.4f} {client.name}:{port}  gives up: connect timeout")
            return
        self.push(at + rto, "syn", (client, port, src, started, salt, rto * 2, tries + 1))

    def _syn_give_up(self) -> float:
        rto, total = self.profile.syn_rto_s, 0.0
        for _ in range(kernels.SYN_RETRIES + 1):
            total += rto
            rto *= 2
        return total

    def server_decides(self, now: float, key: tuple, peer_ip: str, tsval: int, seq: int) -> str:
        """What the server does with a SYN: 'accept', or why not."""
        p, r = self.p, self.result
        saw_ts = bool(tsval) and p.server_timestamps
        tw = self.server_tw.get(key)
        if tw is not None and tw.end_s <= now:
            del self.server_tw[key]
            tw = None
        if tw is not None:
            # net/ipv4/tcp_minisocks.c: tcp_timewait_state_process — a SYN for a 4-tuple in
            # TIME_WAIT opens a new connection if PAWS passes and it is newer (TSval, else
            # sequence number beyond rcv_nxt); otherwise the server answers with an ACK.
            paws_reject = saw_ts and tw.ts_recent and not kernels.paws_check(
                tw.ts_recent, tw.ts_recent_stamp_s, tsval, now, 0)
            newer = (saw_ts and tw.ts_recent and s32(tw.ts_recent - tsval) < 0) or s32(seq - tw.rcv_nxt) > 0
            if not paws_reject and newer:
                self.server.end_time_wait(self.server_tw.pop(key).token)
                r.tw_killed_by_syn += 1
                r.rules["SYN takes over the server's TIME_WAIT (tcp_timewait_state_process: TCP_TW_SYN)"] += 1
            else:
                rule = "PAWSTimewait" if paws_reject else "timewait_old_syn"
                r.syn_dropped[rule] += 1
                r.rules["SYN hits the server's TIME_WAIT and is answered with an ACK "
                        "(tcp_timewait_state_process)"] += 1
                if self.tracing:
                    self.trace(f"{now:10.4f} server: {key[0]}:{key[1]} is in TIME_WAIT -> ACK instead of SYN-ACK "
                               f"({'PAWS' if paws_reject else 'old sequence'})")
                if self.profile.rst_through_nat or self.nat is None:
                    # the client answers the ACK with RST, which kills the TIME_WAIT (rfc1337=0)
                    self.server.end_time_wait(self.server_tw.pop(key).token)
                    r.rules["client RST kills the server's TIME_WAIT; SYN retried after RTO"] += 1
                else:
                    r.rules["NAT drops the client's RST: retried SYNs meet the TIME_WAIT until it ends"] += 1
                return "ack"
        if (self.profile.has_tw_recycle and p.tw_recycle and saw_ts):
            peer = self.peers.get(peer_ip)
            # 2.6.32 net/ipv4/tcp_ipv4.c: tcp_v4_conn_request — with tw_recycle, drop a SYN whose
            # TSval is older than the peer's last one seen within TCP_PAWS_MSL (60 s).
            if peer is not None and now - peer[1] < kernels.PAWS_MSL_S and s32(peer[0] - tsval) > kernels.PAWS_WINDOW:
                r.syn_dropped["tw_recycle_paws_passive"] += 1
                r.rules["tw_recycle drops a SYN older than the peer's last timestamp "
                        "(tcp_v4_conn_request, PAWSPassiveRejected)"] += 1
                if self.tracing:
                    self.trace(f"{now:10.4f} server: SYN from {peer_ip} with TSval {tsval} < peer's {peer[0]}: dropped")
                return "drop"
        return "accept"

    def established(self, at: float, client: Host, port: int, src: tuple, started: float, salt: int,
                    tsval: int, tries: int) -> None:
        p, r, rtt = self.p, self.result, self.rtt
        r.established += 1
        r.established_by_host[client.name] += 1
        if tries:
            r.retried += 1
            r.extra_delay_s += at - started
            r.max_delay_s = max(r.max_delay_s, at - started)
        done = at + 2 * rtt  # handshake, then one request and its response
        closed = done + rtt  # the FIN/ACK exchange
        pool = self.pools[client.name]
        ts_both = p.client_timestamps and p.server_timestamps
        last_client_ts = client.tsval(done, client.ip, SERVER_IP, port, SERVER_PORT, salt) if ts_both else 0
        key = (src[0], src[1], SERVER_PORT)
        if self.check:
            assert self.live.get(key, -1.0) <= at, f"4-tuple {key} live twice"
            self.live[key] = closed
        if self.tracing:
            self.trace_handshake(at, client, port, salt, tsval, ts_both)
        if p.close == "fin":
            # the client closes first: TIME_WAIT on the client for 60 s (tcp_time_wait)
            token = client.add_time_wait(done, done + kernels.TIME_WAIT_S, r)
            pool.hold(port, done + kernels.TIME_WAIT_S, token, done, done)
            if self.nat is not None:
                self.nat.release(src, closed)
            if self.tracing:
                self.trace_close(done, f"{client.name}:{port}", "server", "client TIME_WAIT 60 s")
        elif p.close == "server":
            pool.hold(port, closed, None, closed, closed)
            recycle = self.profile.has_tw_recycle and p.tw_recycle and ts_both
            length = kernels.RECYCLE_TW_S if recycle else kernels.TIME_WAIT_S
            isn = _hash32(client.secret, client.ip, port, salt) + int(at * 250_000)
            token = self.server.add_time_wait(done, done + length, r)
            self.server_tw[key] = ServerTw(done + length, last_client_ts, done, (isn + 200) & 0xFFFFFFFF, token)
            if recycle:  # tcp_tw_remember_stamp: the peer's timestamp outlives the short TIME_WAIT
                self.peers[src[0]] = (last_client_ts, done)
            if self.nat is not None:
                self.nat.release(src, closed)
            if self.tracing:
                self.trace_close(done, "server", f"{client.name}:{port}", f"server TIME_WAIT {length:g} s")
        else:  # rst: SO_LINGER {1,0}, nobody keeps TIME_WAIT
            pool.hold(port, done, None, done, done)
            if self.nat is not None:
                self.nat.release(src, done)
            if self.tracing:
                self.trace(f"{done:10.4f} {client.name}:{port} -> server  RST (SO_LINGER {{1,0}}): no TIME_WAIT")


    def trace_handshake(self, at: float, client: Host, port: int, salt: int, tsval: int, ts_both: bool) -> None:
        half = self.rtt / 2
        peer = f"{client.name}:{port}"
        server_ts = self.server.tsval(at + half, SERVER_IP, client.ip, SERVER_PORT, port, salt) if ts_both else 0
        ts = f" TSval={server_ts} TSecr={tsval}" if ts_both else ""
        self.trace(f"{at + half:10.4f} server -> {peer}  SYN-ACK{ts}")
        self.trace(f"{at + 2 * half:10.4f} {peer} -> server  ACK, then the request")
        self.trace(f"{at + 3 * half:10.4f} server -> {peer}  response")

    def trace_close(self, at: float, first: str, second: str, outcome: str) -> None:
        half = self.rtt / 2
        self.trace(f"{at:10.4f} {first} -> {second}  FIN (closes first)")
        self.trace(f"{at + half:10.4f} {second} -> {first}  ACK, FIN")
        self.trace(f"{at + 2 * half:10.4f} {first} -> {second}  ACK: {outcome}")


def simulate(p: Params, check_invariants: bool = False) -> Result:
    return Simulation(p).run(check_invariants)
