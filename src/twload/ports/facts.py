"""Facts about this host as plain values (pure): what the doctor's rules and the port budget reason over.

twload.kernel.sysctl gathers them from /proc/sys (and re-exports KernelFacts); tests build them by hand.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# The sysctls `doctor --fix` may set (the doctor's rules name no other: Finding refuses one), and so the
# only ones `doctor --restore` writes back: a state file naming anything else is refused whole.
FIXABLE_SYSCTLS = frozenset({
    "net.ipv4.tcp_tw_recycle",
    "net.ipv4.tcp_timestamps",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.ip_local_port_range",
})


@dataclass(frozen=True)
class KernelFacts:
    """What the doctor and the budget need to know about this host, as plain values."""

    tcp_timestamps: int = 1
    tcp_tw_reuse: int = 2
    tcp_tw_reuse_delay_ms: int | None = 1000
    tcp_tw_recycle: int | None = None
    port_low: int = 32768
    port_high: int = 60999
    reserved_ports: int = 0
    tcp_max_tw_buckets: int = 262144
    tcp_fin_timeout: int = 60
    somaxconn: int = 4096
    nofile_soft: int = 1024
    kernel_release: str = ""

    @property
    def ports(self) -> int:
        """Ephemeral ports connect() may pick (inclusive range, less reserved ones)."""
        return max(0, self.port_high - self.port_low + 1 - self.reserved_ports)

    def raw(self) -> dict:
        return asdict(self)
