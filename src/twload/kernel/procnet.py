"""TCP sockets from /proc/net/tcp and tcp6: the fallback that needs no netlink.

Format: include/net/tcp.h state numbers, printed by net/ipv4/tcp_ipv4.c:
get_tcp4_sock / get_timewait4_sock ("%08X:%04X %08X:%04X %02X ..."), addresses in
network byte order as a host-endian hex word, ports in host order hex.
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

# include/net/tcp_states.h
STATES = {
    1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
    6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING",
    12: "NEW_SYN_RECV",
}

PROC_FILES = ("/proc/net/tcp", "/proc/net/tcp6")


class SockEntry(NamedTuple):
    state: str
    local_port: int
    remote_port: int


def read_entries(paths=PROC_FILES) -> list[SockEntry]:
    entries = []
    for path in paths:
        try:
            with open(path, encoding="ascii") as fh:
                next(fh, None)  # header line
                for line in fh:
                    fields = line.split(None, 4)
                    local, remote, state = fields[1], fields[2], int(fields[3], 16)
                    entries.append(SockEntry(
                        STATES.get(state, str(state)),
                        int(local.rsplit(":", 1)[1], 16),
                        int(remote.rsplit(":", 1)[1], 16),
                    ))
        except FileNotFoundError:
            continue
    return entries


def time_wait_by_side(port: int, entries=None) -> dict[str, int]:
    """TIME_WAIT sockets of connections to `port` on this host, split by who holds them.

    On one host (loopback) both ends are visible: the server's end has local port
    `port`, the client's end has remote port `port`.
    """
    entries = read_entries() if entries is None else entries
    sides: Counter = Counter()
    for entry in entries:
        if entry.state != "TIME_WAIT":
            continue
        if entry.local_port == port:
            sides["server"] += 1
        elif entry.remote_port == port:
            sides["client"] += 1
    return {"client": sides["client"], "server": sides["server"]}
