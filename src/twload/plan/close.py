"""Close strategies: what the client does when it is done with a connection (pure).

Which side closes first decides who keeps the 4-tuple in TIME_WAIT for 60 s
(TCP_TIMEWAIT_LEN, include/net/tcp.h): the active closer does, see
net/ipv4/tcp_input.c: tcp_fin and net/ipv4/tcp_minisocks.c: tcp_time_wait.
"""

from __future__ import annotations

WHY = {
    "keepalive": "reused: TIME_WAIT only for the -c closed at the end",
    "fin": "client closes first: one client TIME_WAIT per connection",
    "server": "Connection: close, read to EOF: the server closes first",
    "rst": "SO_LINGER {1,0}: RST, no TIME_WAIT anywhere",
}


def asks_server_to_close(close: str) -> bool:
    """`server`: the request carries Connection: close and the client waits for EOF."""
    return close == "server"
