"""Close strategies: what the client does when it is done with a connection.

Which side closes first decides who keeps the 4-tuple in TIME_WAIT for 60 s
(TCP_TIMEWAIT_LEN, include/net/tcp.h): the active closer does, see
net/ipv4/tcp_input.c: tcp_fin and net/ipv4/tcp_minisocks.c: tcp_time_wait.
"""

from __future__ import annotations

import socket
import struct

# l_onoff=1, l_linger=0: close() drops the connection with an RST instead of a FIN,
# so neither side enters TIME_WAIT (net/ipv4/tcp.c: __tcp_close, "sk->sk_lingertime == 0"
# branch sends tcp_send_active_reset and moves straight to TCP_CLOSE).
LINGER_RST = struct.pack("ii", 1, 0)

WHY = {
    "keepalive": "reused: TIME_WAIT only for the -c closed at the end",
    "fin": "client closes first: one client TIME_WAIT per connection",
    "server": "Connection: close, read to EOF: the server closes first",
    "rst": "SO_LINGER {1,0}: RST, no TIME_WAIT anywhere",
}


def asks_server_to_close(close: str) -> bool:
    """`server`: the request carries Connection: close and the client waits for EOF."""
    return close == "server"


def set_rst_on_close(sock) -> None:
    """Make the next close() of this socket send RST (set once it is connected)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
