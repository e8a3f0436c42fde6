"""`twload doctor`: what will fail in a short-connection load test, why, and what to change.

Rules are pure functions over plain facts (KernelFacts, TargetFacts, DoctorPlan)
that return a Finding or None; gathering the facts (sysctls in twload.kernel, a probe
of the target in twload.doctor.probe) is the thin I/O around them. Each rule cites the kernel code it
reasons from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twload.ports import budget
from twload.ports.facts import FIXABLE_SYSCTLS, KernelFacts

OK, WARNING, PROBLEM = "ok", "warning", "problem"


@dataclass(frozen=True)
class TargetFacts:
    address: str
    port: int
    loopback: bool
    reachable: bool = True
    error: str | None = None
    timestamps: bool | None = None  # negotiated in the handshake (TCP_INFO)
    rtt_us: int | None = None
    server_closes_first: bool | None = None  # after `Connection: close`
    keepalive: bool | None = None  # keeps a connection open after a response
    connect_s: float | None = None  # the probe's slowest connect


@dataclass(frozen=True)
class DoctorPlan:
    close: str = "fin"
    rate: float | None = None  # planned new connections per second
    connections: int = 50
    sources: int = 1
    in_use: int = 0  # ports already held towards the target (an earlier run's TIME_WAIT, other clients)


@dataclass(frozen=True)
class Finding:
    level: str
    id: str
    message: str
    fix: dict = field(default_factory=dict)  # sysctl name -> value that --fix may apply

    def __post_init__(self) -> None:
        # --restore writes back only FIXABLE_SYSCTLS: a fix outside it could be applied, never undone
        unknown = sorted(set(self.fix) - FIXABLE_SYSCTLS)
        if unknown:
            raise ValueError(f"finding {self.id} fixes {unknown}, not in twload.ports.facts.FIXABLE_SYSCTLS")

    def public(self) -> dict:
        return {"level": self.level, "id": self.id, "message": self.message}


def budget_input(kernel: KernelFacts, target: TargetFacts | None, plan: DoctorPlan) -> budget.BudgetInput:
    return budget.BudgetInput(
        ports=kernel.ports, close=plan.close, connections=plan.connections, rate=plan.rate,
        sources=plan.sources, tw_reuse=kernel.tcp_tw_reuse, reuse_delay_ms=kernel.tcp_tw_reuse_delay_ms,
        # unknown target: assume timestamps when the client sends them (the kernel default)
        timestamps=(target.timestamps if target and target.timestamps is not None else bool(kernel.tcp_timestamps)),
        loopback=bool(target and target.loopback), max_tw_buckets=kernel.tcp_max_tw_buckets, in_use=plan.in_use,
    )


# -- rules -------------------------------------------------------------------

def rule_tw_recycle(k: KernelFacts, t: TargetFacts | None, p: DoctorPlan) -> Finding:
    # tcp_tw_recycle was removed in 4.12 (commit 4396e46187ca, "tcp: remove tcp_tw_recycle"):
    # with per-connection timestamp offsets (4.10+) its per-peer PAWS check could not work.
    if k.tcp_tw_recycle is None:
        return Finding(OK, "tw_recycle", "tcp_tw_recycle does not exist on this kernel (removed in 4.12); "
                       "it broke clients behind NAT")
    if k.tcp_tw_recycle:
        # 2.6.32 net/ipv4/tcp_ipv4.c: tcp_v4_conn_request drops a SYN whose timestamp is older
        # than the last one seen from the same peer IP within TCP_PAWS_MSL (60 s).
        return Finding(PROBLEM, "tw_recycle", "tcp_tw_recycle=1 drops SYNs from clients behind one NAT address "
                       "(per-peer timestamp check): set it to 0", {"net.ipv4.tcp_tw_recycle": "0"})
    return Finding(OK, "tw_recycle", "tcp_tw_recycle=0")


def rule_client_timestamps(k: KernelFacts, t: TargetFacts | None, p: DoctorPlan) -> Finding | None:
    # net/ipv4/tcp_output.c: tcp_syn_options adds the timestamp option only with tcp_timestamps != 0
    if k.tcp_timestamps == 0:
        return Finding(WARNING, "client_timestamps", "tcp_timestamps=0 on this client: no connection negotiates "
                       "timestamps, so tcp_tw_reuse can never apply", {"net.ipv4.tcp_timestamps": "1"})
    return None


def rule_tw_reuse(k: KernelFacts, t: TargetFacts | None, p: DoctorPlan) -> Finding | None:
    # net/ipv4/tcp_ipv4.c: tcp_twsk_unique — reuse needs tw_ts_recent_stamp (timestamps seen)
    # and, with tcp_tw_reuse=2, a loopback address on both ends.
    if p.close != "fin" or k.tcp_timestamps == 0:
        return None  # a client that sends no timestamps: rule_client_timestamps says why reuse cannot help
    delay = (k.tcp_tw_reuse_delay_ms or 1000) / 1000
    if k.tcp_tw_reuse == 0:
        fix = {"net.ipv4.tcp_tw_reuse": "1"} if not (t and t.timestamps is False) else {}
        return Finding(WARNING, "tw_reuse", "tcp_tw_reuse=0: ports of connections the client closed stay "
                       "unusable for 60 s (TIME_WAIT)", fix)
    if t is not None and t.timestamps is False:
        return Finding(PROBLEM, "tw_reuse", f"tcp_tw_reuse={k.tcp_tw_reuse} will not help: the target does not "
                       "negotiate TCP timestamps (load balancers often disable them)")
    if k.tcp_tw_reuse == 2 and t is not None and not t.loopback:
        return Finding(WARNING, "tw_reuse", f"tcp_tw_reuse=2 reuses TIME_WAIT ports for loopback only; towards "
                       f"{t.address} ports stay unusable for 60 s", {"net.ipv4.tcp_tw_reuse": "1"})
    where = " (loopback)" if k.tcp_tw_reuse == 2 else ""
    return Finding(OK, "tw_reuse", f"tcp_tw_reuse={k.tcp_tw_reuse}{where}: TIME_WAIT ports are reused after "
                   f"{delay:g} s when timestamps are negotiated")


def rule_port_budget(k: KernelFacts, t: TargetFacts | None, p: DoctorPlan) -> Finding | None:
    b = budget.compute(budget_input(k, t, p))
    if not b.client_holds_time_wait:
        return Finding(OK, "port_budget", f"--close {p.close} leaves no TIME_WAIT on the client: "
                       "ports do not limit the rate")
    if b.sustainable_new_conn_per_s is None:
        return Finding(WARNING, "port_budget", f"tcp_max_tw_buckets={k.tcp_max_tw_buckets} is below the port range: "
                       "TIME_WAIT sockets beyond it are destroyed at once (TcpExtTCPTimeWaitOverflow), so ports "
                       "never run out, without TIME_WAIT's protection against old duplicates")
    sustainable = b.sustainable_new_conn_per_s
    ports = f"{b.ports} ports" + (f" ({p.sources} source addresses x {k.ports})" if p.sources > 1 else "")
    if p.rate and b.exhausted_after_s is not None:
        needed = budget.sources_needed(p.rate, k.ports, b.reuse_after_s)
        return Finding(PROBLEM, "port_budget", f"at {p.rate:g} new connections/s with client close, {ports} "
                       f"last {b.exhausted_after_s:.0f} s: use --close server or --close rst, or {needed} "
                       "source addresses")
    level = WARNING if not b.reuse_applies else OK
    return Finding(level, "port_budget", f"{ports}, each unusable for {b.reuse_after_s:g} s after the client "
                   f"closes: at most {sustainable:.0f} new connections/s can be sustained with --close fin")


# A wider range that leaves the well-known ports (below 1024) and 1024-9999, where most services
# listen, to them. Documentation/networking/ip-sysctl.rst (ip_local_port_range) asks for the two
# ends to differ in parity: 10000 is even, 65535 odd.
SUGGESTED_PORT_RANGE = (10000, 65535)


def rule_port_range(k: KernelFacts, t: TargetFacts | None, p: DoctorPlan) -> Finding | None:
    if k.ports >= 10000:
        return None
    low, high = SUGGESTED_PORT_RANGE
    # net/ipv4/inet_hashtables.c: __inet_hash_connect skips inet_is_local_reserved_port(), and a
    # listener cannot bind a port an outgoing connection holds: a service that listens inside the
    # new range (the default range starts at 32768, so many pick ports below it) must be reserved.
    reserved = f"{k.reserved_ports} reserved now" if k.reserved_ports else "none reserved now"
    return Finding(WARNING, "port_range", f"ip_local_port_range {k.port_low}-{k.port_high} gives only {k.ports} "
                   f"ephemeral ports per destination; {low}-{high} gives {high - low + 1 - k.reserved_ports} and "
                   f"leaves ports below {low} (the well-known ones included) to services. Services listening "
                   f"between {low} and 32767 must first be listed in net.ipv4.ip_local_reserved_ports "
                   f"({reserved}), or a connection may hold their port when they restart",
                   {"net.ipv4.ip_local_port_range": f"{low} {high}"})


def rule_fin_timeout(k: KernelFacts, t: TargetFacts | None, p: DoctorPlan) -> Finding | None:
    # net/ipv4/tcp.c: tcp_fin_time bounds FIN_WAIT2; TIME_WAIT is TCP_TIMEWAIT_LEN, fixed at 60 s.
    if k.tcp_fin_timeout != 60:
        return Finding(WARNING, "fin_timeout", f"tcp_fin_timeout={k.tcp_fin_timeout} does NOT shorten TIME_WAIT "
                       "(fixed at 60 s); it only bounds FIN_WAIT2")
    return None


def rule_open_files(k: KernelFacts, t: TargetFacts | None, p: DoctorPlan) -> Finding | None:
    if k.nofile_soft < p.connections + 64:
        return Finding(PROBLEM, "open_files", f"open-files limit {k.nofile_soft} is below {p.connections} "
                       "connections: connect() will fail with EMFILE (raise it with ulimit -n)")
    return None


def rule_target(k: KernelFacts, t: TargetFacts | None, p: DoctorPlan) -> list[Finding]:
    if t is None:
        return []
    if not t.reachable:
        return [Finding(PROBLEM, "target", f"cannot reach {t.address}:{t.port}: {t.error}")]
    rtt = f" (RTT {t.rtt_us} us)" if t.rtt_us is not None else ""
    if not t.timestamps and k.tcp_timestamps == 0:  # the client offered none: the target's side is unknown
        found = [Finding(WARNING, "target_timestamps", f"no TCP timestamps with the target: this client sends "
                         f"none (tcp_timestamps=0){rtt}")]
    else:
        found = [Finding(OK if t.timestamps else WARNING, "target_timestamps",
                         f"target {'negotiates' if t.timestamps else 'does not negotiate'} TCP timestamps{rtt}")]
    if t.server_closes_first is True:
        found.append(Finding(OK, "server_close", "target closes first after Connection: close: --close server "
                             "keeps TIME_WAIT off the client"))
    elif t.server_closes_first is False:
        found.append(Finding(WARNING, "server_close", "target does not close after Connection: close: --close server "
                             "would wait for --timeout on every connection; use --close rst"))
    if t.keepalive is False:
        found.append(Finding(WARNING, "keepalive", "target closes connections after each response: keep-alive runs "
                             "will open a connection per request"))
    if t.connect_s is not None and t.connect_s >= SLOW_CONNECT_S:
        found.append(Finding(WARNING, "slow_connect", f"a connect to the target took {t.connect_s:.2f} s: its SYN "
                             "was sent again after the initial retransmission timeout (1 s), so the first was "
                             "lost: the target's accept queue is full (its application accepts too slowly: "
                             "ListenOverflows on the target) or the path loses packets; a run counts such "
                             "connects in slow_connects"))
    return found


# include/net/tcp.h: TCP_TIMEOUT_INIT (1 s, Linux 6.x): a connect this slow had its SYN sent again
SLOW_CONNECT_S = 1.0

RULES = (rule_tw_recycle, rule_client_timestamps, rule_tw_reuse, rule_port_budget, rule_port_range,
         rule_fin_timeout, rule_open_files)


def diagnose(kernel: KernelFacts, target: TargetFacts | None, plan: DoctorPlan) -> list[Finding]:
    findings = [f for rule in RULES if (f := rule(kernel, target, plan)) is not None]
    return findings + rule_target(kernel, target, plan)


ADVICE = ("port_budget", "tw_reuse", "client_timestamps", "target_timestamps", "port_range")
PORT_WALL = ("EADDRNOTAVAIL: no free local port towards this target. The client closed first and its ports sit "
             "in TIME_WAIT for 60 s")
REMEDY = "use --close server (the server closes first) or --close rst, add source addresses, or keep connections alive"
PORTS_HELD_OPEN = ("EADDRNOTAVAIL: no free local port towards this target: its open connections (and sockets still "
                   "closing) hold them all. Use fewer connections (-c), add source addresses, or widen "
                   "ip_local_port_range.")


def found_time_wait(found: int, close: str) -> str:
    """The ports an earlier run's TIME_WAIT held at this run's start: not this run's doing."""
    # server (the server closes first) and rst leave none; fin and keepalive (its connections closed at
    # the end, or after --requests-per-connection) close first and leave their own
    own = f"; this run's --close {close} leaves none of its own" if close in ("server", "rst") else ""
    return (f"{found} ports towards this target were already in TIME_WAIT at the run's start, left by earlier "
            f"connections (up to 60 s each){own}: wait for them to expire between runs, or use another target "
            "port or more source addresses.")


