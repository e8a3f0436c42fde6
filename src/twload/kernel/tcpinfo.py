"""TCP_INFO of a connected socket: what was negotiated, and the RTT.

struct tcp_info (include/uapi/linux/tcp.h): byte 5 is tcpi_options, whose
TCPI_OPT_TIMESTAMPS bit (0x01) says both ends agreed on TCP timestamps in the
handshake (net/ipv4/tcp.c: tcp_get_info sets it from tp->rx_opt.tstamp_ok).
tcpi_rtt and tcpi_rttvar are the u32 fields at byte offsets 68 and 72, in µs.
"""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

TCPI_OPT_TIMESTAMPS = 0x01
TCPI_OPT_SACK = 0x02
TCP_INFO_LEN = 104  # enough for the fields read here; the kernel copies min(len, sizeof)


class TcpInfo(NamedTuple):
    timestamps: bool
    sack: bool
    rtt_us: int
    rttvar_us: int


def tcp_info(sock: socket.socket) -> TcpInfo:
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_LEN)
    options = raw[5]
    rtt, rttvar = struct.unpack_from("=II", raw, 68)
    return TcpInfo(bool(options & TCPI_OPT_TIMESTAMPS), bool(options & TCPI_OPT_SACK), rtt, rttvar)
