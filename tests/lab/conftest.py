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
    try:
        yield topo
    finally:
        topo.close()


def start_server(topo, *args: str) -> str:
    """`twload serve` in the server namespace; returns its URL."""
    return topo.lab.serve(topo.server, *args)


def client_json(topo, *args: str, timeout: float = 120) -> tuple[dict, subprocess.CompletedProcess]:
    proc = subprocess.run(topo.client.twload(*args), capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout), proc
