"""The entries the io_uring backend submits, counted by the kernel itself: the tracepoint
io_uring:io_uring_submit_req (io_uring/io_uring.c io_submit_sqe, Linux 5.5+; it names the opcode)
in a trace instance of the test's own, so no other tracer's settings are touched, that records the
run's own processes only (set_event_pid with event-fork: the run and the worker it spawns), so another
test's io_uring run beside it (pytest-xdist) is not counted. Guards #13's
lever for keep-alive: one recv armed per connection (multishot), not one per request; and a short
connection's close without an ASYNC_CANCEL."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.backends import NEEDS_URING

TRACING = Path("/sys/kernel/tracing")
EVENT = "events/io_uring/io_uring_submit_req"
CONNECTIONS = 50


@pytest.fixture(scope="module")
def tracefs():
    """/sys/kernel/tracing with tracefs on it: mounted for this module when a fresh machine has not
    mounted it (and unmounted after, as found), so the tests run wherever the suite runs as root."""
    if os.geteuid() != 0:
        pytest.skip("SKIPPED LOUDLY: counting ring entries through tracefs needs root")
    mounted_here = False
    if not (TRACING / "instances").is_dir():
        done = subprocess.run(["mount", "-t", "tracefs", "tracefs", str(TRACING)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"SKIPPED LOUDLY: tracefs is not at {TRACING} and mounting it failed: {done.stderr.strip()}")
        mounted_here = True
    try:
        if not (TRACING / EVENT).is_dir():
            pytest.skip(f"SKIPPED LOUDLY: this kernel's tracefs has no {EVENT}")
        yield TRACING
    finally:
        if mounted_here:
            subprocess.run(["umount", str(TRACING)], check=True)


@pytest.fixture
def ring_trace(tracefs):
    """A trace instance recording the ring entries submitted while it is on: RECV and ASYNC_CANCEL."""
    instance = tracefs / "instances" / f"twload-test-{os.getpid()}"
    instance.mkdir()
    try:
        (instance / EVENT / "filter").write_text('op_str == "RECV" || op_str == "ASYNC_CANCEL"\n')
        yield instance
    finally:
        (instance / EVENT / "enable").write_text("0\n")
        instance.rmdir()


def submitted(instance: Path, url: str, tmp_path, *options: str) -> dict[str, int]:
    """Entries by opcode over one `twload run` on io_uring (one worker); every event counted (no overrun).
    The run waits on its stdin until the instance follows its PID (exec keeps it), so none of its
    processes starts unfollowed."""
    run = [sys.executable, "-m", "twload", "run", url, "-c", str(CONNECTIONS), "-w", "1", "--engine", "core",
           "--io", "uring", "--out", str(tmp_path / "run"), "-q", *options]
    gated = subprocess.Popen(["sh", "-c", 'read go && exec "$@"', "gate", *run], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    (instance / "options" / "event-fork").write_text("1\n")
    (instance / "set_event_pid").write_text(f"{gated.pid}\n")
    (instance / EVENT / "enable").write_text("1\n")
    try:
        _, err = gated.communicate("go\n", timeout=120)
        assert gated.returncode == 0, err
    finally:
        (instance / EVENT / "enable").write_text("0\n")
        if gated.poll() is None:
            gated.kill()
            gated.wait()
    for stats in instance.glob("per_cpu/cpu*/stats"):
        assert "overrun: 0\n" in stats.read_text(), stats.read_text()
    counts: dict[str, int] = {}
    for line in (instance / "trace").read_text().splitlines():
        if "io_uring_submit_req:" in line:
            op = line.split("opcode ", 1)[1].split(",", 1)[0]
            counts[op] = counts.get(op, 0) + 1
    return counts


@NEEDS_URING
def test_keepalive_arms_one_recv_per_connection(ring_trace, nginx, tmp_path):
    """20,000 requests over 50 kept-alive connections: ~50 recvs (multishot), where one per request
    (the single-shot recv) gave 20,000; counts still exact in the server's log."""
    counts = submitted(ring_trace, nginx.url, tmp_path, "-n", "20000", "--close", "keepalive")
    assert nginx.quit_and_count() == 20000
    assert CONNECTIONS <= counts.get("RECV", 0) <= 3 * CONNECTIONS, counts


@NEEDS_URING
def test_a_short_connection_closes_without_a_cancel(ring_trace, nginx, tmp_path):
    """--close server: one single-shot recv per connection, done before the close, so nothing is left
    to cancel (a multishot recv would still be armed at the close and cost an ASYNC_CANCEL)."""
    counts = submitted(ring_trace, nginx.url, tmp_path, "-n", "1000", "--close", "server")
    assert nginx.quit_and_count() == 1000
    assert counts.get("ASYNC_CANCEL", 0) < 1000 / 20, counts
    assert counts.get("RECV", 0) >= 1000, counts
