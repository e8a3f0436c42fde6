"""The lab's own safety, as root in real namespaces: values reach the kernel as data; clean ends a dead lab's
processes and never touches a running lab's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from twload.lab import topology
from twload.lab.nginx import find_nginx
from twload.lab.topology import LabError


def test_a_sysctl_value_is_data_not_a_command(direct, tmp_path):
    """Host.sysctl once ran `sh -c "echo '<value>' > <path>"`: a quote in the value ran the rest as root."""
    ran = tmp_path / "ran"
    before = direct.client.read_sysctl("net.ipv4.tcp_tw_reuse")
    with pytest.raises(LabError, match="cannot set net.ipv4.tcp_tw_reuse"):
        direct.client.sysctl("net.ipv4.tcp_tw_reuse", f"1'; touch {ran}; echo '")
    assert not ran.exists()
    assert direct.client.read_sysctl("net.ipv4.tcp_tw_reuse") == before
    direct.client.sysctl("net.ipv4.tcp_tw_reuse", 0)  # a plain value still lands
    assert direct.client.read_sysctl("net.ipv4.tcp_tw_reuse") == "0"


@pytest.mark.parametrize("name", ["/etc/passwd", "net/../../etc/x", "net.ipv4.tcp_tw_reuse/../../x", ""])
def test_a_sysctl_name_that_could_lead_out_of_proc_sys_is_refused(direct, name):
    with pytest.raises(LabError, match="not a sysctl name"):
        direct.client.sysctl(name, 1)


def netns_idents(prefix: str) -> set[str]:
    """How /proc/<pid>/ns/net names each namespace whose name starts with prefix (by inode): still
    valid once the name is removed, as long as a process keeps the namespace alive."""
    return {f"net:[{os.stat(f'/var/run/netns/{n}').st_ino}]" for n in topology.leftovers() if n.startswith(prefix)}


def netns_processes(idents: set[str]) -> dict[int, str]:
    """PID -> comm of every live process inside those namespaces (read here, apart from the code under test)."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/net") in idents:  # a zombie has no namespace left: not counted
                    found[int(entry)] = Path(f"/proc/{entry}/comm").read_text().strip()
            except OSError:
                continue
    return found


def test_clean_ends_a_crashed_labs_nginx_and_serve_and_spares_a_running_lab(tmp_path):
    """A lab killed outright leaves its namespaces, nginx and twload serve running in them, and its temp
    folders. `twload lab clean` ends those processes (by PID, each checked to be in the dead lab's
    namespace), then removes the namespaces; a running lab's namespace and process are left alone."""
    if find_nginx() is None:
        pytest.skip("SKIPPED LOUDLY: nginx is not installed (Debian package nginx); `make test` installs it")
    decoy_ns = f"{topology.PREFIX}{os.getpid()}-decoy-s"  # this process is alive: a running lab's
    subprocess.run(["ip", "netns", "add", decoy_ns], check=True)
    decoy = subprocess.Popen(["ip", "netns", "exec", decoy_ns, "sleep", "120"])
    lab = subprocess.Popen([sys.executable, "-m", "twload", "lab", "run", "server-close", "--json"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    prefix = f"{topology.PREFIX}{lab.pid}-"
    left: dict[int, str] = {}
    idents: set[str] = set()
    try:
        deadline = time.monotonic() + 60
        while lab.poll() is None and time.monotonic() < deadline:
            idents = netns_idents(prefix)
            left = netns_processes(idents)
            if "nginx" in left.values() and any(c.startswith("python") for c in left.values()):
                break
            time.sleep(0.05)
        assert "nginx" in left.values(), f"the lab did not start nginx: {left}"
        lab.kill()  # a crash: nothing of the lab's own cleanup runs
        lab.wait(timeout=10)
        idents = netns_idents(prefix)  # every namespace it had made by now
        left = netns_processes(idents)
        assert "nginx" in left.values()
        clean = subprocess.run([sys.executable, "-m", "twload", "lab", "clean"], capture_output=True, text=True,
                               timeout=60)
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert "Traceback" not in clean.stderr
        assert netns_processes(idents) == {}, clean.stdout
        assert not any(n.startswith(prefix) for n in topology.leftovers())
        assert "nginx" in clean.stdout and prefix in clean.stdout
        assert decoy.poll() is None and decoy_ns in topology.leftovers() and decoy_ns not in clean.stdout
    finally:
        lab.kill()
        lab.wait(timeout=10)
        for pid in netns_processes(idents | netns_idents(prefix)):  # only if clean failed: leave nothing running
            os.kill(pid, signal.SIGKILL)
        decoy.kill()
        decoy.wait(timeout=10)
        topology.remove([decoy_ns, *(n for n in topology.leftovers() if n.startswith(prefix))])
