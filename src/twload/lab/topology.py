"""Network namespaces, veth pairs, addresses and per-namespace sysctls, built with pyroute2.

Everything created here is named with the `twl-` prefix and removed on every exit
path (context manager, atexit, and `clean()` for leftovers of a crash). Addresses
are private addresses that exist only inside these namespaces.
"""

from __future__ import annotations

import atexit
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field

PREFIX = "twl-"


class LabError(RuntimeError):
    """The lab cannot run here; the message says why."""


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, veth pairs, per-namespace sysctls)")


def _pyroute2():
    try:
        from pyroute2 import IPRoute, NetNS, netns
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise LabError(f"pyroute2 is not installed: {exc}") from None
    return IPRoute, NetNS, netns


@dataclass
class Host:
    """One namespace with one address on its veth end."""

    netns: str
    address: str

    def exec_args(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *args]

    def run(self, *args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(self.exec_args(*args), capture_output=True, text=True, timeout=timeout, **kw)

    def popen(self, *args: str, **kw) -> subprocess.Popen:
        return subprocess.Popen(self.exec_args(*args), **kw)

    def twload(self, *args: str) -> list[str]:
        return self.exec_args(sys.executable, "-m", "twload", *args)

    def sysctl(self, name: str, value: str | int) -> None:
        """Write a sysctl inside this namespace only (/proc/sys/net shows the opener's namespace)."""
        path = "/proc/sys/" + name.replace(".", "/")
        proc = self.run("sh", "-c", f"echo '{value}' > {path}")
        if proc.returncode != 0:
            raise LabError(f"cannot set {name}={value} in {self.netns}: {proc.stderr.strip()}")

    def read_sysctl(self, name: str) -> str:
        return self.run("cat", "/proc/sys/" + name.replace(".", "/")).stdout.strip()


@dataclass
class Direct:
    """client ns <-veth-> server ns, on 10.x.y.1 / 10.x.y.2 (a /24 chosen at random per topology)."""

    client: Host
    server: Host
    names: list[str] = field(default_factory=list)

    def close(self) -> None:
        remove(self.names)


def remove(names: list[str]) -> None:
    _, _, netns = _pyroute2()
    for name in names:
        try:
            netns.remove(name)  # removing a namespace removes the veth ends inside it
        except OSError:
            pass


def direct(tag: str | None = None) -> Direct:
    """Create the `direct` topology. Use as a context manager or call close()."""
    require_root()
    IPRoute, NetNS, netns = _pyroute2()
    tag = tag or secrets.token_hex(3)
    names = [f"{PREFIX}{tag}-c", f"{PREFIX}{tag}-s"]
    subnet = f"10.{200 + int(tag[:2], 16) % 50}.{int(tag[2:4], 16)}"
    addresses = [f"{subnet}.1", f"{subnet}.2"]
    ifnames = [f"{PREFIX}{tag}c", f"{PREFIX}{tag}s"]
    atexit.register(remove, list(names))
    try:
        for name in names:
            netns.create(name)
        with IPRoute() as ipr:
            ipr.link("add", ifname=ifnames[0], kind="veth", peer=ifnames[1])
            for ifname, name in zip(ifnames, names, strict=True):
                ipr.link("set", index=ipr.link_lookup(ifname=ifname)[0], net_ns_fd=name)
        for name, ifname, address in zip(names, ifnames, addresses, strict=True):
            with NetNS(name) as ns:
                index = ns.link_lookup(ifname=ifname)[0]
                ns.addr("add", index=index, address=address, prefixlen=24)
                ns.link("set", index=index, state="up")
                ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
    except Exception:
        remove(names)
        raise
    return Direct(Host(names[0], addresses[0]), Host(names[1], addresses[1]), names)


def leftovers() -> list[str]:
    _, _, netns = _pyroute2()
    return [name for name in netns.listnetns() if name.startswith(PREFIX)]


def clean() -> list[str]:
    """Remove every `twl-` namespace left by an earlier crash."""
    names = leftovers()
    remove(names)
    return names
