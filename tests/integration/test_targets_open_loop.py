"""The open loop (--rate, --stages) over targets on several destinations (issue #32): each request that
falls due gets its destination by the targets' weights and waits for a connection of that destination's
own pool (core.c lane_push), so the mix is the file's whatever each destination's speed, and one that
does not answer holds up no other. Recording peers on loopback, on ports of their own."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import pytest

from tests.conftest import free_port
from tests.integration.backends import BACKENDS


@pytest.fixture
def silent():
    """A listener that never accepts: connects complete in its backlog, requests get no answer."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", free_port()))
    sock.listen(256)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    sock.close()


def host(url: str) -> str:
    return url.split("/")[2]


def run(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "twload", "run", "-q", "--out", str(tmp_path / "run"), *args],
                          capture_output=True, text=True, timeout=90, cwd=tmp_path,
                          env={**os.environ, "COLUMNS": "200"})


def summary_of(tmp_path) -> dict:
    return json.loads((tmp_path / "run" / "summary.json").read_text())


@pytest.mark.parametrize("io", BACKENDS)
@pytest.mark.parametrize("close", ["keepalive", "fin"])
def test_due_requests_go_to_their_destination_by_weight(tmp_path, two_peers, io, close):
    a, b = two_peers
    (tmp_path / "t").write_text(f"GET {a.url}a\n\n# weight: 3\nGET {b.url}b?id={{{{seq}}}}\n\nGET {b.url}c\n")
    proc = run(tmp_path, "--targets", "t", "--rate", "200", "-d", "1s", "-w", "1", "--max-connections", "8",
               "--io", io, "--close", close)
    assert proc.returncode == 0, proc.stderr
    summary = summary_of(tmp_path)
    assert summary["errors"] == {} and summary["requests"] == 200
    # the destinations' cycle of weights 1 and 4 (b's two targets): 40 requests to a, 160 to b
    assert len(a.requests) == 40 and len(b.requests) == 160
    assert {line for _, line, _, _ in a.requests} == {"GET /a HTTP/1.1"}
    got_b = [re.sub(r"\?id=\d+", "", line) for _, line, _, _ in b.requests]
    assert got_b.count("GET /b HTTP/1.1") == 120 and got_b.count("GET /c HTTP/1.1") == 40  # b's own cycle: 3 to 1
    assert {dict(f)["Host"] for _, _, f, _ in b.requests} == {host(b.url)}
    rows = summary["destinations"]
    assert [r["destination"] for r in rows] == [host(a.url), host(b.url)]
    opened = [r["connections_opened"] for r in rows]
    assert opened == [a.connections - 1, b.connections - 1]  # less the pre-flight's probe of each
    # each destination's own pool, its share of --max-connections 8 by weight (1:4, so 2 and 6)
    assert [r["connections"] for r in rows] == [2, 6]
    assert opened[0] <= (2 if close == "keepalive" else 40) and opened[1] <= (6 if close == "keepalive" else 160)


def run_fast_and_silent(tmp_path, fast: str, silent: str, *args: str) -> dict:
    """An open loop of 100 req/s on one worker over two targets, `fast` + "fast" and `silent` + "slow",
    with `args`; its summary, once it ran without a traceback."""
    (tmp_path / "t").write_text(f"GET {fast}fast\n\nGET {silent}slow\n")
    proc = run(tmp_path, "--targets", "t", "--rate", "100", "-w", "1", *args)
    assert "Traceback" not in proc.stderr, proc.stderr
    return summary_of(tmp_path)


def test_a_destination_that_does_not_answer_holds_up_no_other(tmp_path, two_peers, silent):
    a, _ = two_peers
    summary = run_fast_and_silent(tmp_path, a.url, silent, "-d", "1s", "--max-connections", "10", "--timeout", "300ms")
    rows = {row["name"]: row for row in summary["targets"]}
    fast = rows[f"GET {a.url}fast"]
    # every other due request is a's, and a's own connections carry all of them, none lent to the silent one
    assert len(a.requests) == 50 and fast["requests"] == 50 and fast["status"] == {"200": 50}
    assert fast["errors"] == {}
    slow = rows[f"GET {silent}slow"]
    assert slow["requests"] == 0 and slow["errors"]
    # the ledger: each of the 100 due requests has one result (an answer or a named error)
    assert summary["requests"] + sum(summary["errors"].values()) == 100


def test_a_silent_destinations_lane_drops_what_waited_longer_than_the_timeout(tmp_path, two_peers, silent):
    """Each destination's lane holds no send time older than --timeout: those are not_sent as the run
    goes (in the seconds' samples, before the stop), so a silent destination's queue does not grow."""
    a, _ = two_peers
    summary = run_fast_and_silent(tmp_path, a.url, silent, "-d", "3s", "--max-connections", "4", "--timeout", "500ms")
    assert summary["requests"] + sum(summary["errors"].values()) == 300
    seconds = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert sum(s["errors"].get("not_sent", 0) for s in seconds if s["t"] <= 2) > 0, [s["errors"] for s in seconds]


def test_stages_over_two_destinations(tmp_path, two_peers):
    a, b = two_peers
    (tmp_path / "t").write_text(f"GET {a.url}\n\nGET {b.url}\n")
    proc = run(tmp_path, "--targets", "t", "--stages", "500ms:40,500ms:40", "--open-loop", "-w", "2",
               "--max-connections", "8")
    assert proc.returncode == 0, proc.stderr
    summary = summary_of(tmp_path)
    assert summary["errors"] == {}
    assert summary["requests"] == len(a.requests) + len(b.requests) > 0
    assert abs(len(a.requests) - len(b.requests)) <= 2  # weights 1:1, two workers each alternating
