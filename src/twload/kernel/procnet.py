"""TCP sockets from /proc/net/tcp and tcp6: the fallback that needs no netlink.

Format: net/ipv4/tcp_ipv4.c: get_tcp4_sock / get_timewait4_sock print
"%08X:%04X %08X:%04X %02X": each address as 32-bit words in host byte order,
ports in host order, then the state number of include/net/tcp_states.h.
"""

from __future__ import annotations

import socket
import struct
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import NamedTuple

# include/net/tcp_states.h
STATES = {
    1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
    6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING",
    12: "NEW_SYN_RECV",
}

PROC_FILES = ("/proc/net/tcp", "/proc/net/tcp6")


class Sock(NamedTuple):
    state: str
    src: str
    sport: int
    dst: str
    dport: int


def _address(hex_words: str) -> str:
    raw = b"".join(struct.pack("=I", int(hex_words[i: i + 8], 16)) for i in range(0, len(hex_words), 8))
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def read_socks(paths=PROC_FILES) -> Iterator[Sock]:
    for path in paths:
        try:
            fh = open(path, encoding="ascii")
        except FileNotFoundError:
            continue
        with fh:
            next(fh, None)  # header line
            for line in fh:
                fields = line.split(None, 4)
                local, _, lport = fields[1].rpartition(":")
                remote, _, rport = fields[2].rpartition(":")
                yield Sock(STATES.get(int(fields[3], 16), fields[3]),
                           _address(local), int(lport, 16), _address(remote), int(rport, 16))


def time_wait_by_side(port: int, socks: Iterable[Sock] | None = None) -> dict[str, int]:
    """TIME_WAIT sockets of connections to `port` on this host, split by who holds them.

    On one host (loopback) both ends are visible: the server's end has local port
    `port`, the client's end has remote port `port`.
    """
    sides: Counter = Counter()
    for sock in read_socks() if socks is None else socks:
        if sock.state != "TIME_WAIT":
            continue
        if sock.sport == port:
            sides["server"] += 1
        elif sock.dport == port:
            sides["client"] += 1
    return {"client": sides["client"], "server": sides["server"]}
