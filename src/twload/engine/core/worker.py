"""One worker process on the compiled core: CoreWorker drives its C loop (_core.Core) in ticks.

Each tick runs the loop with the GIL released for at most 100 ms (core.run), then Python does
what is cheap at that rate: the open loop's next intended send times, the staged connection
count, the stop flag, and once a second a snapshot in metrics.Interval.snapshot's format
(docs/ARCHITECTURE.md "The worker snapshot"). The C side counts into int64 buffers and
HdrHistogram counts arrays (lowest 1 µs, highest 60 s, 3 digits); collect() copies them here, so
no Python object is made per request.
"""

from __future__ import annotations

import os
import time
from array import array

from twload.engine.core import _core, error_names
from twload.engine.http1 import build_request
from twload.engine.http2 import header_block
from twload.engine.request_set import cycle, slot_destinations
from twload.engine.request_set import request_set as make_request_set
from twload.engine.spool import PAGE
from twload.metrics import HISTOGRAMS, IndexCountsEncoder, Snapshot, free_codec_garbage
from twload.plan import MAX_HEADER_BYTES, Plan
from twload.plan.close import asks_server_to_close
from twload.plan.schedule import worker_part

TICK_NS = 100_000_000  # the longest the loop runs before Python looks at the stop flag
SECOND_NS = 1_000_000_000
FEED_AHEAD_S = 0.2  # open loop: send times handed to the loop this far ahead
DRAIN_S = 1.0  # at the end, requests in flight get min(this, --timeout) to complete
CLOSE = {"keepalive": 0, "fin": 1, "server": 2, "rst": 3}  # core.h CLOSE_*


