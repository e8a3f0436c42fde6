"""Hostile and unusual servers (issue #28), one class per peer, on every engine and I/O backend:
`twload run --json` against a real loopback peer (tests/integration/hostile_peers.py), and the
count oracle on what it reports:

- the client never reports more answers (the sum of its status counts) than the peer read requests;
- every surprise is named in "errors" as agreed for issue #28: 1xx heads count as nothing (the
  final response answers), 101 to a request that asked no Upgrade is `unexpected_upgrade`, bytes
  after a complete response or while nothing is in flight are `unsolicited_response` (outside the
  request ledger), an endless body ends `timeout` or `abandoned_at_stop`, a duplicated
  Content-Length is `protocol_error`, HTTP/1.0 with Transfer-Encoding is framed chunked and the
  connection closed after it, a reset mid-body is `ECONNRESET`;
- the run ends within its bound plus a generous margin (a hang check, not a timing assertion), with
  no traceback, no "Fatal error" and no worker failure;
- the ledger holds: no `uncounted` / `counted_twice` (the core's check, as test_nothing_lost reads
  it), and a run bounded by -n gives each of its n requests exactly one result.

The ids carry "core" for the compiled core's backends, so `make sanitize` (-k core) runs them."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.backends import ENGINE_IDS, ENGINES
from tests.integration.hostile_peers import (
    BackToBackPeer,
    DoubleAnswerPeer,
    DuplicateLengthPeer,
    EndlessBodyPeer,
    HalfClosePeer,
    Http10ChunkedPeer,
    InterimHeadsPeer,
    MidBodyResetPeer,
    TrailingGarbagePeer,
    UpgradePeer,
)
from tests.integration.peers import CountingPeer

pytestmark = pytest.mark.parametrize("engine_io", ENGINES, ids=ENGINE_IDS)
EngineIO = tuple[str, str]  # (engine, io), as in backends.ENGINES
Peers = list[CountingPeer]

# Past its own bound a run may take this much longer before it counts as hung: start-up (Python,
# the worker process) and the drain on a loaded machine. Generous: a hang check, not a timing.
MARGIN_S = 10.0
DRAIN_S = 2.0  # the workers' drain after -d (supervisor.py: 1 s, twice at most)
# Errors that describe a connection, not a request: counted outside the request ledger (the
# core's S_CLOSE_ERRORS)
OUTSIDE_LEDGER = {"unsolicited_response", "no_server_close"}


# What a crash or a caught memory error leaves on stderr: Python's and uvloop's reports, glibc's
# heap checks (malloc.c: "double free or corruption", "malloc(): corrupted ..."), ASan and UBSan
CRASH_SIGNS = ("Traceback", "Fatal error", "double free", "corrupted", "corruption", "AddressSanitizer",
               "runtime error:", "Segmentation fault", "Aborted")


@dataclass
class Outcome:
    summary: dict
    peer_requests: int
    elapsed_s: float

    @property
    def answers(self) -> int:
        return sum(self.summary["status"].values())

    @property
    def errors(self) -> dict[str, int]:
        return self.summary["errors"]

    def __str__(self) -> str:
        return (f"answers {self.answers} for {self.peer_requests} requests received, errors {self.errors}, "
                f"{self.elapsed_s:.1f} s")


@pytest.fixture
def peers() -> Iterator[Peers]:
    """The test appends the peer it starts; each is stopped (its threads joined) at teardown."""
    started: Peers = []
    yield started
    for peer in started:
        peer.close()


def twload(peer: CountingPeer, tmp_path: Path, engine_io: EngineIO, *args: str, bound_s: float) -> Outcome:
    """`twload run --json` against the peer in a process group of its own; `bound_s`: how long the
    run may take by its options (-d plus the drain, or the --timeouts it may wait through). Checks
    what every hostile run must hold and gives the summary with the peer's count."""
    engine, io = engine_io
    command = [sys.executable, "-m", "twload", "run", peer.url, "--engine", engine, "--io", io, "-w", "1",
               "--json", "-q", "--out", str(tmp_path / "run"), *args]
    started = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "COLUMNS": "200"})
    try:
        stdout, stderr = proc.communicate(timeout=bound_s + 3 * MARGIN_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group we started: twload and its worker
        proc.communicate()
        pytest.fail(f"twload run hung: still running {bound_s + 3 * MARGIN_S:g} s after its start; killed")
    elapsed = time.monotonic() - started
    peer.settle()
    try:
        summary = json.loads(stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no summary on stdout (exit {proc.returncode}): {stdout[-500:]!r} {stderr[-2000:]}")
    outcome = Outcome(summary, peer.requests, elapsed)
    print(f"observed: {outcome}")  # the record of each run (pytest -s / -rP shows it)
    crashes = [sign for sign in CRASH_SIGNS if sign in stderr]
    assert not crashes, stderr[-3000:]
    assert "worker_failures" not in summary, (summary["worker_failures"], str(outcome))
    assert proc.returncode == (0 if summary["requests"] else 1), (proc.returncode, stderr[-3000:])
    assert elapsed < bound_s + MARGIN_S, f"the run took {elapsed:.1f} s, its bound is {bound_s:g} s"
    assert "uncounted" not in outcome.errors and "counted_twice" not in outcome.errors, str(outcome)
    assert outcome.answers <= outcome.peer_requests, f"more answers than requests: {outcome}"
    return outcome


def counted(peer: CountingPeer, tmp_path: Path, engine_io: EngineIO, n: int, c: int,
            timeout_s: float = 1.0) -> Outcome:
    """A run of -n n over -c c connections: bounded by its --timeout in each of its n/c rounds;
    each of its n requests has exactly one result, an answer or an error in the ledger."""
    outcome = twload(peer, tmp_path, engine_io, "-n", str(n), "-c", str(c), "--timeout", f"{timeout_s:g}s",
                     bound_s=math.ceil(n / c) * timeout_s)
    results = outcome.answers + sum(count for name, count in outcome.errors.items() if name not in OUTSIDE_LEDGER)
    assert results == n, f"{results} results for -n {n}: {outcome}"
    return outcome


def timed(peer: CountingPeer, tmp_path: Path, engine_io: EngineIO, duration_s: float, c: int,
          *args: str) -> Outcome:
    """A run of -d duration_s over -c c connections: bounded by its duration and drain."""
    return twload(peer, tmp_path, engine_io, "-d", f"{duration_s:g}s", "-c", str(c), *args,
                  bound_s=duration_s + DRAIN_S)


@pytest.mark.parametrize("writes", [1, 2], ids=["one_write", "two_writes"])
class TestMoreResponsesThanRequests:
    """(a) Two responses to each request: the second is never an answer. In one write it is
    unsolicited_response; in two it may come after the next request went out, where it is that
    request's answer to any client, so only the count and the ledger are checked there."""

    def test_bounded_by_duration(self, peers: Peers, tmp_path: Path, engine_io: EngineIO, writes: int) -> None:
        peers.append(peer := DoubleAnswerPeer(writes))
        outcome = timed(peer, tmp_path, engine_io, 0.5, 1)
        assert outcome.answers > 0, str(outcome)
        assert set(outcome.errors) <= {"unsolicited_response", "abandoned_at_stop", "not_sent"}, str(outcome)
        if writes == 1:
            assert outcome.errors.get("unsolicited_response", 0) > 0, str(outcome)

    def test_bounded_by_count(self, peers: Peers, tmp_path: Path, engine_io: EngineIO, writes: int) -> None:
        peers.append(peer := DoubleAnswerPeer(writes))
        outcome = counted(peer, tmp_path, engine_io, 50, 1)
        assert set(outcome.errors) <= {"unsolicited_response"}, str(outcome)
        if writes == 1:
            assert outcome.errors.get("unsolicited_response", 0) > 0, str(outcome)


class TestBackToBackResponses:
    """(b) 64 responses of 256 bytes to each request, one write each, as fast as the socket takes
    them: one answers the request; the rest never count as answers, and must not overrun anything
    kept per request or per connection. One connection, so that whatever is sized by the number
    of connections is smallest (loop_uring.c sizes its queue of clocks to start so; an overrun
    shows under `make sanitize`, or as glibc's heap check on stderr)."""

    def test_bounded_by_duration(self, peers: Peers, tmp_path: Path, engine_io: EngineIO) -> None:
        peers.append(peer := BackToBackPeer())
        outcome = timed(peer, tmp_path, engine_io, 0.5, 1)
        assert outcome.answers > 0, str(outcome)
        assert set(outcome.errors) <= {"unsolicited_response", "abandoned_at_stop", "not_sent"}, str(outcome)
        assert outcome.errors.get("unsolicited_response", 0) > 0, str(outcome)

    def test_bounded_by_count(self, peers: Peers, tmp_path: Path, engine_io: EngineIO) -> None:
        peers.append(peer := BackToBackPeer(corked=True))  # each burst whole before the next request
        outcome = counted(peer, tmp_path, engine_io, 50, 1)
        assert set(outcome.errors) == {"unsolicited_response"}, str(outcome)


class TestInterimHeads:
    """(c) 100 and 103 before each final response, on keep-alive: nothing is counted for them, the
    final response answers its request, and the connection is kept."""

    def test_bounded_by_count(self, peers: Peers, tmp_path: Path, engine_io: EngineIO) -> None:
        peers.append(peer := InterimHeadsPeer())
        outcome = counted(peer, tmp_path, engine_io, 50, 2)
        assert outcome.summary["status"] == {"200": 50}, str(outcome)
        assert outcome.errors == {}, str(outcome)
        assert peer.requests == 50, str(outcome)
        assert outcome.summary["connections_opened"] == 2, str(outcome)

    def test_bounded_by_duration(self, peers: Peers, tmp_path: Path, engine_io: EngineIO) -> None:
        """As fast as it goes for 0.5 s: a head taken for the answer sends the next request early,
        and the answers outrun the requests."""
        peers.append(peer := InterimHeadsPeer())
        outcome = timed(peer, tmp_path, engine_io, 0.5, 2)
        assert set(outcome.summary["status"]) == {"200"}, str(outcome)
        assert set(outcome.errors) <= {"abandoned_at_stop"}, str(outcome)


class TestUpgradeToPlainGet:
    """(d) 101 Switching Protocols to a GET that asked no Upgrade: unexpected_upgrade, the request's
    one result; the connection is closed (each next request opens its own)."""

    def test_the_switch_is_named(self, peers: Peers, tmp_path: Path, engine_io: EngineIO) -> None:
        peers.append(peer := UpgradePeer())
        outcome = counted(peer, tmp_path, engine_io, 8, 4)
        assert outcome.errors == {"unexpected_upgrade": 8}, str(outcome)
        assert outcome.answers == 0, str(outcome)
        assert max(peer.per_connection) == 1, f"a connection used after its 101: {peer.per_connection}"


class TestEndlessBody:
    """(e) A body that never ends, streamed faster than it can be read: the reads of one wake-up
    are bounded, so --timeout and the run's end still come on time. The run's end is tried with the
    chunked body alone (its parsing makes the client's reads the slowest), to keep the suite short."""

    @pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
    def test_the_timeout_ends_it(self, peers: Peers, tmp_path: Path, engine_io: EngineIO, chunked: bool) -> None:
        peers.append(peer := EndlessBodyPeer(chunked))
        outcome = counted(peer, tmp_path, engine_io, 2, 2, timeout_s=0.5)
        assert outcome.errors == {"timeout": 2}, str(outcome)
        assert outcome.answers == 0, str(outcome)

    def test_the_run_ends_on_time(self, peers: Peers, tmp_path: Path, engine_io: EngineIO) -> None:
        peers.append(peer := EndlessBodyPeer(chunked=True))
        outcome = timed(peer, tmp_path, engine_io, 0.5, 2, "--timeout", "30s")
        assert outcome.errors == {"abandoned_at_stop": 2}, str(outcome)
        assert outcome.answers == 0, str(outcome)


class TestTrailingGarbage:
    """(f) Bytes after a complete response: the response stays counted, the surplus is
    unsolicited_response (outside the ledger) and the connection is closed."""

    def test_the_surplus_is_named(self, peers: Peers, tmp_path: Path, engine_io: EngineIO) -> None:
        peers.append(peer := TrailingGarbagePeer())
        outcome = counted(peer, tmp_path, engine_io, 20, 2)
        assert outcome.summary["status"] == {"200": 20}, str(outcome)
        assert set(outcome.errors) == {"unsolicited_response"}, str(outcome)
        assert max(peer.per_connection) == 1, f"a connection used after its surplus: {peer.per_connection}"


@pytest.mark.parametrize("form", ["two_fields", "list"])
class TestDuplicateContentLength:
    """(g) Content-Length twice, even with one value (two fields, or "5, 5"): protocol_error, as
    llhttp and nginx decide (RFC 9110 §8.6 allows it); the connection is closed."""

    def test_it_is_a_protocol_error(self, peers: Peers, tmp_path: Path, engine_io: EngineIO, form: str) -> None:
        peers.append(peer := DuplicateLengthPeer(form))
        outcome = counted(peer, tmp_path, engine_io, 8, 4)
        assert outcome.errors == {"protocol_error": 8}, str(outcome)
        assert outcome.answers == 0, str(outcome)


class TestHttp10Chunked:
    """(h) HTTP/1.0 with Transfer-Encoding: chunked to a kept-alive request, the connection left
    open by the peer: framed by the chunked coding (an answer), then the client closes the
    connection itself (RFC 9112 §6.1), neither reusing it nor waiting for the server's close."""

    def test_framed_chunked_then_closed(self, peers: Peers, tmp_path: Path, engine_io: EngineIO) -> None:
        peers.append(peer := Http10ChunkedPeer())
        outcome = counted(peer, tmp_path, engine_io, 8, 4)
        assert outcome.summary["status"] == {"200": 8}, str(outcome)
        assert outcome.errors == {}, str(outcome)
        assert max(peer.per_connection) == 1, f"a connection kept after HTTP/1.0 + TE: {peer.per_connection}"


class TestResetMidBody:
    """(i) Half the body, then a reset: ECONNRESET, the request's one result."""

    def test_the_reset_is_named(self, peers: Peers, tmp_path: Path, engine_io: EngineIO) -> None:
        peers.append(peer := MidBodyResetPeer())
        outcome = counted(peer, tmp_path, engine_io, 8, 4)
        assert outcome.errors == {"ECONNRESET": 8}, str(outcome)
        assert outcome.answers == 0, str(outcome)


@pytest.mark.parametrize("when", ["mid_body", "before_response"])
class TestHalfClose:
    """(j) The peer's FIN (the shutdown of its writing side) after part of a response, or before
    any: eof_before_response, the request's one result, at once (not a --timeout later)."""

    def test_the_end_of_stream_is_named(self, peers: Peers, tmp_path: Path, engine_io: EngineIO, when: str) -> None:
        peers.append(peer := HalfClosePeer(when))
        outcome = counted(peer, tmp_path, engine_io, 8, 4, timeout_s=5.0)
        assert outcome.errors == {"eof_before_response": 8}, str(outcome)
        assert outcome.answers == 0, str(outcome)
