"""The asyncio engine: one uvloop event loop driving a worker's connections (used for https://).

Closed loop (-c): N slots, each a connection that sends its next request from the
httptools callback of the previous response, and starts its successor itself when
it is lost. Open loop (--rate): a scheduler dispatches requests at their intended
times to idle connections, queueing them (and growing the pool) when none is free.
Per request, beyond httptools and the counters, only the lifecycle's result action is allocated;
what a connection does next is decided by its Lifecycle (engine/lifecycle.py, pure).
Every second the worker sends its Interval to the supervisor and starts a new one.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections import deque
from dataclasses import replace

import httptools

from twload.engine import strategies as closing
from twload.engine.backoff import ConnectBackoff, next_wait
from twload.engine.http1 import (
    build_request,
    declares_both_framings,
    head_declares_length,
    head_declares_transfer_encoding,
    without_content_length,
)
from twload.engine.lifecycle import (
    AWAITING_RESPONSE,
    AWAITING_SERVER_CLOSE,
    CLOSED,
    CONNECTING,
    IDLE_STATE,
    Actions,
    Close,
    CountCloseError,
    CountResult,
    Idle,
    Lifecycle,
    Rules,
    SetRstOnClose,
    Write,
)
from twload.engine.sources import IP_BIND_ADDRESS_NO_PORT
from twload.engine.tls import tls_context
from twload.metrics import Interval, Snapshot, errno_name
from twload.plan import MAX_HEADER_BYTES, Plan
from twload.plan.schedule import worker_part

# Times on the hot path are integer nanoseconds: (now - sent) // 1000 is a cheaper µs than
# int((now - sent) * 1e6) on floats (callgrind: about 1,100 against 1,700 instructions).
clock_ns = time.perf_counter_ns

SWEEP_S = 0.1  # how often timeouts and the stop flag are checked
MAX_CONNECTING = 16  # open loop: connects in progress at once, per worker
DRAIN_S = 1.0  # at the end, how long requests in flight get to complete
PEER_BYTES_MAX = 64  # the first bytes of a response that is not HTTP, kept to show the user
SWITCHED = 101  # Switching Protocols: the connection speaks another protocol after this head
ONE = ord("1")


class AwaitingHead(httptools.HttpResponseParser):
    """Stands in for the parser while the rest of a head is awaited that ends its response despite its
    framing fields (Connection._ends_at_head_despite_framing): every read goes back there."""

    def __init__(self, protocol: object, status: int) -> None:
        super().__init__(protocol)
        self.status = status

    def feed_data(self, data: bytes) -> None:
        raise httptools.HttpParserError("the rest of the head is awaited")

    def get_status_code(self) -> int:
        return self.status


class StopParse(Exception):
    """Raised in a parser callback so that feed_data stops there (a callback that raises makes llhttp
    return an error): at a 101 head, at the start of a message after the response in flight, at the
    end of a head that ends its response (HEAD). The Connection's fields say which."""


