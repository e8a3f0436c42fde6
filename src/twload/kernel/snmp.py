"""The TCP counters of this process's network namespace: /proc/net/snmp (Tcp) and /proc/net/netstat (TcpExt).

/proc/net is /proc/self/net: what it shows is the reader's namespace, so a process inside a lab
namespace reads that namespace's counters (what `nstat` shows there).
"""

from __future__ import annotations

FILES = ("/proc/net/snmp", "/proc/net/netstat")


def tcp_counters(paths: tuple[str, ...] = FILES) -> dict[str, int]:
    """{"Tcp<Name>" | "TcpExt<Name>": value}; a file that cannot be read adds nothing.

    Each file is pairs of lines, "Prefix: Name Name ..." then "Prefix: value value ..."
    (net/ipv4/proc.c: snmp_seq_show_tcp_udp, netstat_seq_show)."""
    out: dict[str, int] = {}
    for path in paths:
        try:
            with open(path) as fh:
                lines = fh.read().splitlines()
        except OSError:
            continue
        for names, values in zip(lines[::2], lines[1::2], strict=False):
            prefix, _, keys = names.partition(":")
            if prefix not in ("Tcp", "TcpExt"):
                continue
            for key, value in zip(keys.split(), values.partition(":")[2].split(), strict=False):
                out[prefix + key] = int(value)
    return out


def retransmitted_segments() -> int | None:
    """Tcp RetransSegs of this namespace: every TCP segment sent again (data, SYN, FIN, and the
    SYN-ACKs of its listeners), counted by net/ipv4/tcp_output.c: __tcp_retransmit_skb and
    tcp_rtx_synack (TCP_MIB_RETRANSSEGS, Linux 6.x). None when /proc/net/snmp cannot be read."""
    return tcp_counters(FILES[:1]).get("TcpRetransSegs")
