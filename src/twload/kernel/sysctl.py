"""Sysctls of the current network namespace, read from /proc/sys (and written, for doctor --fix).

/proc/sys/net/* shows the network namespace of the process that opens it, so the
same code reads a lab namespace when run with `ip netns exec`.
"""

from __future__ import annotations

import json
import re
import resource
from pathlib import Path

from twload.ports.facts import FIXABLE_SYSCTLS, KernelFacts  # pure data, defined apart; callers may import it here

PROC_SYS = Path("/proc/sys")

# The sysctls the doctor and the port budget reason about. tcp_tw_recycle was removed
# in Linux 4.12 (commit 4396e46187ca, "tcp: remove tcp_tw_recycle"); tcp_tw_reuse_delay
# appeared in 6.13 (net/ipv4/sysctl_net_ipv4.c). Absent ones read as None.
NAMES = (
    "net.ipv4.tcp_timestamps",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.tcp_tw_reuse_delay",
    "net.ipv4.tcp_tw_recycle",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_max_tw_buckets",
    "net.ipv4.tcp_fin_timeout",
    "net.core.somaxconn",
)


# What the fixable sysctls hold: integers, ip_local_port_range two of them (tab-separated when read).
SYSCTL_VALUE = re.compile(r"[0-9]+(?:[ \t]+[0-9]+)*")


class RefusedSysctl(ValueError):
    """A sysctl twload will not write (a name doctor never sets, or a value no fixable sysctl holds)."""


def sysctl_path(name: str, root: Path = PROC_SYS) -> Path:
    return root / name.replace(".", "/")


def read_sysctl(name: str) -> str | None:
    try:
        return sysctl_path(name).read_text().strip()
    except (FileNotFoundError, PermissionError):
        return None


def check_fixable(name: object, value: object) -> None:
    """Only the names doctor itself sets, with a number-shaped value: a name is joined under /proc/sys,
    so anything else ("/etc/x" is an absolute path there) could write outside it."""
    if not isinstance(name, str) or name not in FIXABLE_SYSCTLS:
        raise RefusedSysctl(f"{name!r} is not a sysctl doctor sets ({', '.join(sorted(FIXABLE_SYSCTLS))})")
    if not isinstance(value, str) or not (value == "" or SYSCTL_VALUE.fullmatch(value)):
        raise RefusedSysctl(f"{name!r} = {value!r} is not a value {name} holds")


def write_sysctl(name: str, value: str, root: Path = PROC_SYS) -> None:
    check_fixable(name, value)
    sysctl_path(name, root).write_text(f"{value}\n")


def count_reserved(spec: str | None, low: int, high: int) -> int:
    """'8080,9000-9010' -> how many of those ports fall inside [low, high]."""
    count = 0
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        a, _, b = part.partition("-")
        start, end = int(a), int(b or a)
        count += max(0, min(end, high) - max(start, low) + 1)
    return count


def _int(value: str | None, default: int | None) -> int | None:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def gather() -> KernelFacts:
    values = {name: read_sysctl(name) for name in NAMES}
    low, high = (int(x) for x in (values["net.ipv4.ip_local_port_range"] or "32768 60999").split())
    release = Path("/proc/sys/kernel/osrelease").read_text().strip()
    return KernelFacts(
        tcp_timestamps=_int(values["net.ipv4.tcp_timestamps"], 1),
        tcp_tw_reuse=_int(values["net.ipv4.tcp_tw_reuse"], 0),
        tcp_tw_reuse_delay_ms=_int(values["net.ipv4.tcp_tw_reuse_delay"], None),
        tcp_tw_recycle=_int(values["net.ipv4.tcp_tw_recycle"], None),
        port_low=low,
        port_high=high,
        reserved_ports=count_reserved(values["net.ipv4.ip_local_reserved_ports"], low, high),
        tcp_max_tw_buckets=_int(values["net.ipv4.tcp_max_tw_buckets"], 262144),
        tcp_fin_timeout=_int(values["net.ipv4.tcp_fin_timeout"], 60),
        somaxconn=_int(values["net.core.somaxconn"], 4096),
        nofile_soft=resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        kernel_release=release,
    )


def sysctl_values() -> dict[str, str | None]:
    return {name: read_sysctl(name) for name in NAMES}


class SavedSysctls:
    """Previous values written before `doctor --fix`, so `doctor --restore` can put them back."""

    def __init__(self, path: Path, root: Path = PROC_SYS) -> None:
        self.path = path
        self.root = root  # where the sysctls are: /proc/sys, or a folder that stands in for it in tests

    def save(self, previous: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        old = json.loads(self.path.read_text()) if self.path.exists() else {}
        old.update({k: v for k, v in previous.items() if k not in old})  # keep the oldest value
        self.path.write_text(json.dumps(old, indent=2) + "\n")

    def restore(self) -> dict[str, str]:
        """Write the saved values back and forget them. Every entry is checked before the first write:
        a file with one entry doctor never saved is refused whole (RefusedSysctl) and kept as it is."""
        if not self.path.exists():
            return {}
        try:
            saved = json.loads(self.path.read_text())
        except ValueError:
            saved = None
        if not isinstance(saved, dict):
            raise RefusedSysctl("it holds no saved sysctls (not a JSON object of name: value)")
        for name, value in saved.items():
            check_fixable(name, value)
        for name, value in saved.items():
            if value:  # "": the sysctl did not exist when --fix saved it, so there is nothing to put back
                write_sysctl(name, value, self.root)
        self.path.unlink()
        return saved
