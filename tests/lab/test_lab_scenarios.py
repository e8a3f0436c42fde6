"""Every lab scenario on the real kernel: each claim holds, and the simulator (6.x) agrees where it models it."""

import json
import os
import subprocess
import sys
import time

import pytest

from tests.lab.conftest import lab_unavailable
from twload.lab import scenarios, topology
from twload.lab.haproxy import find_haproxy


@pytest.fixture(autouse=True)
def needs_lab():
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    yield
    # also those of `twload lab run` subprocesses: their owner PID is dead once they exit
    assert topology.leftovers(mine_only=True) + topology.orphans() == [], "a scenario left namespaces behind"


# Spend their time waiting (out TIME_WAIT; on a target's outage, a lossy path's timeouts, a slow
# accepter; the fault scenarios load lightly: open loops at low rates or a few connections): each group
# runs as one `twload lab run` subprocess beside the module's other tests (a lab touches only its own
# namespaces, named with its owner's PID), and the module's last test reads their verdicts. The
# first saves ~60 s of the suite, the second ~25 s.
BESIDE = {"time-wait": ["time-wait-60s"],
          "faults": [name for name in scenarios.SCENARIOS if name.startswith("fault-")]}
BESIDE_NAMES = {name for names in BESIDE.values() for name in names}


@pytest.fixture(scope="module", autouse=True)
def lab_beside():
    if lab_unavailable():
        yield None
        return
    procs = {group: subprocess.Popen([sys.executable, "-m", "twload", "lab", "run", *names, "--json", "--compare-sim"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for group, names in BESIDE.items()}
    yield procs
    for proc in procs.values():
        if proc.poll() is None:  # the last test did not collect it (failed or deselected): stop it, by its PID
            proc.terminate()
            proc.communicate(timeout=30)


@pytest.mark.parametrize("name", [name for name in scenarios.SCENARIOS if name not in BESIDE_NAMES])
def test_scenario(name):
    if name.startswith("lb-haproxy") and find_haproxy() is None:
        pytest.skip("SKIPPED LOUDLY: HAProxy is not installed (Debian package haproxy); `make test` installs it")
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


def dead_pid() -> int:
    """The PID of a process that has exited (a crashed lab's owner)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_clean_removes_leftovers_of_a_crash_and_spares_a_running_lab():
    crashed, running = f"twl-{dead_pid()}-crashed-c", f"twl-{os.getpid()}-running-c"
    for name in (crashed, running):
        subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        proc = subprocess.run([sys.executable, "-m", "twload", "lab", "clean"], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0 and crashed in proc.stdout and running not in proc.stdout
        assert crashed not in topology.leftovers()
        assert running in topology.leftovers()  # its owner (this process) is alive
    finally:
        topology.remove([crashed, running])


def test_lab_runs_while_clean_runs_beside_it():
    """20 times: `twload lab clean` while a `twload lab run` has its namespaces up. Clean must not
    pull a running lab's namespaces from under it (they carry their owner's PID), and the lab
    must not lose them otherwise (pyroute2's forked helpers once tore it down)."""
    for i in range(20):
        lab = subprocess.Popen([sys.executable, "-m", "twload", "lab", "run", "rst-close", "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        prefix = f"{topology.PREFIX}{lab.pid}-"
        deadline = time.monotonic() + 60
        while lab.poll() is None and time.monotonic() < deadline:
            if any(name.startswith(prefix) for name in topology.leftovers()):
                break
            time.sleep(0.05)
        clean = subprocess.run([sys.executable, "-m", "twload", "lab", "clean"], capture_output=True, text=True,
                               timeout=60)
        stdout, stderr = lab.communicate(timeout=120)
        assert clean.returncode == 0 and prefix not in clean.stdout, clean.stdout + clean.stderr
        assert lab.returncode == 0, f"run {i + 1}: {stderr}"
        assert {c["verdict"] for c in json.loads(stdout)["rst-close"]} == {"pass"}


@pytest.mark.parametrize("group", list(BESIDE))
def test_scenarios_run_beside_the_others(lab_beside, group):
    """The BESIDE scenarios, started when this module began: same verdicts as test_scenario asks."""
    proc = lab_beside[group]
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr + stdout
    results = json.loads(stdout)
    assert sorted(results) == sorted(BESIDE[group])
    for name, checks in results.items():
        assert checks, name
        for check in checks:
            assert check["verdict"] == "pass", \
                f"{name}: {check['claim']}: expected {check['expected']}, measured {check['measured']}"
            assert check["sim_agrees"] is not False, f"simulator disagrees: {check['sim']} vs {check['measured']}"
