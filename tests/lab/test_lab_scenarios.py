"""Every lab scenario on the real kernel: each claim holds, and the simulator (6.x) agrees where it models it."""

import json
import os
import subprocess
import sys

import pytest

from tests.lab.conftest import lab_unavailable
from twload.lab import scenarios, topology


@pytest.fixture(autouse=True)
def needs_lab():
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    yield
    assert topology.leftovers(mine_only=True) == [], "a scenario left namespaces behind"


@pytest.mark.parametrize("name", list(scenarios.SCENARIOS))
def test_scenario(name):
    checks = scenarios.run(name)
    assert checks
    for check in checks:
        assert check.passed, f"{check.claim}: expected {check.expected}, measured {check.measured}"
        assert check.sim_agrees is not False, f"simulator disagrees: {check.sim} vs {check.measured}"


def test_cli_json_and_compare_sim():
    proc = subprocess.run([sys.executable, "-m", "twload", "lab", "run", "client-close-exhaustion", "--json",
                           "--compare-sim"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    checks = json.loads(proc.stdout)["client-close-exhaustion"]
    assert {c["verdict"] for c in checks} == {"pass"}
    assert checks[0]["sim_agrees"] is True


def test_without_root_it_says_so():
    if not os.path.exists("/usr/bin/setpriv"):
        pytest.skip("SKIPPED LOUDLY: setpriv (util-linux) is not installed, cannot drop root for this check")
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                           "twload", "lab", "run", "--all"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HOME": "/tmp"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "the lab needs root" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_clean_removes_leftovers_of_a_crash():
    subprocess.run(["ip", "netns", "add", "twl-crashed-test"], check=True)
    proc = subprocess.run([sys.executable, "-m", "twload", "lab", "clean"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "twl-crashed-test" in proc.stdout
    assert "twl-crashed-test" not in topology.leftovers()
