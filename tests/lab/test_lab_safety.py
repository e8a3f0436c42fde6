"""The lab's own safety, as root in real namespaces: values reach the kernel as data; clean ends a dead lab's
processes and never touches a running lab's."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
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


def test_clean_ends_a_crashed_labs_nginx_and_serve_and_spares_a_running_lab():
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
        # nginx -p <the lab's temp folder>: the master's command line (nginx rewrites it as one string)
        words = [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().split()
                 for pid, name in left.items() if name == "nginx"]
        workdir = Path(next(w[w.index("-p") + 1] for w in words if "-p" in w))
        assert workdir.is_dir()
        clean = subprocess.run([sys.executable, "-m", "twload", "lab", "clean"], capture_output=True, text=True,
                               timeout=60)
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert "Traceback" not in clean.stderr
        assert netns_processes(idents) == {}, clean.stdout
        assert not any(n.startswith(prefix) for n in topology.leftovers())
        assert "nginx" in clean.stdout and prefix in clean.stdout
        assert decoy.poll() is None and decoy_ns in topology.leftovers() and decoy_ns not in clean.stdout
        assert not workdir.exists(), clean.stdout
    finally:
        lab.kill()
        lab.wait(timeout=10)
        for pid in netns_processes(idents | netns_idents(prefix)):  # only if clean failed: leave nothing running
            os.kill(pid, signal.SIGKILL)
        decoy.kill()
        decoy.wait(timeout=10)
        topology.remove([decoy_ns, *(n for n in topology.leftovers() if n.startswith(prefix))])


def test_a_lab_removes_its_temporary_folders_when_it_closes(direct):
    """The scenarios' run folders (twload run --out) lived on in /tmp after every lab."""
    from twload.lab import scenarios

    url = direct.lab.serve(direct.server)
    summary, _ = scenarios.twload_run(direct.client, url, "-n", "3", "-c", "1")
    assert summary["requests"] == 3
    base = Path(tempfile.gettempdir())
    made = [p for p in base.iterdir() if p.name.startswith(direct.client.netns + "-run-")]
    assert made and all(p.is_dir() for p in made)
    direct.close()
    assert [p for p in made if p.exists()] == []


def test_clean_removes_a_dead_labs_folders_only(tmp_path):
    """Named with the owner's PID, like the namespaces: a dead owner's go, a live one's and a link stay."""
    base = Path(tempfile.gettempdir())
    dead = base / f"{topology.PREFIX}{dead_pid()}-crashed-c-run-1"
    alive = base / f"{topology.PREFIX}{os.getpid()}-running-c-run-1"
    planted = base / f"{topology.PREFIX}{dead_pid()}-planted"  # a link under a dead lab's name: not followed
    target = tmp_path / "not-the-labs"
    target.mkdir()
    (target / "keep").write_text("x")
    try:
        for folder in (dead, alive):
            folder.mkdir()
            (folder / "summary.json").write_text("{}")
        planted.symlink_to(target)
        clean = subprocess.run([sys.executable, "-m", "twload", "lab", "clean"], capture_output=True, text=True,
                               timeout=60)
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert not dead.exists() and str(dead) in clean.stdout
        assert alive.is_dir() and (target / "keep").exists() and planted.is_symlink()
    finally:
        for path in (dead, alive):
            shutil.rmtree(path, ignore_errors=True)
        planted.unlink(missing_ok=True)


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid
