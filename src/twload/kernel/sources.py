"""Source addresses: checked once, as the plan is made, by asking the kernel to bind each (the engines bind
them with IP_BIND_ADDRESS_NO_PORT too)."""

from __future__ import annotations

import socket

from twload.plan import PlanError, Target

IP_BIND_ADDRESS_NO_PORT = 24  # include/uapi/linux/in.h


def check_sources_local(sources: tuple[str, ...], target: Target) -> None:
    """Each source must be an address of this host, of the target's family: bind() says so."""
    for address in sources:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        if family != target.family:
            raise PlanError(f"--source {address} is not of the target's address family")
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            try:
                sock.bind((address, 0))
            except OSError:
                raise PlanError(f"--source {address} is not an address of this host") from None
