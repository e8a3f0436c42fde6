"""The compiled engine core's Python side: one worker drives its C loop (_core.Core) in ticks.

Each tick runs the loop with the GIL released for at most 100 ms (core.run), then Python does
what is cheap at that rate: the open loop's next intended send times, the staged connection
count, the stop flag, and once a second a snapshot in exactly the asyncio engine's format
(docs/ARCHITECTURE.md "The worker snapshot"). The C side counts into int64 buffers and
HdrHistogram counts arrays (lowest 1 µs, highest 60 s, 3 digits); collect() copies them here, so
no Python object is made per request.
"""

from __future__ import annotations

import errno
import time
from array import array

from twload.engine.http1 import build_request
from twload.engine.strategies import asks_server_to_close
from twload.metrics import encode_counts, free_codec_garbage, new_histogram
from twload.plan import MAX_HEADER_BYTES, Plan
from twload.plan.schedule import worker_part

try:
    from twload.engine.core import _core
except ImportError:  # not built (see setup.py): the asyncio engine still runs everything
    _core = None

TICK_NS = 100_000_000  # the longest the loop runs before Python looks at the stop flag
SECOND_NS = 1_000_000_000
FEED_AHEAD_S = 0.2  # open loop: send times handed to the loop this far ahead
DRAIN_S = 1.0  # at the end, requests in flight get min(this, --timeout) to complete
CLOSE = {"keepalive": 0, "fin": 1, "server": 2, "rst": 3}  # core.h CLOSE_*


def available() -> bool:
    return _core is not None


def uring_available() -> bool:
    """io_uring is compiled in and this process may use it (sysctl kernel.io_uring_disabled, seccomp)."""
    return _core is not None and bool(_core.HAVE_URING) and _core.uring_available()


def uring_makes_sockets() -> bool:
    """The uring backend makes its sockets through the ring (IORING_OP_SOCKET, Linux 5.19); without
    it, with socket() (and always with --source, whose bind needs the fd before the connect)."""
    return uring_available() and _core.uring_sockets()


def choose_io(requested: str, scheme: str = "http") -> str:
    """The backend a worker runs: https:// runs on epoll (TLS over the ring is not built yet, issue #30)."""
    if scheme == "https":
        return "epoll"
    if requested == "auto":
        return "uring" if uring_available() else "epoll"
    return requested


def error_names() -> dict[int, str]:
    """Error slot (core.h: errno 1..255, then E_*) -> the name counted
    (docs/ARCHITECTURE.md "Error names")."""
    names = {code: errno.errorcode.get(code, f"errno_{code}") for code in range(1, 256)}
    names.update({
        _core.E_CONNECT_TIMEOUT: "connect_timeout", _core.E_TIMEOUT: "timeout",
        _core.E_NO_SERVER_CLOSE: "no_server_close", _core.E_PROTOCOL: "protocol_error",
        _core.E_HEAD_TOO_LARGE: "response_head_too_large", _core.E_EOF_BEFORE_RESPONSE: "eof_before_response",
        _core.E_NOT_SENT: "not_sent", _core.E_ABANDONED: "abandoned_at_stop", _core.E_OTHER_ERRNO: "errno_other",
        _core.E_UNSOLICITED: "unsolicited_response", _core.E_UNEXPECTED_UPGRADE: "unexpected_upgrade",
        _core.E_TLS_HANDSHAKE_FAILED: "tls_handshake_failed", _core.E_TLS_CERT_VERIFY_FAILED: "tls_cert_verify_failed",
        _core.E_TLS_UNEXPECTED_EOF: "tls_unexpected_eof", _core.E_TLS_ON_PLAIN_HTTP: "tls_on_plain_http",
        _core.E_TLS_ERROR: "tls_error",
    })
    # the peer's TLS alert by its name; the table is tls.c's (ALERTS), its last entry "unknown"
    names.update({_core.E_TLS_ALERT + i: f"tls_alert_{name}" for i, name in enumerate(_core.tls_alert_names())})
    return names


def tls_options_problem(tls_min: str | None, ciphers: str | None, ciphersuites: str | None) -> str:
    """Why the core's OpenSSL refuses these TLS options (one line), or "": checked before any worker starts."""
    return _core.tls_check(tls_min=tls_min, ciphers=ciphers, ciphersuites=ciphersuites)


def histogram_values() -> list[int]:
    """The value each slot of the C counts array stands for (its lowest equivalent value)."""
    hist = new_histogram()
    if hist.counts_len != _core.HIST_LEN:  # core.h H_LEN must follow hdrh's layout
        raise RuntimeError(f"core histogram layout {_core.HIST_LEN} != hdrh {hist.counts_len}")
    return [hist.get_value_from_index(i) for i in range(_core.HIST_LEN)]


