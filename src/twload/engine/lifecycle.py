"""One connection's lifecycle as a pure state machine (sans-IO, as in h11): events in, actions out.

The asyncio engine's Connection is the adapter: it turns transport and parser callbacks into the
events below (methods of Lifecycle, each returning a tuple of actions) and carries the actions
out (transport.write, close or abort, counting on the Worker). The machine decides what the
close strategy, the per-connection limit, the timeout, EOF and the stop mean for this one
connection; the Worker keeps the pool: budget, slots, stages, the open loop's queue.

Clock values are integer nanoseconds passed in by the caller; nothing here reads a clock or
touches a socket. The rule it keeps (docs/ARCHITECTURE.md "Every request one result"): every
request written yields exactly one result, a response or an error by name; after stop no request
is written; a connect that completes after stop is closed unused and counts nothing.

    CONNECTING --connected--> AWAITING_RESPONSE (closed loop: the slot's request is written)
               \\-connected--> IDLE (open loop: the scheduler decides)    or CLOSED after stop
    IDLE --send--> AWAITING_RESPONSE --response_complete--> IDLE (kept alive: Idle action)
                                                       \\--> AWAITING_SERVER_CLOSE (we asked, or
                                                            the server announced its close)
                                                       \\--> CLOSED (fin, rst, keepalive's end), or with surplus bytes
    IDLE --finish/stop/close_idle/eof/unsolicited--> CLOSED;   AWAITING_SERVER_CLOSE --eof/unsolicited--> CLOSED
    any --error/timeout_check/drain_ended/connection_lost--> CLOSED (the end: nothing is written)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal, NamedTuple


class State(Enum):
    CONNECTING = "connecting"
    IDLE = "idle"  # connected, nothing in flight: the worker gives it a request or ends it
    AWAITING_RESPONSE = "awaiting_response"  # a request is written, its response not complete
    AWAITING_SERVER_CLOSE = "awaiting_server_close"  # response complete, the server's FIN awaited
    CLOSED = "closed"


# Module-level names for the per-request path: on Python 3.11 each State.X lookup costs ~0.2 µs.
CONNECTING, IDLE_STATE, AWAITING_RESPONSE, AWAITING_SERVER_CLOSE, CLOSED = State
IN_FLIGHT = (AWAITING_RESPONSE, AWAITING_SERVER_CLOSE)


class LifecycleError(Exception):
    """The adapter fed an event the current state does not allow (a bug in the adapter)."""


# -- actions ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Write:
    """Write a request. last: the connection's last one (--requests-per-connection reached): with
    --close server it carries Connection: close."""

    last: bool


@dataclass(frozen=True, slots=True)
class Close:
    """close: flush, then close (FIN; RST under SO_LINGER {1,0}). abort: drop at once."""

    how: Literal["close", "abort"]


class CountResult(NamedTuple):
    """The one result of a written request (or of a failed connect): "response" or an error name.
    For a response: latency from the intended send time (open loop) or from the write, and the
    service time from the write (open loop only, else None). Immutable like the other actions, but
    a NamedTuple: one is built per response, 4x faster than a frozen dataclass (0.4 against 1.5 µs)."""

    kind: str
    latency_ns: int = 0
    service_ns: int | None = None


@dataclass(frozen=True, slots=True)
class CountCloseError:
    """An error about the connection, not a request: its request (if any) already has its
    result (docs/ARCHITECTURE.md "Every request one result": no_server_close, a reset while the
    server's close is awaited, bytes that arrive with nothing in flight). Counted in errors{},
    outside the one-result-per-request rule."""

    kind: str


@dataclass(frozen=True, slots=True)
class SetRstOnClose:
    """--close rst: set SO_LINGER {1,0} once connected, so that closing sends RST."""


@dataclass(frozen=True, slots=True)
class Idle:
    """Nothing in flight and the connection may carry another request: the worker decides (send
    or finish), by its budget, its stages, its open-loop queue."""


Action = Write | Close | CountResult | CountCloseError | SetRstOnClose | Idle
Actions = tuple[Action, ...]

# Allocated once: the hot keep-alive path returns these without building new objects.
WRITE = Write(last=False)
WRITE_LAST = Write(last=True)
CLOSE = Close("close")
ABORT = Close("abort")
IDLE = Idle()
SET_RST = SetRstOnClose()
UNSOLICITED = CountCloseError("unsolicited_response")
NOTHING: Actions = ()


@dataclass(frozen=True, slots=True)
class Rules:
    """What the plan says about every connection of a worker."""

    close: str  # keepalive | fin | server | rst (plan.CLOSE_STRATEGIES)
    per_connection: int | None  # --requests-per-connection (None: no limit)
    open_loop: bool  # --rate: connections wait for the scheduler instead of sending at once
    timeout_ns: int  # --timeout: for a response, and for the server's close after one


class Lifecycle:
    """One connection. Each event method returns the actions the adapter carries out, in order."""

    __slots__ = ("rules", "state", "stopping", "failed", "sent", "completed", "asked_close",
                 "sent_at", "intended")

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.state = CONNECTING
        self.stopping = False  # the run is over: no request is written any more
        self.failed = False  # an error was counted for this connection (at most one is)
        self.sent = 0  # requests written
        self.completed = 0  # responses complete
        self.asked_close = False  # the request in flight carries Connection: close
        self.sent_at = 0  # ns: the write in flight, or the start of the wait for the server's close
        self.intended = 0  # ns: open loop, when the request in flight was due (0: closed loop)

    @property
    def in_flight(self) -> bool:
        """A request is out, or its response is done and the server's close is awaited."""
        return self.state in IN_FLIGHT

    # -- events from the connect ---------------------------------------------
    def connected(self, now: int) -> Actions:
        if self.state is not CONNECTING:
            raise LifecycleError(f"connected while {self.state.value}")
        if self.stopping:
            # It carries no request yet: closed unused, it counts nothing
            # (docs/ARCHITECTURE.md "Every request one result").
            self.state = CLOSED
            return (CLOSE,)
        self.state = IDLE_STATE
        first: Actions = (SET_RST,) if self.rules.close == "rst" else NOTHING
        if self.rules.open_loop:
            return first + (IDLE,)  # the scheduler decides when it sends
        return first + self.send(now)  # closed loop: the slot took its request before connecting

    def connect_failed(self, error: str) -> Actions:
        """connect() failed (errno name, connect_timeout, tls_*): that error is the slot's result."""
        if self.state is not CONNECTING:
            raise LifecycleError(f"connect_failed while {self.state.value}")
        self.state = CLOSED
        self.failed = True
        return (CountResult(error),)

    # -- events from the worker ----------------------------------------------
    def send(self, now: int, intended: int = 0) -> Actions:
        """The worker hands this idle connection a request (intended: open loop, when it was due)."""
        if self.state is not IDLE_STATE or self.stopping:
            raise LifecycleError(f"send while {self.state.value}{', stopping' if self.stopping else ''}")
        rules = self.rules
        self.sent += 1
        last = rules.per_connection is not None and self.sent >= rules.per_connection
        self.asked_close = last and rules.close == "server"
        self.state = AWAITING_RESPONSE
        self.sent_at = now
        self.intended = intended
        return (WRITE_LAST,) if last else (WRITE,)

    def finish(self) -> Actions:
        """The worker has no request for this idle connection (budget spent, its slot retired,
        or the run stopped): it ends as the strategy says."""
        if self.state is not IDLE_STATE:
            raise LifecycleError(f"finish while {self.state.value}")
        return self._end(keep_alive=True, now=0)

    def close_idle(self) -> Actions:
        """Stages shrink: a connection with nothing in flight is closed now (its slot ends)."""
        if self.state is IDLE_STATE:
            self.state = CLOSED
            return (CLOSE,)
        return NOTHING  # already closing (or in flight, which the worker does not ask)

    def stop(self) -> Actions:
        """The run is over. A request in flight may still finish (the drain); an idle connection is
        closed now; a connect still under way is closed unused when it completes."""
        self.stopping = True
        if self.state is IDLE_STATE:
            self.state = CLOSED
            return (CLOSE,)
        return NOTHING

    def timeout_check(self, now: int) -> Actions:
        """--timeout passed for the response, or for the server's close after it."""
        if self.state in IN_FLIGHT and now - self.sent_at > self.rules.timeout_ns:
            return self.error("no_server_close" if self.state is AWAITING_SERVER_CLOSE else "timeout")
        return NOTHING

    def drain_ended(self) -> Actions:
        """The drain bound after stop has passed: a request still without its response is
        abandoned_at_stop; a connection awaiting only the server's close counts nothing more.
        Whatever is left is dropped."""
        actions: Actions = NOTHING
        if self.state is AWAITING_RESPONSE and not self.failed:
            self.failed = True
            actions = (CountResult("abandoned_at_stop"),)
        self.state = CLOSED
        return actions + (ABORT,)

    # -- events from the peer ------------------------------------------------
    def response_complete(self, now: int, keep_alive: bool, next_ready: bool = False,
                          surplus: bool = False, client_closes: bool = False) -> Actions:
        """The parser completed a response; keep_alive: the response allows another request.
        next_ready: the worker has the next request for this connection already (a free-running
        closed loop: no budget, stages or limit), so it is written at once instead of asking with
        Idle. That saves the hot keep-alive path a round trip through the worker.
        surplus: more bytes came after it in the same read, which no request asked for: the response
        counts, the surplus is unsolicited_response (outside the one result per request), and the
        connection is dropped before anything else is written on it (docs/ARCHITECTURE.md
        "Server surprises").
        client_closes: the server keeps the connection open, but it is not to be reused (an HTTP/1.0
        response with Transfer-Encoding, RFC 9112 section 6.1): the client closes it."""
        if self.state is not AWAITING_RESPONSE:
            return NOTHING  # e.g. a body delimited by EOF completed after we gave up on it
        self.completed += 1
        intended = self.intended
        result = CountResult("response", now - (intended or self.sent_at), now - self.sent_at if intended else None)
        if surplus:
            self.state = CLOSED
            self.failed = True
            return (result, UNSOLICITED, ABORT)
        limit = self.rules.per_connection
        if keep_alive and not client_closes and not self.asked_close and (limit is None or self.completed < limit):
            self.state = IDLE_STATE
            if next_ready and not self.stopping:
                return (result, *self.send(now))
            return (result, IDLE)
        return (result, *self._end(keep_alive, now))

    def unsolicited(self) -> Actions:
        """Bytes from the server while no request is in flight: on an idle connection, or while its
        close is awaited after a counted response. unsolicited_response, counted outside the one
        result per request (docs/ARCHITECTURE.md "Server surprises"); the connection is dropped."""
        if self.state is AWAITING_RESPONSE:
            raise LifecycleError("unsolicited while awaiting_response")  # those bytes are its response
        if self.state is CLOSED:
            return NOTHING  # closed already: what still arrives goes with it
        self.state = CLOSED
        if self.failed:
            return (ABORT,)
        self.failed = True
        return (UNSOLICITED, ABORT)

    def eof(self) -> Actions:
        """The server closed its side (the adapter has already completed a response whose body
        ends at EOF). Our side then closes with the transport: no Close action needed."""
        if self.state is AWAITING_RESPONSE:
            return self.error("eof_before_response")
        if self.state is not CLOSED:
            self.state = CLOSED  # the awaited close, or the server ending an idle connection
        return NOTHING

    def error(self, name: str) -> Actions:
        """Something is wrong with this connection (protocol_error, response_head_too_large, a
        timeout, EOF too early): counted once per connection, then the connection is dropped."""
        actions: Actions = (ABORT,)
        if not self.failed:
            self.failed = True
            count = CountResult(name) if self.state is AWAITING_RESPONSE else CountCloseError(name)
            actions = (count, ABORT)
        self.state = CLOSED
        return actions

    def connection_lost(self, error: str | None) -> Actions:
        """The transport is gone; error: its errno name, None for a clean close. A reset while a
        response (or the server's close) is awaited is counted, also during the drain. A clean
        close while the response is awaited is an EOF the transport did not report (a TLS peer
        closing TCP without close_notify): eof_before_response, so the request has its result."""
        actions = NOTHING
        if not self.failed:
            if self.state is AWAITING_RESPONSE:
                actions = (CountResult(error or "eof_before_response"),)
            elif self.state is AWAITING_SERVER_CLOSE and error is not None:
                actions = (CountCloseError(error),)
        self.state = CLOSED
        return actions

    # -- the close strategies ------------------------------------------------
    def _end(self, keep_alive: bool, now: int) -> Actions:
        """No more requests on this connection: close it the way the strategy says."""
        close = self.rules.close
        if close == "rst":
            self.state = CLOSED
            return (ABORT,)  # SO_LINGER {1,0} is set: the close sends RST
        if close == "fin":
            self.state = CLOSED
            return (CLOSE,)  # the client closes first: TIME_WAIT stays here
        if self.asked_close or not keep_alive:
            # We asked for Connection: close, or the server announced its close: the server
            # closes first, so wait for its FIN (eof) before closing ours. Closing as soon as the
            # body is complete would race that FIN and leave TIME_WAIT on the client after all.
            self.state = AWAITING_SERVER_CLOSE
            self.sent_at = now  # the wait for the close gets its own --timeout
            return NOTHING
        self.state = CLOSED
        return (CLOSE,)  # out of requests on a kept-alive connection: the client closes