class CoreWorker:
    """One worker process's loop on the compiled core: run(go_at, send), sending a snapshot a second."""

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
        request_set: dict = {}
        self.labels: tuple[str, ...] = ()
        spool = plan.targets_spool
        if spool is not None:  # a request file too large to hold: the core reads its spool a page at a time
            self.labels = spool.labels
            fd = os.open(spool.path, os.O_RDONLY | os.O_CLOEXEC)  # the core's from here (it closes it)
            request_set = {"spool": (fd, spool.size, PAGE, spool.render_max, len(spool.labels)),
                           "seed": plan.seed or 0, "worker": plan.worker_base + index,
                           "workers": plan.worker_total or self.workers}
            request = last_request = b""
        elif plan.targets:  # a request file: the core picks and fills each request (engine/request_set.py)
            made = make_request_set(plan, asks_server_to_close(plan.close))
            self.labels = made.labels
            request_set = {"targets": made.targets, "order": made.order, "groups": len(made.labels),
                           "order_random": plan.targets_order == "random", "seed": plan.seed or 0,
                           # numbered across the run: a Dask shard's processes come after the earlier shards'
                           "worker": plan.worker_base + index, "workers": plan.worker_total or self.workers}
            if plan.destinations:  # several destinations: each slot's, and each one's address and cycle
                request_set["destinations"] = [
                    (d.address[0], d.address[1], d.address[3] if len(d.address) > 3 else 0, start, length)
                    for d, (start, length) in zip(plan.destinations, made.parts, strict=True)]
                if plan.open_loop:  # this worker's slots split by weight (each destination one at least), and
                    # each due request's destination by the weights' cycle: its own lane (core.c lane_push)
                    request_set["slot_dests"] = slot_destinations(made.dest_weights, capacity, 0, 1, capacity)
                    request_set["dest_cycle"] = array("H", cycle(list(made.dest_weights)))
                else:
                    total = plan.connections
                    if plan.stages:
                        total = max(total, int(max(s.target for s in plan.stages) + 0.5))
                    request_set["slot_dests"] = slot_destinations(made.dest_weights, capacity, index, self.workers,
                                                                  total)
            request = last_request = b""
        else:
            request = build_request(plan, connection_close=False)
            last_request = build_request(plan, asks_server_to_close(plan.close))
        self.core = _core.Core(
            host=address[0], port=address[1], scope_id=address[3] if len(address) > 3 else 0,
            request=request, last_request=last_request,
            close=CLOSE[plan.close], per_connection=plan.per_connection or 0,
            budget=-1 if budget is None or plan.open_loop else budget,
            head=plan.method == "HEAD" and not plan.targets,
            timeout_ns=int(plan.timeout_s * 1e9), connect_timeout_ns=int(plan.connect_timeout_s * 1e9),
            sources=plan.sources, source_start=index % len(plan.sources) if plan.sources else 0,
            capacity=capacity, open_loop=plan.open_loop, staged=self.staged, io=io, max_head=MAX_HEADER_BYTES,
            tls=(plan.destinations or (plan.target,))[0].scheme == "https",
            server_name=(plan.destinations or (plan.target,))[0].host, cacert=plan.cacert,
            insecure=plan.insecure, tls_min=plan.tls_min, ciphers=plan.ciphers, ciphersuites=plan.ciphersuites,
            tls_resume=plan.tls_resume, **request_set,
            **({"http2": plan.streams, "h2_headers": header_block(plan), "h2_body": plan.body} if plan.http2 else {}),
        )
        self.io = self.core.io
        self.core_tls = plan.target.scheme == "https"
        self.stats = array("q", bytes(8 * _core.STATS_LEN))
        self.names = error_names()
        self.encoder = IndexCountsEncoder(_core.HIST_LEN)
        self.reported_first: set[int] = set()
        self.next_due = 0  # open loop: index of the next send time to hand over
        self.schedule_done = False
        self.started_ns = 0
        self.ledger = {"taken": 0, "withdrawn": 0, "results": 0}  # the whole run's, across snapshots
        self.page_repeats = 0  # a streamed request file: the core's count at the last snapshot

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
    def snapshot(self) -> Snapshot:
        stats = self.stats
        spans = self.core.collect(stats)  # latency, connect, service, tls: metrics.HISTOGRAMS' order
        errors: dict[str, int] = {}
        first_errors: dict[str, tuple[int, float]] = {}
        base = _core.S_ERRORS
        for slot in range(_core.N_ERRORS):
            count = stats[base + slot]
            if count:
                name = self.names.get(slot, f"errno_{slot}")
                errors[name] = errors.get(name, 0) + count
            if slot not in self.reported_first and stats[_core.S_FIRST_CONN + slot]:
                self.reported_first.add(slot)
                first_errors[self.names.get(slot, f"errno_{slot}")] = (
                    stats[_core.S_FIRST_CONN + slot], round(stats[_core.S_FIRST_NS + slot] / 1e9, 6))
        ledger = self.ledger
        ledger["taken"] += stats[_core.S_TAKEN]
        ledger["withdrawn"] += stats[_core.S_WITHDRAWN]
        ledger["results"] += stats[_core.S_REQUESTS] + sum(errors.values()) - stats[_core.S_CLOSE_ERRORS]
        status_base = _core.S_STATUS
        status = {code: stats[status_base + code] for code in range(_core.N_STATUS) if stats[status_base + code]}
        return Snapshot(
            requests=stats[_core.S_REQUESTS],
            connections_opened=stats[_core.S_OPENED],
            bytes_in=stats[_core.S_BYTES_IN],
            bytes_out=stats[_core.S_BYTES_OUT],
            status=status,
            errors=errors,
            first_errors=first_errors,
            max_lag_us=stats[_core.S_MAX_LAG_US],
            sums_us={"latency": stats[_core.S_SUM_LATENCY], "connect": stats[_core.S_SUM_CONNECT],
                     "service": stats[_core.S_SUM_SERVICE], "tls": stats[_core.S_SUM_TLS]},
            # once per worker (docs/ARCHITECTURE.md "The worker snapshot"); tls_reason as peer_bytes: why
            # the first TLS handshake failed
            peer_bytes=self.core.peer_bytes() or b"",
            tls_reason=self.core.tls_reason() or "",
            targets=self.target_counts() if self.labels else {},
            # connections opened to each destination (plan.destinations' order)
            destinations=tuple(self.core.collect_destinations()) if self.plan.destinations else (),
            # --http2: the server capped the streams below --streams
            h2_server_max_streams=self.core.h2_peer_max_streams if self.plan.http2 else 0,
            # --http2: connections and streams open now (samples.jsonl's connections_open, streams_open)
            h2_connections_open=self.core.open if self.plan.http2 else 0,
            h2_streams_open=self.core.in_flight if self.plan.http2 else 0,
            # https: handshakes completed, and how many resumed a session (--tls-resume)
            tls_handshakes=stats[_core.S_TLS_HANDSHAKES] if self.core_tls else None,
            tls_resumed=stats[_core.S_TLS_RESUMED] if self.core_tls else None,
            page_repeats=self.new_page_repeats() if self.plan.targets_spool is not None else 0,
            **{name: self.encoder.encode(*span) for name, span in zip(HISTOGRAMS, spans, strict=True)},
        )

    def new_page_repeats(self) -> int:
        """A streamed request file: the pages the core walked again since the last snapshot (core.c
        core_choose: the next page was not loaded yet, a request of its last walk still in flight)."""
        total = self.core.page_repeats
        new, self.page_repeats = total - self.page_repeats, total
        return new

    def target_counts(self) -> dict[int, dict]:
        """A request set: each target's counts since the last snapshot, by its group (its index in
        plan.targets.labels); only the groups that counted something."""
        out: dict[int, dict] = {}
        names = self.names
        for group, requests, sum_us, status, slots, span in self.core.collect_targets():
            errors: dict[str, int] = {}
            for slot, count in slots.items():
                name = names.get(slot, f"errno_{slot}")
                errors[name] = errors.get(name, 0) + count
            out[group] = {"requests": requests, "sum_latency_us": sum_us, "status": status, "errors": errors,
                          "latency": self.encoder.encode(*span)}
        return out

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
            if plan.targets_spool is not None and core.spool_error:  # a streamed file's page could not be read
                raise OSError(core.spool_error, f"reading {plan.targets_spool.path}: {os.strerror(core.spool_error)}")
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
        final = self.snapshot().with_errors(self.unaccounted())
        send(tick, final, final=True, elapsed=(time.monotonic_ns() - started) / 1e9)
