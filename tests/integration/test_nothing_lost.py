"""Every request due (open loop) or taken (closed loop) ends with exactly one result: a response or an
error by name (docs/ARCHITECTURE.md "Every request one result"). Forced without a slow machine: a
target that accepts and never answers, so due requests queue behind a tiny --max-connections and the
stop comes while the queue is full."""

import json
import socket

import pytest

from tests.integration.backends import ENGINE_IDS, ENGINES
from tests.integration.peers import ListeningPeer
from twload.engine.supervisor import run_to_folder
from twload.kernel.resolve import parse_target
from twload.plan import Plan


class StallingPeer(ListeningPeer):
    """Accepts, reads and never answers; closes everything when the test ends."""

    def __init__(self) -> None:
        self.held: list[socket.socket] = []
        super().__init__(backlog=128)

    def accepted(self, conn: socket.socket) -> None:
        self.held.append(conn)

    def close(self) -> None:
        super().close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def stalling_peer():
    peer = StallingPeer()
    yield peer
    peer.close()


def run(url, tmp_path, engine_io, **kw):
    engine, io = engine_io
    kw.setdefault("timeout_s", 30.0)
    plan = Plan(target=parse_target(url), url=url, engine=engine, io=io, workers=1, **kw)
    return run_to_folder(plan, tmp_path / "run")


@pytest.mark.parametrize("engine_io", ENGINES, ids=ENGINE_IDS)
def test_due_requests_queued_at_stop_are_counted_not_sent(stalling_peer, tmp_path, engine_io):
    """100 due in the first 0.5 s, 2 connections that never get an answer, the stop at 1.5 s."""
    summary = run(stalling_peer.url, tmp_path, engine_io, rate=200.0, open_loop=True, requests=100,
                  duration_s=1.5, max_connections=2)
    errors = summary["errors"]
    assert "uncounted" not in errors and "counted_twice" not in errors
    assert summary["requests"] == 0
    assert errors.get("abandoned_at_stop", 0) == 2  # written, unanswered at the drain bound
    assert errors == {"abandoned_at_stop": 2, "not_sent": 98}


@pytest.mark.parametrize("engine_io", ENGINES, ids=ENGINE_IDS)
def test_every_send_time_up_to_the_stop_has_a_result(stalling_peer, tmp_path, engine_io):
    """Duration-bound: every send time before the deadline is due by the stop, however late the
    engine's loop saw it (the core once lost those past its last hand-over of send times)."""
    summary = run(stalling_peer.url, tmp_path, engine_io, rate=400.0, open_loop=True, duration_s=1.0,
                  max_connections=1)
    errors = summary["errors"]
    assert "uncounted" not in errors and "counted_twice" not in errors
    assert set(errors) == {"abandoned_at_stop", "not_sent"}
    assert summary["requests"] + sum(errors.values()) >= 400  # send times 0 .. 0.9975 s


@pytest.mark.parametrize("engine_io", ENGINES, ids=ENGINE_IDS)
def test_due_requests_older_than_the_timeout_are_not_sent_during_the_run(stalling_peer, tmp_path, engine_io):
    """A server stalled for longer than --timeout: the queue of due requests does not grow for the
    rest of the run (it held 18 million send times after minutes of a stalled soak); those due more
    than --timeout ago are counted not_sent as the run goes, in the seconds' samples, not at the stop."""
    summary = run(stalling_peer.url, tmp_path, engine_io, rate=200.0, open_loop=True, duration_s=3.0,
                  max_connections=2, timeout_s=1.0)
    errors = summary["errors"]
    assert "uncounted" not in errors and "counted_twice" not in errors
    assert set(errors) <= {"not_sent", "timeout", "abandoned_at_stop"}, errors
    assert summary["requests"] + sum(errors.values()) >= 600  # send times 0 .. 2.995 s
    seconds = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    before_the_stop = sum(s["errors"].get("not_sent", 0) for s in seconds if s["t"] <= 2)
    assert before_the_stop >= 100, [s["errors"] for s in seconds]  # due before t=1, dropped by t=2


@pytest.mark.parametrize("engine_io", ENGINES, ids=ENGINE_IDS)
def test_closed_loop_stop_with_every_connection_stalled(stalling_peer, tmp_path, engine_io):
    """Closed loop: what was written and never answered is abandoned_at_stop, once each."""
    summary = run(stalling_peer.url, tmp_path, engine_io, connections=3, duration_s=0.5)
    assert summary["requests"] == 0
    assert summary["errors"] == {"abandoned_at_stop": 3}


@pytest.mark.parametrize("engine_io", ENGINES, ids=ENGINE_IDS)
def test_the_timeout_holds_during_the_drain_on_each_backend(stalling_peer, tmp_path, engine_io):
    """Written at 0 s, the stop at 0.3 s, --timeout 0.5 s inside the drain bound (which ends at 0.8 s):
    each request is a timeout on each backend."""
    engine, io = engine_io
    url = stalling_peer.url
    plan = Plan(target=parse_target(url), url=url, engine=engine, io=io, workers=1, timeout_s=0.5,
                connections=3, duration_s=0.3)
    summary = run_to_folder(plan, tmp_path / "run")
    assert summary["requests"] == 0
    assert summary["errors"] == {"timeout": 3}