class Connection(asyncio.Protocol):
    """One TCP connection: the adapter of its Lifecycle (engine/lifecycle.py), which decides.

    It feeds transport and parser callbacks to the machine as events and carries out the actions
    it returns: writes, closes, and counting on the Worker. HTTP framing stays with httptools."""

    __slots__ = (
        "w", "lifecycle", "transport", "parser", "head", "headers_done", "connect_timed_out",
        "retired", "tls_started", "number", "waited_s", "status", "interims", "done_at", "keep_alive",
        "cut",
    )
    ENDS_AT_HEAD = False  # every response ends at its head (HeadConnection)

    def __init__(self, w: Worker, waited_s: float = 0.0) -> None:
        self.w = w
        self.lifecycle = Lifecycle(w.rules)
        if w.stopping:
            self.lifecycle.stop()
        self.transport = None
        self.parser = httptools.HttpResponseParser(self)
        self.head = b""  # only kept for responses that take more than one read
        self.headers_done = False
        self.retired = False  # staged closed loop: its slot ends with it
        self.tls_started = 0  # TLS: when the TCP connect was done and the handshake began
        self.connect_timed_out = False
        self.number = w.attempts  # this worker's connection number (the attempt that opened it)
        self.waited_s = waited_s  # the slot's backoff before this attempt (0: its last connect succeeded)
        self.status = 0  # the status of the response just completed
        self.interims = 0  # 1xx interim heads the parser completed in this read (none are answers)
        # The response in flight completed in this read (clock_ns; 0: not yet), and whether it allows
        # another request. Acted on when the read is parsed: bytes after it are nobody's response.
        self.done_at = 0
        self.keep_alive = False
        self.cut = False  # HEAD: the parse was stopped at the blank line that ends the response

    @property
    def in_flight(self) -> bool:
        return self.lifecycle.in_flight

    @property
    def awaiting_eof(self) -> bool:
        return self.lifecycle.state is AWAITING_SERVER_CLOSE

    # -- asyncio callbacks ---------------------------------------------------
    def connection_made(self, transport) -> None:
        w = self.w
        self.transport = transport
        now = clock_ns()
        actions = self.lifecycle.connected(now)
        if self.lifecycle.state is CLOSED:  # the run is over: closed unused, counts nothing
            self._do(actions)
            return
        started = w.connecting.get(self)
        if started is not None:
            w.backoff.succeeded()
            iv = w.iv
            iv.connections_opened += 1
            iv.connect.append(((self.tls_started or now) - started[0]) // 1000)
            if self.tls_started:  # TLS: the handshake apart from the TCP connect
                iv.tls.append((now - self.tls_started) // 1000)
        w.active.add(self)
        self._do(actions)

    def data_received(self, data: bytes) -> None:
        w = self.w
        w.iv.bytes_in += len(data)
        lifecycle = self.lifecycle
        if lifecycle.state is not AWAITING_RESPONSE:
            # idle, or awaiting the server's close after a counted response: no request asked for these
            self._do(lifecycle.unsolicited())
            return
        # The head is capped. On the hot path the head is empty and the read small: two tests.
        if ((self.head or len(data) > MAX_HEADER_BYTES) and not self.headers_done
                and len(self.head) + len(data) > MAX_HEADER_BYTES and self._head_too_large(data)):
            return
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._parse_stopped(data, exc)
            return
        done_at = self.done_at
        if done_at:
            self.done_at = 0
            keep_alive = self.keep_alive
            client_closes = False
            if self.head or self.interims:  # the response took more than one read, or 1xx heads came first
                client_closes = keep_alive and self._closes_after(data)
                self._forget_head()
            elif keep_alive and (data[5] != ONE or data[7] != ONE) and self._closes_after(data):
                # The whole response is in this read and llhttp checked its status line: "HTTP/1.1" has
                # 1 at 5 and 7 (a leading empty line, which llhttp skips, moves them: then it is asked)
                client_closes = True
            # Acted on only now: written from inside the parser's callback, the next request would
            # go out before the rest of this read was seen
            self._do(lifecycle.response_complete(done_at, keep_alive, w.free_run, client_closes=client_closes))
        else:
            self._keep_head(data)  # slow path: a response spread over several reads

    def _closes_after(self, data: bytes) -> bool:
        """An HTTP/1.0 response with Transfer-Encoding: its framing is faulty, so the connection is
        not reused whatever it says (RFC 9112 section 6.1); llhttp would keep it alive. The server
        said it keeps the connection open, so the client closes it (it would wait for a FIN in vain)."""
        return (self.parser.get_http_version() == "1.0"
                and head_declares_transfer_encoding(self._final_head(data)[0]))

    def _parse_stopped(self, data: bytes, exc: Exception) -> None:
        """The parser stopped before the end of the read: bytes after the complete response, a
        response that ends at its head (HEAD), a 101, or bytes that are not HTTP."""
        lifecycle = self.lifecycle
        done_at = self.done_at
        if done_at:  # the response in flight is complete
            self.done_at = 0
            surplus = True  # a message began after it, or llhttp refused bytes after a closing one
            keep_alive = self.keep_alive
            client_closes = False
            if self.cut:  # HEAD: stopped at the blank line that ends the response
                self.cut = False
                client_closes = keep_alive and self._closes_after(data)
                self.parser = httptools.HttpResponseParser(self)  # the old one would wait for a body
                surplus = bool(self._final_head(data)[1].strip(b"\r\n"))
            self._forget_head()
            self._do(lifecycle.response_complete(done_at, keep_alive, self.w.free_run, surplus, client_closes))
            return
        if self.status == SWITCHED or isinstance(exc, httptools.HttpParserUpgrade):
            # 101 to a request that asked no Upgrade: what follows is another protocol
            self._do(lifecycle.error("unexpected_upgrade"))
            return
        if self._ends_at_head_despite_framing(data):
            return
        if not self.w.peer_bytes:  # what the peer said instead of HTTP, shown once in the summary
            self.w.peer_bytes = (self.head or data)[:PEER_BYTES_MAX]
        self._do(lifecycle.error("protocol_error"))

    def _ends_at_head_despite_framing(self, data: bytes) -> bool:
        """llhttp refuses a head with both Transfer-Encoding and Content-Length before it looks at the
        status, but a response to HEAD, a 204 and a 304 end at their blank line whatever their framing
        fields say (RFC 9112 section 6.3: rule 1 comes before rule 3's check). Such a head is parsed
        again without its Content-Length fields, which rule 1 makes moot, by a fresh parser."""
        status = self.parser.get_status_code()
        if not (self.ENDS_AT_HEAD or status in (204, 304)):
            return False
        rest = self.head + data
        for _ in range(self.interims):
            rest = rest[rest.find(b"\r\n\r\n") + 4:]
        end = rest.find(b"\r\n\r\n")
        head = rest if end < 0 else rest[: end + 4]
        if not declares_both_framings(head):
            return False
        self._forget_head()
        if end < 0:  # llhttp stops at the colon of the second field: the head's lines are awaited
            self.head = rest
            self.parser = AwaitingHead(self, status)
            return True
        self.parser = httptools.HttpResponseParser(self)
        again = without_content_length(head) + rest[end + 4:]
        self.w.iv.bytes_in -= len(again)  # counted once already: data_received counts what it is given
        self.data_received(again)
        return True

    def _final_head(self, data: bytes) -> tuple[bytes, bytes]:
        """The final head in the head kept so far and this read (past interim heads), and what follows."""
        rest = self.head + data
        for _ in range(self.interims):
            rest = rest[rest.find(b"\r\n\r\n") + 4:]
        end = rest.find(b"\r\n\r\n") + 4
        return rest[:end], rest[end:]

    def _forget_head(self) -> None:
        self.head = b""
        self.headers_done = False
        self.interims = 0

    def _head_too_large(self, data: bytes) -> bool:
        """A read large enough to hold more than the allowed head: does the head end in time?"""
        end = (self.head + data[: MAX_HEADER_BYTES + 4]).find(b"\r\n\r\n")
        if 0 <= end <= MAX_HEADER_BYTES - 4:
            return False
        self._do(self.lifecycle.error("response_head_too_large"))
        return True

    def _keep_head(self, data: bytes) -> None:
        """Keep the head of an unfinished response: its size is capped, and EOF needs its framing.
        Interim heads completed in this read are dropped from it: the final head decides."""
        if self.headers_done:
            return
        self.head += data
        while self.interims:  # an interim head has no body: it ends at its blank line
            self.interims -= 1
            end = self.head.find(b"\r\n\r\n")
            self.head = self.head[end + 4:] if end >= 0 else b""
        end = self.head.find(b"\r\n\r\n")
        if end >= 0:
            self.head = self.head[: end + 4]
            self.headers_done = True
        elif len(self.head) > MAX_HEADER_BYTES:
            self._do(self.lifecycle.error("response_head_too_large"))

    def eof_received(self):
        self._complete_at_close()
        self._do(self.lifecycle.eof())
        return False  # let the transport close our side: the server closed first

    def _complete_at_close(self) -> None:
        if (self.lifecycle.state is AWAITING_RESPONSE and self.headers_done
                and not head_declares_length(self.head)):  # body delimited by the server's close
            self.status = self.parser.get_status_code()
            self._forget_head()
            self._do(self.lifecycle.response_complete(clock_ns(), False))

    def connection_lost(self, exc) -> None:
        w = self.w
        w.active.discard(self)
        if exc is None:
            self._complete_at_close()  # a close no eof_received announced (TLS without close_notify)
        self._do(self.lifecycle.connection_lost(None if exc is None else errno_name(exc)))
        if w.open_loop:
            w.replenish()
        elif not self.retired:
            w.start_slot()  # this slot's next connection (or its end): it takes the port this one freed
        elif w.waiting:
            # the slot ended with its connection, so its port (unless in TIME_WAIT) is free: a slot in
            # backoff tries at once. Waking one while this slot reconnects too would only make one of
            # the two fail for the one port (measured: ~900 EADDRNOTAVAIL/s with 5 slots too many).
            w.wake_one()

    # -- httptools callbacks -------------------------------------------------
    def on_message_begin(self) -> None:
        if self.done_at:  # a message after the response in flight, in the same read: nobody asked for it
            raise StopParse

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            if status == SWITCHED:
                # llhttp stops after it (HttpParserUpgrade, or "Pause on CONNECT/Upgrade" when the head
                # has no Upgrade fields); raising stops it here in either case: not an answer
                self.status = SWITCHED
                raise StopParse
            # 100 Continue, 102, 103 Early Hints: an interim head (RFC 9110 section 15.2), llhttp ends
            # it at its blank line; the final response that follows answers the request
            self.interims += 1
            return
        self.status = status
        self.keep_alive = self.parser.should_keep_alive()
        self.done_at = clock_ns()

    # -- carrying out the machine's actions ----------------------------------
    def _do(self, actions: Actions) -> None:
        for action in actions:
            kind = type(action)  # the per-request kinds first: a result, a write, idle
            if kind is CountResult:
                if action.kind == "response":
                    iv = self.w.iv
                    iv.requests += 1
                    # open loop: from the intended send time (free of coordinated omission); closed: from the send
                    iv.latency.append(action.latency_ns // 1000)
                    iv.status_codes.append(self.status)
                    if action.service_ns is not None:
                        iv.service.append(action.service_ns // 1000)
                else:
                    self.w.count_error(action.kind, self.number)
            elif kind is Write:
                w = self.w
                request = w.last_request if action.last else w.request
                self.transport.write(request)
                w.iv.bytes_out += len(request)
            elif kind is Idle:
                self._idle()
            elif kind is Close:
                if action.how == "abort":
                    self.transport.abort()  # with SO_LINGER {1,0} (--close rst) it sends RST
                else:
                    self.transport.close()
            elif kind is CountCloseError:
                self.w.count_error(action.kind, self.number)
            elif kind is SetRstOnClose:
                closing.set_rst_on_close(self.transport.get_extra_info("socket"))

    def _idle(self) -> None:
        """Nothing in flight and the connection may go on: the worker says whether it sends again."""
        w = self.w
        if w.open_loop:
            w.ready(self)  # the scheduler decides when it sends
        elif (w.retire and w.claim_retirement(self)) or not w.take():
            self._do(self.lifecycle.finish())
        else:
            self._do(self.lifecycle.send(clock_ns()))

    def start(self, intended: int) -> None:
        """Open loop: send the request that was due at `intended`."""
        self._do(self.lifecycle.send(clock_ns(), intended))

    def finish(self) -> None:
        """The worker has nothing more for this idle connection: it closes as the strategy says."""
        self._do(self.lifecycle.finish())


class HeadConnection(Connection):
    """For HEAD requests: the response has no body whatever its Content-Length says."""

    __slots__ = ()
    ENDS_AT_HEAD = True

    def on_headers_complete(self) -> None:
        if self.parser.get_status_code() < 200:
            return  # an interim head (or 101): llhttp ends it at its blank line itself
        self.on_message_complete()
        # llhttp would now wait for the Content-Length body that never comes: stop it here, and the
        # next response gets a parser that starts afresh (_parse_stopped)
        self.cut = True
        raise StopParse


class Worker:
    def __init__(self, plan: Plan, index: int, connections: int, budget: int | None, share: float = 1.0) -> None:
        self.plan = plan
        self.share = share  # this worker's part of the rate or of the staged connections
        self.index = index
        self.connections = connections
        self.remaining = budget  # None: unlimited (duration-bound)
        # Requests on a connection: all but the last are plain keep-alive requests; with
        # --close server the last one carries Connection: close.
        self.per_connection = plan.per_connection
        self.request = build_request(plan, connection_close=False)
        self.last_request = build_request(plan, closing.asks_server_to_close(plan.close))
        self.rules = Rules(close=plan.close, per_connection=plan.per_connection, open_loop=plan.open_loop,
                           timeout_ns=int(plan.timeout_s * 1e9))
        self.connection_class = HeadConnection if plan.method == "HEAD" else Connection
        self.iv = Interval()
        self.active: set[Connection] = set()
        self.connecting: dict[Connection, tuple[float, asyncio.Task]] = {}
        self.host, self.port = plan.target.address[:2]
        self.sources = plan.sources
        self.tls = tls_context(plan) if plan.target.scheme == "https" else None
        self.next_source = index % len(plan.sources) if plan.sources else 0
        self.stopping = False
        # No budget, stages, open loop or per-connection limit, and not stopping: a kept-alive
        # response is simply followed by the next request (Lifecycle.response_complete's next_ready).
        self.free_run = False
        self.live_slots = 0
        self.retire = 0  # closed-loop stages: slots to end as their connections finish
        self.schedule = None  # set by run(): the rate (open loop) or connections (staged closed loop)
        # open loop (wrk2 / vegeta): requests are due at times that never wait for responses
        self.open_loop = plan.open_loop
        self.due: deque[int] = deque()  # intended send times (clock_ns) waiting for a connection
        self.idle: list[Connection] = []
        self.max_connections = connections  # open loop: this worker's share of --max-connections
        self.scheduled_all = False
        self.next_send = 0  # open loop: index of the next send time the scheduler has not dispatched
        self.attempts = 0  # connections attempted, counting this one
        self.first_errors: dict[str, list] = {}
        self.backoff = ConnectBackoff()  # open loop: after failed connects, wait, growing, never spin
        # closed-loop slots in backoff, oldest first: key -> (timer, the wait they are in)
        self.waiting: dict[int, tuple[asyncio.TimerHandle, float]] = {}
        self.waits = 0  # keys for self.waiting
        self.peer_bytes = b""  # the first bytes of the first response that was not HTTP
        self.peer_bytes_reported = False
        self.started = time.monotonic()
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self.all_done: asyncio.Future = None  # type: ignore[assignment]

    def count_error(self, name: str, connection: int) -> None:
        self.iv.errors[name] += 1
        if name not in self.first_errors:  # when and at which connection it first happened
            # the failing connection's own number: with many slots, attempts has run ahead of it
            self.first_errors[name] = [connection, round(time.monotonic() - self.started, 6)]
            self.iv.first_errors[name] = self.first_errors[name]

    def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.free_run = False
        # Each connection hears it: idle ones close now, connects under way close unused when they
        # complete, requests in flight may finish (the drain) but none follows them.
        for conn in [*self.connecting, *self.active]:
            conn._do(conn.lifecycle.stop())
        while self.waiting:  # slots in backoff end now rather than at their next try
            self.wake_one()

    def follow_plan(self) -> None:
        """The schedule this worker follows, and whether its connections may run free."""
        self.schedule = self.plan.schedule(self.share)
        self.staged_total = self.plan.schedule(1.0)  # staged: every worker's part is taken from the whole
        self.free_run = (self.schedule is None and not self.open_loop and self.remaining is None
                         and self.per_connection is None and not self.stopping)


    def staged_connections(self, t: float) -> int:
        """This worker's whole part of the stages' connection count at t (the parts add up to it)."""
        return worker_part(self.staged_total.value(t), round(1 / self.share), self.index)
    def take(self) -> bool:
        """Claim the right to send one more request."""
        if self.stopping:
            return False
        if self.remaining is None:
            return True
        if self.remaining > 0:
            self.remaining -= 1
            return True
        return False

    # -- connection slots ----------------------------------------------------
    # A slot is a place for one connection. It holds no task while its connection
    # is open: a connect task lives only while connecting, and the connection
    # starts the slot's next connect itself when it is lost. That keeps an idle
    # kept-alive connection down to its transport, parser and protocol object.

    def start_slot(self, waited_s: float = 0.0) -> None:
        """Open the slot's next connection, or end the slot when nothing is left to send.
        `waited_s`: the backoff the slot is in after failed connects (0: none)."""
        if self.retire and not self.stopping:
            self.retire -= 1
            self.live_slots -= 1
            return
        if not self.take():
            self.live_slots -= 1
            # a staged plan may go down to 0 connections and up again: only the end ends it
            if self.live_slots == 0 and (self.schedule is None or self.stopping) and not self.all_done.done():
                self.all_done.set_result(None)
            return
        self.open_connection(waited_s)

    def open_connection(self, waited_s: float = 0.0) -> None:
        self.attempts += 1
        conn = self.connection_class(self, waited_s)
        task = self.loop.create_task(self._connect(conn))
        self.connecting[conn] = (clock_ns(), task)

    def set_slots(self, target: int) -> None:
        """Closed-loop stages: grow or shrink the number of connection slots towards target."""
        current = self.live_slots - self.retire
        if target > current:
            back = min(self.retire, target - current)
            self.retire -= back
            for _ in range(target - current - back):
                self.live_slots += 1
                self.start_slot()
        elif target < current:
            self.retire += current - target
            idle = [c for c in self.active if not c.in_flight and c.transport is not None and not c.retired]
            for conn in idle[: current - target]:  # idle ones end now; busy ones after their response
                self.claim_retirement(conn)
                conn._do(conn.lifecycle.close_idle())

    def claim_retirement(self, conn: Connection) -> bool:
        """This connection's slot ends with it (one of the retirements set_slots asked for)."""
        if not self.retire:
            return False
        self.retire -= 1
        self.live_slots -= 1
        conn.retired = True
        return True

    # -- open loop -----------------------------------------------------------
    def ready(self, conn: Connection) -> None:
        """A connection with nothing in flight: give it the oldest overdue request, or park it."""
        if self.stopping:  # no request is written after stop; what is still due is not_sent
            conn.finish()
        elif self.due:
            conn.start(self.due.popleft())
        else:
            self.idle.append(conn)

    def dispatch(self, intended: int) -> None:
        while self.idle:
            conn = self.idle.pop()
            if conn.lifecycle.state is IDLE_STATE:
                conn.start(intended)
                return
        self.due.append(intended)
        self.grow_pool()

    def grow_pool(self) -> None:
        """Open a connection for waiting requests, but not one per request: a short hiccup would
        then start a storm of connects (each far dearer than a request) that deepens the lag."""
        connecting = len(self.connecting)
        if (len(self.due) > connecting and connecting < MAX_CONNECTING
                and len(self.active) + connecting < self.max_connections):
            self.open_connection()

    def replenish(self) -> None:
        """A connection ended: requests still due get a new one."""
        if self.due and not self.stopping:
            self.grow_pool()

    async def scheduler(self, started: int) -> None:
        """Dispatch every request at its intended time; never wait for a response to send the next."""
        schedule = self.schedule
        k = 0
        due_at = schedule.send_time(0)
        while due_at is not None and not self.stopping:
            now = (clock_ns() - started) / 1e9
            while due_at is not None and due_at <= now:
                if not self.take():
                    due_at = None
                    break
                lag_us = int((now - due_at) * 1_000_000)
                if lag_us > self.iv.max_lag_us:
                    self.iv.max_lag_us = lag_us
                self.dispatch(started + int(due_at * 1e9))
                k += 1
                self.next_send = k
                due_at = schedule.send_time(k)
            if due_at is None:
                break
            await asyncio.sleep(max(0.0, due_at - (clock_ns() - started) / 1e9))
        self.scheduled_all = True

    def count_missed_sends(self, stopped_at: float) -> None:
        """Send times up to the stop that the scheduler had not reached (a busy loop) were due too:
        not_sent, like those that waited in self.due (every due request has a result:
        docs/ARCHITECTURE.md "Every request one result")."""
        if self.schedule is None or self.scheduled_all:
            return
        k = self.next_send
        due_at = self.schedule.send_time(k)
        while due_at is not None and due_at <= stopped_at and (self.remaining is None or self.remaining > 0):
            if self.remaining is not None:
                self.remaining -= 1
            self.iv.errors["not_sent"] += 1
            k += 1
            due_at = self.schedule.send_time(k)
        self.next_send = k

    def open_loop_done(self) -> bool:
        return self.scheduled_all and not self.due and not any(c.in_flight for c in self.active)

    async def _connect(self, conn: Connection) -> None:
        """uvloop connects in libuv (create_connection with a numeric host): about half
        the CPU of sock_connect + create_connection(sock=...). The connect timeout is
        the sweep's job, because an asyncio.timeout() per connect costs more than that.
        """
        try:
            if self.sources or self.tls is not None:
                await self._connect_socket(conn)
            else:
                await self.loop.create_connection(lambda: conn, self.host, self.port)
        except asyncio.CancelledError:
            self.connecting.pop(conn, None)
            if conn.lifecycle.state is not CONNECTING:
                # connection_made ran just before the cancel reached this task: the connection is
                # live and its connection_lost carries the slot on (no error, no second connect)
                return
            if conn.connect_timed_out:
                conn._do(conn.lifecycle.connect_failed("connect_timeout"))
                self.connect_failed(conn)
            else:  # shutting down
                self.stop()
                if not self.open_loop:
                    self.start_slot()
            return
        except ssl.SSLError as exc:
            self.connecting.pop(conn, None)
            conn._do(conn.lifecycle.connect_failed("tls_" + (exc.reason or "error").lower()))
            self.connect_failed(conn)
            return
        except OSError as exc:
            self.connecting.pop(conn, None)
            conn._do(conn.lifecycle.connect_failed(errno_name(exc)))
            self.connect_failed(conn)  # a refusing target or the port wall must not spin a core
            return
        self.connecting.pop(conn, None)

    def connect_failed(self, conn: Connection) -> None:
        """After a failed connect, and a wait that grows while the slot's connects keep failing:
        the slot tries again (closed loop), or the request that waited for this connection has
        failed and the next one gets a new try (open loop)."""
        if self.open_loop:
            if self.due:
                self.due.popleft()
            self.loop.call_later(self.backoff.failed(), self.replenish)
        elif self.stopping:
            self.start_slot()  # ends the slot
        else:
            wait_s = next_wait(conn.waited_s)
            self.waits += 1
            self.waiting[self.waits] = (self.loop.call_later(wait_s, self._waited, self.waits), wait_s)

    def _waited(self, key: int) -> None:
        waiting = self.waiting.pop(key, None)
        if waiting is not None:
            self.start_slot(waiting[1])

    def wake_one(self) -> None:
        """The slot that has waited longest tries now (a port may have come free, or the run stops)."""
        key = next(iter(self.waiting))
        timer, wait_s = self.waiting.pop(key)
        timer.cancel()
        self.start_slot(wait_s)

    async def _connect_socket(self, conn: Connection) -> None:
        """The connect path for source addresses and TLS: our own socket, then the transport.

        A source address is bound with IP_BIND_ADDRESS_NO_PORT, so the kernel still picks
        the port at connect() time per 4-tuple (net/ipv4/inet_hashtables.c: __inet_hash_connect)
        and each address brings a whole ephemeral range. A plain bind(addr, 0) would reserve a
        port per socket up front, and connect() skips reserved ports even on other addresses.
        With TLS the TCP connect and the handshake are timed apart.
        """
        target = self.plan.target
        sock = socket.socket(target.family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.sources:
                source = self.sources[self.next_source]
                self.next_source = (self.next_source + 1) % len(self.sources)
                sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind((source, 0))
            await self.loop.sock_connect(sock, target.address)
            if self.tls is None:
                await self.loop.create_connection(lambda: conn, sock=sock)
            else:
                conn.tls_started = clock_ns()
                await self.loop.create_connection(lambda: conn, sock=sock, ssl=self.tls,
                                                  server_hostname=target.host)
        except BaseException:
            sock.close()
            raise

    def sweep_timeouts(self, requests_only: bool = False) -> None:
        now = clock_ns()
        connect_limit = self.plan.connect_timeout_s * 1e9
        for conn, (started, task) in [] if requests_only else list(self.connecting.items()):
            if now - started > connect_limit and not conn.connect_timed_out:
                conn.connect_timed_out = True
                task.cancel()
        for conn in list(self.active):
            conn._do(conn.lifecycle.timeout_check(now))  # a response, or the server's close after it

    async def drain(self, grace_s: float) -> None:
        """Let requests in flight finish, so connections close cleanly by their strategy.

        Closing a socket with an unread response in its buffer sends RST instead of
        FIN (net/ipv4/tcp.c: __tcp_close, data_was_unread), which would hide the
        strategy's TIME_WAIT footprint at the end of every run.
        """
        # stop() has closed the idle keep-alive connections (the client closes them)
        end = time.monotonic() + grace_s
        next_sweep = time.monotonic() + SWEEP_S
        while self.active and time.monotonic() < end:
            await asyncio.sleep(0.005)
            if time.monotonic() >= next_sweep:
                # --timeout holds in the drain too (as in the core): a request past it is a timeout,
                # not abandoned_at_stop. Connects still pending at stop carry nothing: not swept.
                self.sweep_timeouts(requests_only=True)
                next_sweep += SWEEP_S

    def abandon_in_flight(self) -> None:
        """After the drain bound: a request still without its response is counted
        abandoned_at_stop (once), and every connection left is closed."""
        for conn in list(self.active):
            conn._do(conn.lifecycle.drain_ended())

    def take_snapshot(self) -> Snapshot:
        iv, self.iv = self.iv, Interval()
        snap = iv.snapshot()
        # once per worker (docs/ARCHITECTURE.md "The worker snapshot")
        if self.peer_bytes and not self.peer_bytes_reported:
            snap = replace(snap, peer_bytes=self.peer_bytes)
            self.peer_bytes_reported = True
        return snap

    async def run(self, go_at: float, send) -> None:
        """Run until the deadline, the budget or the stop flag; send(tick, snapshot) each second."""
        self.loop = asyncio.get_running_loop()
        plan = self.plan
        delay = go_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self.started = started = time.monotonic()
        deadline = started + plan.duration_s if plan.duration_s else float("inf")
        self.all_done = all_done = self.loop.create_future()
        self.follow_plan()
        scheduler = None
        if self.open_loop:
            scheduler = self.loop.create_task(self.scheduler(clock_ns()))
        elif self.schedule is not None:
            self.set_slots(self.staged_connections(0.0))
        else:
            self.live_slots = self.connections
            for _ in range(self.connections):
                self.start_slot()
        tick = 1
        while not all_done.done():
            try:
                await asyncio.wait_for(asyncio.shield(all_done), SWEEP_S)
            except TimeoutError:
                pass
            now = time.monotonic()
            self.sweep_timeouts()
            self.iv.fold()  # keeps the per-response lists short: memory stays flat under load
            if self.schedule is not None and not self.open_loop:
                self.set_slots(self.staged_connections(now - started))
            if self.open_loop and self.open_loop_done():
                break
            if now >= started + tick:
                send(tick, self.take_snapshot())
                tick += 1
            if now >= deadline or send.should_stop():
                break
        stopped_at = time.monotonic() - started
        self.stop()  # no new requests; each connection closes as its strategy says
        if scheduler is not None:
            scheduler.cancel()
            self.count_missed_sends(stopped_at)
            self.idle.clear()  # stop() has closed them
        await self.drain(min(DRAIN_S, plan.timeout_s))
        if self.due:  # open loop: due, but no connection ever became free for them
            self.iv.errors["not_sent"] += len(self.due)
            self.due.clear()
        self.abandon_in_flight()
        for _, task in list(self.connecting.values()):
            task.cancel()
        if (self.open_loop or self.live_slots <= 0) and not all_done.done():
            all_done.set_result(None)  # no slots left to wind down
        try:
            await asyncio.wait_for(asyncio.shield(all_done), DRAIN_S)
        except TimeoutError:
            pass
        await asyncio.sleep(0)  # let transports finish closing
        send(tick, self.take_snapshot(), final=True, elapsed=time.monotonic() - started)
