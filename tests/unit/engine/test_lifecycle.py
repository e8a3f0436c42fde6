"""The connection lifecycle (engine/lifecycle.py), driven by events only: no socket, no loop, no clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twload.engine.lifecycle import (
    ABORT,
    CLOSE,
    IDLE,
    SET_RST,
    WRITE,
    WRITE_LAST,
    CountCloseError,
    CountResult,
    Lifecycle,
    LifecycleError,
    Rules,
    State,
)

TIMEOUT_NS = 5_000


def machine(close: str = "keepalive", per_connection: int | None | str = "plan", open_loop: bool = False) -> Lifecycle:
    """per_connection "plan": what Plan.per_connection gives without --requests-per-connection."""
    if per_connection == "plan":
        per_connection = None if close == "keepalive" else 1
    assert not isinstance(per_connection, str)
    return Lifecycle(Rules(close=close, per_connection=per_connection, open_loop=open_loop, timeout_ns=TIMEOUT_NS))


def response(latency_ns: int, service_ns: int | None = None) -> CountResult:
    return CountResult("response", latency_ns, service_ns)


# -- the close strategies -------------------------------------------------------


def test_keepalive_reuses_the_connection_until_the_worker_has_nothing_more():
    m = machine("keepalive")
    assert m.connected(10) == (WRITE,)
    assert m.state is State.AWAITING_RESPONSE
    assert m.response_complete(30, keep_alive=True) == (response(20), IDLE)
    assert m.send(40) == (WRITE,)
    assert m.response_complete(45, keep_alive=True) == (response(5), IDLE)
    assert m.finish() == (CLOSE,)  # budget spent: the client closes the kept-alive connection
    assert m.state is State.CLOSED


def test_a_free_running_worker_gets_the_next_write_with_the_response():
    m = machine("keepalive")
    m.connected(0)
    assert m.response_complete(9, True, next_ready=True) == (response(9), WRITE)
    assert m.sent == 2 and m.state is State.AWAITING_RESPONSE
    m.stop()
    assert m.response_complete(12, True, next_ready=True) == (response(3), IDLE)  # none after stop


def test_next_ready_does_not_override_the_servers_close_or_the_limit():
    m = machine("keepalive", per_connection=2)
    m.connected(0)
    assert m.response_complete(1, False, next_ready=True) == (response(1),)  # the server closes
    m = machine("keepalive", per_connection=2)
    m.connected(0)
    assert m.response_complete(1, True, next_ready=True) == (response(1), WRITE_LAST)
    assert m.response_complete(2, True, next_ready=True) == (response(1), CLOSE)


def test_fin_closes_after_each_response():
    m = machine("fin")
    assert m.connected(0) == (WRITE_LAST,)  # one request per connection; no Connection: close for fin
    assert m.response_complete(7, keep_alive=True) == (response(7), CLOSE)
    assert m.state is State.CLOSED


def test_rst_sets_linger_at_connect_and_aborts_after_the_response():
    m = machine("rst")
    assert m.connected(0) == (SET_RST, WRITE_LAST)
    assert m.response_complete(3, keep_alive=True) == (response(3), ABORT)
    assert m.state is State.CLOSED


def test_server_strategy_asks_for_close_on_the_last_request_and_awaits_the_servers_fin():
    m = machine("server", per_connection=1)
    assert m.connected(0) == (WRITE_LAST,)  # carries Connection: close
    assert m.response_complete(8, keep_alive=False) == (response(8),)
    assert m.state is State.AWAITING_SERVER_CLOSE and m.in_flight  # no Close: that would race the FIN
    assert m.eof() == ()
    assert m.state is State.CLOSED


def test_server_strategy_awaits_the_close_even_if_the_response_allowed_keep_alive():
    m = machine("server", per_connection=1)
    m.connected(0)
    assert m.response_complete(8, keep_alive=True) == (response(8),)  # we asked: the server closes first
    assert m.state is State.AWAITING_SERVER_CLOSE


def test_a_server_that_never_closes_is_no_server_close_counted_apart_from_the_response():
    m = machine("server", per_connection=1)
    m.connected(0)
    m.response_complete(100, keep_alive=False)
    assert m.timeout_check(100 + TIMEOUT_NS) == ()  # the close wait has its own timeout, from the response
    assert m.timeout_check(101 + TIMEOUT_NS) == (CountCloseError("no_server_close"), ABORT)
    assert m.state is State.CLOSED


def test_a_reset_instead_of_the_servers_fin_is_counted_apart_from_the_response():
    m = machine("server", per_connection=1)
    m.connected(0)
    m.response_complete(1, keep_alive=False)
    assert m.connection_lost("ECONNRESET") == (CountCloseError("ECONNRESET"),)


def test_keepalive_strategy_waits_for_the_close_the_server_announced():
    m = machine("keepalive")
    m.connected(0)
    assert m.response_complete(2, keep_alive=False) == (response(2),)  # Connection: close from the server
    assert m.state is State.AWAITING_SERVER_CLOSE


def test_a_response_not_to_be_reused_on_a_connection_the_server_keeps_is_closed_by_the_client():
    """HTTP/1.0 with Transfer-Encoding (RFC 9112 section 6.1): the server said keep-alive, so no FIN
    is coming; waiting for one would end in no_server_close."""
    m = machine("keepalive")
    m.connected(0)
    assert m.response_complete(4, True, next_ready=True, client_closes=True) == (response(4), CLOSE)
    assert m.state is State.CLOSED


def test_fin_closes_first_even_when_the_server_announced_its_close():
    m = machine("fin", per_connection=None)
    m.connected(0)
    assert m.response_complete(2, keep_alive=False) == (response(2), CLOSE)


# -- --requests-per-connection ------------------------------------------------------


def test_per_connection_limit_marks_the_last_request_and_ends_after_it():
    m = machine("keepalive", per_connection=3)
    assert m.connected(0) == (WRITE,)
    assert m.response_complete(1, True) == (response(1), IDLE)
    assert m.send(2) == (WRITE,)
    assert m.response_complete(3, True) == (response(1), IDLE)
    assert m.send(4) == (WRITE_LAST,)  # the third and last
    assert m.response_complete(5, True) == (response(1), CLOSE)  # keepalive: the client closes
    assert (m.sent, m.completed) == (3, 3)


def test_the_last_request_asks_the_server_to_close_only_with_the_server_strategy():
    m = machine("keepalive", per_connection=1)
    assert m.connected(0) == (WRITE_LAST,)
    assert not m.asked_close
    s = machine("server", per_connection=1)
    s.connected(0)
    assert s.asked_close


# -- stop ---------------------------------------------------------------------------


def test_stop_while_connecting_closes_the_connection_unused_and_counts_nothing():
    m = machine("fin")
    assert m.stop() == ()
    assert m.connected(10) == (CLOSE,)
    assert m.state is State.CLOSED and m.sent == 0
    assert m.connection_lost(None) == ()


def test_stop_while_awaiting_a_response_lets_it_finish_and_writes_nothing_after():
    m = machine("keepalive")
    m.connected(0)
    assert m.stop() == ()
    assert m.response_complete(4, True) == (response(4), IDLE)
    with pytest.raises(LifecycleError):
        m.send(5)  # no request is written after stop
    assert m.finish() == (CLOSE,)


def test_stop_while_idle_closes_now():
    m = machine("keepalive", open_loop=True)
    assert m.connected(0) == (IDLE,)  # open loop: the scheduler decides when it sends
    assert m.stop() == (CLOSE,)
    assert m.state is State.CLOSED


def test_drain_end_abandons_the_request_still_out():
    m = machine("keepalive")
    m.connected(0)
    m.stop()
    assert m.drain_ended() == (CountResult("abandoned_at_stop"), ABORT)
    assert m.connection_lost("ECONNRESET") == ()  # its one result is given


def test_drain_end_counts_nothing_more_for_a_connection_only_awaiting_the_servers_close():
    m = machine("server", per_connection=1)
    m.connected(0)
    m.response_complete(1, False)
    assert m.drain_ended() == (ABORT,)


# -- timeouts, EOF and errors ---------------------------------------------------------


def test_timeout_counts_the_request_once_and_drops_the_connection():
    m = machine("keepalive")
    m.connected(1_000)
    assert m.timeout_check(1_000 + TIMEOUT_NS) == ()
    assert m.timeout_check(1_001 + TIMEOUT_NS) == (CountResult("timeout"), ABORT)
    assert m.timeout_check(10**9) == ()
    assert m.connection_lost("ECONNRESET") == ()


def test_eof_before_the_response_is_an_error():
    m = machine("keepalive")
    m.connected(0)
    assert m.eof() == (CountResult("eof_before_response"), ABORT)


def test_eof_on_an_idle_connection_counts_nothing():
    m = machine("keepalive", open_loop=True)
    m.connected(0)
    assert m.eof() == ()
    assert m.state is State.CLOSED


def test_a_reset_while_awaiting_the_response_is_its_result():
    m = machine("keepalive")
    m.connected(0)
    assert m.connection_lost("ECONNRESET") == (CountResult("ECONNRESET"),)


def test_a_clean_close_before_the_response_is_eof_before_response():
    m = machine("keepalive")
    m.connected(0)
    assert m.connection_lost(None) == (CountResult("eof_before_response"),)  # no eof() came first


def test_a_clean_close_after_the_awaited_servers_close_counts_nothing():
    m = machine("server", per_connection=1)
    m.connected(0)
    m.response_complete(1, False)
    assert m.connection_lost(None) == ()


def test_a_connection_counts_at_most_one_error():
    m = machine("keepalive")
    m.connected(0)
    assert m.error("protocol_error") == (CountResult("protocol_error"), ABORT)
    assert m.error("response_head_too_large") == (ABORT,)


def test_bad_bytes_after_the_response_are_counted_as_the_connections_error_not_the_requests():
    m = machine("fin")
    m.connected(0)
    m.response_complete(1, True)
    assert m.error("protocol_error") == (CountCloseError("protocol_error"), ABORT)


def test_a_surplus_after_the_response_is_counted_apart_and_drops_the_connection_before_any_write():
    for close in ("keepalive", "fin", "server", "rst"):
        m = machine(close)
        m.connected(0)
        actions = m.response_complete(7, True, next_ready=True, surplus=True)
        assert actions == (response(7), CountCloseError("unsolicited_response"), ABORT)
        assert m.state is State.CLOSED and m.sent == 1  # the next request was not written here


def test_bytes_with_nothing_in_flight_are_unsolicited_counted_once():
    m = machine("keepalive", open_loop=True)
    m.connected(0)
    assert m.unsolicited() == (CountCloseError("unsolicited_response"), ABORT)  # idle
    assert m.state is State.CLOSED
    assert m.unsolicited() == ()  # closed already
    m = machine("server")
    m.connected(0)
    m.response_complete(3, keep_alive=True)  # the server's close is awaited
    assert m.unsolicited() == (CountCloseError("unsolicited_response"), ABORT)
    assert m.timeout_check(3 + 2 * TIMEOUT_NS) == ()  # no no_server_close after it
    m = machine("keepalive")
    m.connected(0)
    with pytest.raises(LifecycleError):  # bytes while a response is awaited are that response
        m.unsolicited()


def test_a_failed_connect_is_the_slots_result():
    m = machine("keepalive")
    assert m.connect_failed("ECONNREFUSED") == (CountResult("ECONNREFUSED"),)
    with pytest.raises(LifecycleError):
        m.connected(1)


def test_a_response_nobody_awaits_is_ignored():
    m = machine("keepalive", open_loop=True)
    m.connected(0)
    assert m.response_complete(1, True) == ()
    assert m.completed == 0


def test_open_loop_latency_runs_from_the_intended_time_and_service_from_the_write():
    m = machine("keepalive", open_loop=True)
    m.connected(0)
    assert m.send(now=150, intended=100) == (WRITE,)
    assert m.response_complete(170, True) == (response(70, 20), IDLE)


# -- the rule over any sequence of events ----------------------------------------------

EVENTS = ("connected", "connect_failed", "send", "finish", "close_idle", "stop", "timeout_check", "drain_ended",
          "response_keep", "response_keep_next", "response_close", "response_surplus", "unsolicited", "eof",
          "error", "lost_clean", "lost_reset")


def feed(m: Lifecycle, event: str, now: int):
    if event == "connected":
        return m.connected(now)
    if event == "connect_failed":
        return m.connect_failed("ECONNREFUSED")
    if event == "send":
        return m.send(now, intended=now if m.rules.open_loop else 0)
    if event == "finish":
        return m.finish()
    if event == "close_idle":
        return m.close_idle()
    if event == "stop":
        return m.stop()
    if event == "timeout_check":
        return m.timeout_check(now)
    if event == "drain_ended":
        return m.drain_ended()
    if event in ("response_keep", "response_keep_next", "response_close"):
        return m.response_complete(now, keep_alive=event != "response_close", next_ready=event == "response_keep_next")
    if event == "response_surplus":
        return m.response_complete(now, keep_alive=True, next_ready=True, surplus=True)
    if event == "unsolicited":
        return m.unsolicited()
    if event == "eof":
        return m.eof()
    if event == "error":
        return m.error("protocol_error")
    return m.connection_lost(None if event == "lost_clean" else "ECONNRESET")


@settings(max_examples=400, deadline=None)
@given(
    close=st.sampled_from(["keepalive", "fin", "server", "rst"]),
    per_connection=st.one_of(st.none(), st.integers(1, 4)),
    open_loop=st.booleans(),
    steps=st.lists(st.tuples(st.sampled_from(EVENTS), st.integers(0, 2 * TIMEOUT_NS)), max_size=40),
)
def test_every_write_gets_exactly_one_result_whatever_happens(close, per_connection, open_loop, steps):
    m = machine(close, per_connection, open_loop)
    writes = results = connect_failures = 0
    now = 0
    closed = stopped = False
    for event, advance in steps + [("drain_ended", 0), ("lost_reset", 0)]:  # every run ends so
        now += advance
        before = (m.state, m.sent, m.completed, m.failed)
        try:
            actions = feed(m, event, now)
        except LifecycleError:
            assert (m.state, m.sent, m.completed, m.failed) == before  # refused: nothing changed
            continue
        stopped = stopped or event == "stop"
        new_writes = sum(1 for a in actions if a in (WRITE, WRITE_LAST))
        if closed or stopped:
            assert new_writes == 0  # nothing is written after CLOSED or after stop
        writes += new_writes
        # a failed connect is a result without a write (the slot's request was taken for it)
        connect_failures += event == "connect_failed"
        results += sum(1 for a in actions if isinstance(a, CountResult))
        assert results <= writes + connect_failures  # never a second result for one request
        closed = closed or m.state is State.CLOSED
        assert not closed or m.state is State.CLOSED  # CLOSED is the end
    assert m.state is State.CLOSED
    assert results == writes + connect_failures


def test_the_machine_imports_no_clock_and_no_io():
    """The clock comes in as ints: the module imports nothing but the standard typing helpers."""
    import ast
    from pathlib import Path

    import twload.engine.lifecycle as lifecycle

    tree = ast.parse(Path(lifecycle.__file__).read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "dataclasses", "enum", "typing"}
