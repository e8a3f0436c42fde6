"""The syscalls the compiled core spends per short connection, counted by strace (counts, not time:
strace slows the traced process, never the count). Guards #13's lever: syscalls per connection."""

import platform
import re
import shutil
import subprocess
import sys

import pytest

from tests.integration.test_core_engine import BACKENDS
from twload.engine import core

STRACE = shutil.which("strace")
CONNECTIONS = 400


def syscalls(url: str, tmp_path, io: str, close: str) -> dict[str, int]:
    """Calls by name in a `twload run` of CONNECTIONS short connections (strace -c -f: the worker too)."""
    out = tmp_path / "strace.txt"
    subprocess.run([STRACE, "-c", "-f", "-o", str(out), sys.executable, "-m", "twload", "run", url,
                    "-n", str(CONNECTIONS), "-c", "4", "-w", "1", "--close", close, "--io", io,
                    "--engine", "core", "--out", str(tmp_path / "run")],
                   check=True, capture_output=True, timeout=120)
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