class CoreWorker:
    """One worker process's loop on the compiled core; the same run(go_at, send) as asyncio_loop.Worker."""

    def __init__(self, plan: Plan, index: int, connections: int, budget: int | None, share: float = 1.0,
                 io: str = "epoll") -> None:
        self.plan = plan
        self.connections = connections
        self.remaining = budget  # open loop: send times still to hand over (None: unlimited)
        self.schedule = plan.schedule(share)
        self.staged = self.schedule is not None and not plan.open_loop
        self.staged_total = plan.schedule(1.0)  # staged: every worker's part is taken from the whole
        self.workers, self.index = round(1 / share), index
        capacity = connections
        if self.staged:  # the most connections any stage asks of this worker
            capacity = max(connections, int(max(s.target for s in plan.stages) * share + 1))
        address = plan.target.address
        self.core = _core.Core(
            host=address[0], port=address[1], scope_id=address[3] if len(address) > 3 else 0,
            request=build_request(plan, connection_close=False),
            last_request=build_request(plan, asks_server_to_close(plan.close)),
            close=CLOSE[plan.close], per_connection=plan.per_connection or 0,
            budget=-1 if budget is None or plan.open_loop else budget, head=plan.method == "HEAD",
            timeout_ns=int(plan.timeout_s * 1e9), connect_timeout_ns=int(plan.connect_timeout_s * 1e9),
            sources=plan.sources, source_start=index % len(plan.sources) if plan.sources else 0,
            capacity=capacity, open_loop=plan.open_loop, staged=self.staged, io=io, max_head=MAX_HEADER_BYTES,
            tls=plan.target.scheme == "https", server_name=plan.target.host, cacert=plan.cacert,
            insecure=plan.insecure, tls_min=plan.tls_min, ciphers=plan.ciphers, ciphersuites=plan.ciphersuites,
            tls_resume=plan.tls_resume,
        )
        self.io = self.core.io
        self.core_tls = plan.target.scheme == "https"
        self.stats = array("q", bytes(8 * _core.STATS_LEN))
        self.hists = {name: array("q", bytes(8 * _core.HIST_LEN)) for name in ("latency", "connect", "service", "tls")}
        self.names = error_names()
        self.values = histogram_values()
        self.reported_first: set[int] = set()
        self.next_due = 0  # open loop: index of the next send time to hand over
        self.schedule_done = False
        self.started_ns = 0
        self.ledger = {"taken": 0, "withdrawn": 0, "results": 0}  # the whole run's, across snapshots

    # -- open loop -----------------------------------------------------------
    def feed(self, now_ns: int) -> None:
        """Hand the loop the intended send times up to FEED_AHEAD_S from now."""
        horizon = (now_ns - self.started_ns) / 1e9 + FEED_AHEAD_S
        times = array("q")
        k = self.next_due
        due_at = self.schedule.send_time(k)
        while due_at is not None and due_at <= horizon and self.remaining != 0:
            times.append(self.started_ns + int(due_at * 1e9))
            if self.remaining is not None:
                self.remaining -= 1
            k += 1
            due_at = self.schedule.send_time(k)
        self.next_due = k
        if times:
            self.core.add_due(times)
        if due_at is None or self.remaining == 0:
            self.core.schedule_done()
            self.schedule_done = True

    def staged_connections(self, t: float) -> int:
        """This worker's whole part of the stages' connection count at t (the parts add up to it)."""
        return worker_part(self.staged_total.value(t), self.workers, self.index)

    # -- snapshots -----------------------------------------------------------
    def snapshot(self) -> dict:
        stats, hists = self.stats, self.hists
        self.core.collect(stats, hists["latency"], hists["connect"], hists["service"], hists["tls"])
        errors: dict[str, int] = {}
        first_errors: dict[str, list] = {}
        base = _core.S_ERRORS
        for slot in range(_core.N_ERRORS):
            count = stats[base + slot]
            if count:
                name = self.names.get(slot, f"errno_{slot}")
                errors[name] = errors.get(name, 0) + count
            if slot not in self.reported_first and stats[_core.S_FIRST_CONN + slot]:
                self.reported_first.add(slot)
                first_errors[self.names.get(slot, f"errno_{slot}")] = [
                    stats[_core.S_FIRST_CONN + slot], round(stats[_core.S_FIRST_NS + slot] / 1e9, 6)]
        ledger = self.ledger
        ledger["taken"] += stats[_core.S_TAKEN]
        ledger["withdrawn"] += stats[_core.S_WITHDRAWN]
        ledger["results"] += stats[_core.S_REQUESTS] + sum(errors.values()) - stats[_core.S_CLOSE_ERRORS]
        status_base = _core.S_STATUS
        status = {code: stats[status_base + code] for code in range(_core.N_STATUS) if stats[status_base + code]}
        snap = {
            "requests": stats[_core.S_REQUESTS],
            "connections_opened": stats[_core.S_OPENED],
            "bytes_in": stats[_core.S_BYTES_IN],
            "bytes_out": stats[_core.S_BYTES_OUT],
            "status": status,
            "errors": errors,
            "first_errors": first_errors,
            "max_lag_us": stats[_core.S_MAX_LAG_US],
            "sums_us": {"latency": stats[_core.S_SUM_LATENCY], "connect": stats[_core.S_SUM_CONNECT],
                        "service": stats[_core.S_SUM_SERVICE], "tls": stats[_core.S_SUM_TLS]},
        }
        if self.core_tls:  # https: handshakes completed, and how many resumed a session (--tls-resume)
            snap["tls_handshakes"] = stats[_core.S_TLS_HANDSHAKES]
            snap["tls_resumed"] = stats[_core.S_TLS_RESUMED]
        peer_bytes = self.core.peer_bytes()
        if peer_bytes:  # once per worker (docs/ARCHITECTURE.md "The worker snapshot")
            snap["peer_bytes"] = peer_bytes
        tls_reason = self.core.tls_reason()
        if tls_reason:  # once per worker, as peer_bytes: why the first TLS handshake failed
            snap["tls_reason"] = tls_reason
        values = self.values
        for name, counts in hists.items():
            snap[name] = encode_counts({values[i]: c for i, c in enumerate(counts) if c})
        return snap

    def unaccounted(self) -> dict[str, int]:
        """After the run: requests taken that got no result (or two), by error name, so that a flaw in
        the core shows up in the summary instead of as a silently short count (docs/ARCHITECTURE.md
        "Every request one result")."""
        ledger = self.ledger
        owed = ledger["taken"] - ledger["withdrawn"] - ledger["results"]
        if owed > 0:
            return {"uncounted": owed}
        if owed < 0:
            return {"counted_twice": -owed}
        return {}

    # -- the run -------------------------------------------------------------
    def run(self, go_at: float, send) -> None:
        """Run until the deadline, the budget or the stop flag; send(tick, snapshot) each second."""
        plan, core = self.plan, self.core
        delay = go_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self.started_ns = started = time.monotonic_ns()
        deadline = started + int(plan.duration_s * 1e9) if plan.duration_s else None
        core.start(started, self.connections)
        if self.staged:
            core.set_connections(self.staged_connections(0.0))
        next_snapshot = started + SECOND_NS
        tick = 1
        while True:
            now = time.monotonic_ns()
            if plan.open_loop and not self.schedule_done:
                self.feed(now)
            until = min(now + TICK_NS, next_snapshot, deadline or next_snapshot)
            done = core.run(until)
            now = time.monotonic_ns()
            if self.staged:
                core.set_connections(self.staged_connections((now - started) / 1e9))
            if done:
                break
            if now >= next_snapshot:
                send(tick, self.snapshot())
                free_codec_garbage()
                tick += 1
                next_snapshot += SECOND_NS
            if (deadline is not None and now >= deadline) or send.should_stop():
                break
        # No new request from here on; idle connections close, the rest drain by their strategy.
        if plan.open_loop and not self.schedule_done:
            # every send time up to now is due: the core counts those it could not send as not_sent.
            # Without this, times past the last feed's horizon (a tick slower than FEED_AHEAD_S on a
            # loaded machine) were never handed over, so neither sent nor counted.
            self.feed(time.monotonic_ns())
        core.stop()
        # The drain bound counts from the deadline, not from when the loop noticed it: on an overloaded
        # machine (100,000 connections, server and client on the same cores) a turn of the loop can
        # end late, and the run must still end at duration + drain bound.
        drain_s = int(min(DRAIN_S, plan.timeout_s) * 1e9)
        drain_end = time.monotonic_ns() + drain_s
        if deadline is not None:
            drain_end = max(time.monotonic_ns(), min(drain_end, deadline + drain_s))
        while not core.run(min(drain_end, time.monotonic_ns() + TICK_NS)) and time.monotonic_ns() < drain_end:
            pass
        core.abandon()  # still in flight after the drain bound: abandoned_at_stop
        final = self.snapshot()
        for name, count in self.unaccounted().items():
            final["errors"][name] = final["errors"].get(name, 0) + count
        send(tick, final, final=True, elapsed=(time.monotonic_ns() - started) / 1e9)
