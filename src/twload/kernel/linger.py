"""SO_LINGER {1, 0}: the value that makes close() reset a connection instead of closing it.

The run's `--close rst`, and every probe that must leave no TIME_WAIT socket behind (the
pre-flight's, the doctor's, the lab's), set it on a connected socket before closing it.
"""

from __future__ import annotations

import struct

# l_onoff=1, l_linger=0: close() drops the connection with an RST instead of a FIN,
# so neither side enters TIME_WAIT (net/ipv4/tcp.c: __tcp_close, "sk->sk_lingertime == 0"
# branch sends tcp_send_active_reset and moves straight to TCP_CLOSE).
LINGER_RST = struct.pack("ii", 1, 0)
