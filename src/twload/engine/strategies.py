"""The asyncio engine's side of the close strategies (twload.plan.close says what each one means):
the socket option that makes `rst` a reset. It goes with the asyncio engine."""

from __future__ import annotations

import socket

from twload.kernel.linger import LINGER_RST
from twload.plan.close import asks_server_to_close

__all__ = ["asks_server_to_close", "set_rst_on_close"]  # asyncio_loop takes both from here


def set_rst_on_close(sock) -> None:
    """Make the next close() of this socket send RST (set once it is connected)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
