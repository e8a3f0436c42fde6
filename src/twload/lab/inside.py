"""What the lab's scenarios run inside their namespaces: twload itself (run, doctor), the probes, and the
kernel's counters; each returns what it printed as JSON. Shared by scenarios.py and faults.py."""

from __future__ import annotations

import json
import sys

from twload.lab import topology
from twload.lab.topology import Host, LabError
from twload.sim.run import run_scenario


def twload_run(host: Host, url: str, *args: str, timeout: float = 120) -> tuple[dict, str]:
    out = topology.scratch(host, "run")
    proc = host.run(sys.executable, "-m", "twload", "run", url, "-w", "1", "--json", "--out", out, *args,
                    timeout=timeout)
    if proc.returncode not in (0,) or not proc.stdout.strip():
        raise LabError(f"twload run failed in {host.netns}: {proc.stderr.strip()[-400:]}")
    return json.loads(proc.stdout), proc.stderr


def probe(host: Host, *args: str, timeout: float = 120) -> dict:
    proc = host.run(sys.executable, "-m", "twload.lab.probes", *args, timeout=timeout)
    if proc.returncode != 0:
        raise LabError(f"probe {args[0]} failed in {host.netns}: {proc.stderr.strip()[-400:]}")
    return json.loads(proc.stdout)


def counters(host: Host) -> dict[str, int]:
    return probe(host, "counters")


def delta(before: dict[str, int], after: dict[str, int], name: str) -> int:
    return after.get(name, 0) - before.get(name, 0)


def time_wait(host: Host, **kw) -> int:
    args = [f"--{k}={v}" for k, v in kw.items()]
    return probe(host, "time-wait", *args)["time_wait"]


def port_of(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1])


def sim(name: str, **overrides) -> dict:
    return run_scenario(name, {k: str(v) for k, v in overrides.items()}, kernel="6.x")


def doctor(host: Host, url: str, *args: str) -> dict:
    """`twload doctor URL --json` run in `host` (it exits 2 when it finds a problem: that is its answer)."""
    proc = host.run(sys.executable, "-m", "twload", "doctor", url, "--json", *args, timeout=60)
    if proc.returncode not in (0, 2) or not proc.stdout.strip():
        raise LabError(f"twload doctor failed in {host.netns}: {proc.stderr.strip()[-400:]}")
    return json.loads(proc.stdout)


def finding(report: dict, ident: str) -> dict:
    return next((f for f in report["findings"] if f["id"] == ident), {"level": "absent", "message": ""})


