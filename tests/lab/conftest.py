"""Lab tests: real kernels in network namespaces this test suite creates (root only)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from twload.lab import topology


def lab_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "SKIPPED LOUDLY: lab tests need root (network namespaces); CI runs as root"
    if not shutil.which("ip"):
        return "SKIPPED LOUDLY: iproute2 (`ip`) is not installed; `make test` installs it as root"
    return None


@pytest.fixture
def direct():
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    topo = topology.direct()
    servers: list[subprocess.Popen] = []
    topo.servers = servers
    try:
        yield topo
    finally:
        for proc in servers:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        topo.close()


def start_server(topo, *args: str) -> str:
    """`twload serve` in the server namespace; returns its URL."""
    proc = topo.server.popen(*topo.server.twload("serve", "--host", topo.server.address, "--port", "0", *args)[4:],
                             stdout=subprocess.PIPE, text=True)
    topo.servers.append(proc)
    line = proc.stdout.readline()
    assert "listening on" in line, line
    return line.split("listening on ", 1)[1].split()[0]


def client_json(topo, *args: str, timeout: float = 120) -> tuple[dict, subprocess.CompletedProcess]:
    proc = subprocess.run(topo.client.twload(*args), capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout), proc