def advice(findings: list[Finding], close: str = "fin", found: int = 0) -> list[str]:
    """For a run that hit the port wall: the findings that explain it, each said once, then the remedy
    unless a finding already gave it. `found`: client TIME_WAIT sockets towards the target at the run's
    start, left by earlier connections; they hold ports the run could not use."""
    earlier = [found_time_wait(found, close)] if found else []
    if close != "fin":  # no TIME_WAIT of the run's own on the client: open connections, or earlier ones', hold them
        held_open = [] if found else [PORTS_HELD_OPEN]
        return [f.message for f in findings if f.id == "port_range" and f.level != OK] + earlier + held_open
    picked = {f.id: f for f in findings if f.id in ADVICE and f.level != OK}
    reuse = picked.get("tw_reuse")
    if reuse is not None and "timestamps" in reuse.message:
        picked.pop("target_timestamps", None)  # tw_reuse already says the target negotiates none
    lines = [picked[i].message for i in ADVICE if i in picked]
    remedy_given = any("--close server" in line for line in lines)
    lines.append(PORT_WALL + ("." if remedy_given else f": {REMEDY}."))
    return lines + earlier


def report(kernel: KernelFacts, sysctls: dict, target: TargetFacts | None, plan: DoctorPlan,
           findings: list[Finding]) -> dict:
    """The --json document (stable keys)."""
    b = budget.compute(budget_input(kernel, target, plan))
    return {
        "sysctl": sysctls,
        "target": None if target is None else {
            "timestamps": target.timestamps, "server_closes_first": target.server_closes_first,
            "keepalive": target.keepalive, "reachable": target.reachable, "address": target.address,
            "port": target.port, "connect_s": target.connect_s,
        },
        "budget": {"ports": b.ports, "reuse_after_s": b.reuse_after_s,
                   "sustainable_new_conn_per_s": b.sustainable_new_conn_per_s},
        "findings": [f.public() for f in findings],
    }


def proposed_fixes(findings: list[Finding]) -> dict[str, str]:
    fixes: dict[str, str] = {}
    for f in findings:
        if f.level != OK:
            fixes.update(f.fix)
    return fixes
