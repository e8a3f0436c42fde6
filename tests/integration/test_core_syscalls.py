"""The syscalls the compiled core spends per short connection, counted by strace (counts, not time:
strace slows the traced process, never the count). Guards #13's lever: syscalls per connection."""

import platform
import re
import shutil
import subprocess
import sys

import pytest

from tests.integration.backends import BACKENDS
from twload.engine import core

STRACE = shutil.which("strace")
CONNECTIONS = 400


def traced_run(url: str, tmp_path, strace_options: list[str], io: str, close: str, connections: int = 4):
    """strace (-f: the worker too) of a `twload run` of CONNECTIONS short connections; its output file."""
    out = tmp_path / "strace.txt"
    subprocess.run([STRACE, "-f", *strace_options, "-o", str(out), sys.executable, "-m", "twload", "run", url,
                    "-n", str(CONNECTIONS), "-c", str(connections), "-w", "1", "--close", close, "--io", io,
                    "--engine", "core", "--out", str(tmp_path / "run")],
                   check=True, capture_output=True, timeout=120)
    return out


def syscalls(url: str, tmp_path, io: str, close: str) -> dict[str, int]:
    """Calls by name in a traced run (strace -c)."""
    out = traced_run(url, tmp_path, ["-c"], io, close)
    calls = {}
    for line in out.read_text().splitlines():
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", line)
        if m and m.group(2) != "total":
            calls[m.group(2)] = int(m.group(1))
    return calls


@pytest.fixture
def strace():
    if STRACE is None:
        pytest.skip("SKIPPED LOUDLY: strace is not installed (Debian package strace; `make debs` installs it)")


@pytest.mark.parametrize("io", BACKENDS)
def test_a_short_request_sets_no_socket_option(strace, nginx, tmp_path, io):
    """TCP_NODELAY only after a short write: a small request needs no setsockopt at all."""
    calls = syscalls(nginx.url, tmp_path, io, "server")
    assert calls.get("setsockopt", 0) < CONNECTIONS / 10, calls
    assert nginx.access_lines() == CONNECTIONS


@pytest.mark.skipif(not core.uring_makes_sockets(), reason="io_uring cannot make sockets here (IORING_OP_SOCKET)")
def test_io_uring_makes_its_sockets_through_the_ring(strace, nginx, tmp_path):
    calls = syscalls(nginx.url, tmp_path, "uring", "server")
    # the few left are Python's own (the supervisor, the pre-flight probe)
    assert calls.get("socket", 0) < CONNECTIONS / 10 and calls.get("connect", 0) < CONNECTIONS / 10, calls
    assert nginx.access_lines() == CONNECTIONS


def kernel_at_least(major: int, minor: int) -> bool:
    numbers = re.match(r"(\d+)\.(\d+)", platform.release())
    return bool(numbers) and (int(numbers.group(1)), int(numbers.group(2))) >= (major, minor)


@pytest.mark.skipif(not core.uring_makes_sockets() or not kernel_at_least(6, 7),
                    reason="io_uring sets socket options from Linux 6.7 (SOCKET_URING_OP_SETSOCKOPT)")
def test_io_uring_sets_the_rst_linger_through_the_ring(strace, nginx, tmp_path):
    calls = syscalls(nginx.url, tmp_path, "uring", "rst")
    assert calls.get("setsockopt", 0) < CONNECTIONS / 10 and calls.get("socket", 0) < CONNECTIONS / 10, calls
    assert nginx.access_lines() == CONNECTIONS


def worker_calls(url: str, tmp_path, connections: int) -> list[str]:
    """The order of the worker's socket() / connect() / close() calls on its connections, one letter
    each (S, C, X), from `strace -f` of a short-connection run on epoll."""
    out = traced_run(url, tmp_path, ["-e", "trace=socket,connect,close"], "epoll", "server", connections)
    port = url.rsplit(":", 1)[1].strip("/")
    lines = [re.match(r"(\d+)\s+(\w+)\((.*)\)\s+= (-?\d+)", line) for line in out.read_text().splitlines()]
    calls = [m.groups() for m in lines if m]  # complete calls only (not "<unfinished ...>" halves)
    connects = [pid for pid, name, args, _ in calls if name == "connect" and f"htons({port})" in args]
    worker = max(set(connects), key=connects.count)  # the process that made the run's connections
    sockets: set[str] = set()
    order = []
    for pid, name, args, result in calls:
        if pid != worker:
            continue
        if name == "socket" and args.startswith("AF_INET, SOCK_STREAM") and int(result) >= 0:
            sockets.add(result)
            order.append("S")
        elif name == "connect" and f"htons({port})" in args:
            order.append("C")
        elif name == "close" and args in sockets:
            sockets.discard(args)
            order.append("X")
    return order


def test_epoll_closes_then_makes_then_connects_a_turns_connections(strace, nginx, tmp_path):
    """The work that ends and begins short connections runs in batches at the end of each turn
    (loop_epoll.c: run_pending), which spares the server a wake-up per connect: a turn's connects
    follow one another instead of each standing between a close and a socket()."""
    order = worker_calls(nginx.url, tmp_path, connections=16)
    assert order.count("C") >= CONNECTIONS, order.count("C")
    pairs = list(zip(order, order[1:], strict=False))
    after_connect = sum(1 for a, b in pairs if b == "C" and a == "C")
    after_socket = sum(1 for a, b in pairs if b == "S" and a == "S")
    # one connection per turn would give none of either (X S C X S C ...)
    assert after_connect > order.count("C") / 4, "".join(order[:200])
    assert after_socket > order.count("S") / 4, "".join(order[:200])
    assert nginx.access_lines() == CONNECTIONS


def reads_in(url: str, tmp_path, requests: int, *extra: str) -> int:
    """read() and recvfrom() calls of a traced keep-alive run of `requests` over 4 connections."""
    out = tmp_path / f"strace-{requests}.txt"
    subprocess.run([STRACE, "-f", "-c", "-e", "trace=read,recvfrom", "-o", str(out), sys.executable, "-m", "twload",
                    "run", url, "-n", str(requests), "-c", "4", "-w", "1", "--engine", "core", *extra,
                    "--out", str(tmp_path / f"run-{requests}")], check=True, capture_output=True, timeout=120)
    # strace -c's columns: % time, seconds, usecs/call, calls, errors (empty when none), syscall. The
    # calls are the fourth field; a search from the right took usecs/call when errors was empty
    total = [line.split() for line in out.read_text().splitlines() if line.split()[-1:] == ["total"]]
    assert total, out.read_text()
    return int(total[0][3])


def test_https_keepalive_reads_each_response_once(strace, nginx_tls, tls_certs, tmp_path):
    """Over TLS a keep-alive response costs one read(): OpenSSL reads ahead (a record in one read, not
    its header and then its body) and the loop stops at a short read with nothing left in OpenSSL
    (tls.c: tls_drained), as it stops at a short recv over plain TCP, instead of reading on to EAGAIN.
    Three reads per response before. The difference of two runs: start-up and handshakes cancel out."""
    few, many = 300, 1800
    extra = ("--cacert", str(tls_certs.ca))
    per_response = (reads_in(nginx_tls.url, tmp_path, many, *extra) - reads_in(nginx_tls.url, tmp_path, few, *extra))
    per_response /= many - few
    assert per_response < 1.5, per_response
    assert nginx_tls.access_lines() == few + many
