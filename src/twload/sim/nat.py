"""A NAT gateway: many clients behind one public address (SNAT / masquerade).

A mapping lives while its connection does; once the connection is closed the
public port may be handed out again at once, whether or not the server still
holds that 4-tuple in TIME_WAIT — which is how a NAT reuses a quintuple the
server remembers (netfilter picks a tuple not in use by a live conntrack entry:
net/netfilter/nf_nat_core.c: nf_nat_used_tuple / get_unique_tuple).
"""

from __future__ import annotations

import heapq
import random

POLICIES = ("keep", "sequential", "random")


class NatGateway:
    def __init__(self, public_ip: str, ports: int, policy: str, rng: random.Random, low: int = 32768) -> None:
        if policy not in POLICIES:
            raise ValueError(f"nat_policy must be one of {', '.join(POLICIES)}")
        self.public_ip = public_ip
        self.low, self.size = low, ports
        self.policy = policy
        self.rng = rng
        self.in_use: set[int] = set()
        self.releases: list = []  # heap of (time, port)
        self.cursor = 0

    def _expire(self, now: float) -> None:
        while self.releases and self.releases[0][0] <= now:
            self.in_use.discard(heapq.heappop(self.releases)[1])

    def translate(self, client_ip: str, client_port: int, now: float) -> tuple[str, int] | None:
        """The public (address, port) for a new flow, or None when every port is in use."""
        self._expire(now)
        if len(self.in_use) >= self.size:
            return None
        if self.policy == "keep" and self.low <= client_port < self.low + self.size \
                and client_port not in self.in_use:
            port = client_port
        elif self.policy == "random":
            while True:
                port = self.low + self.rng.randrange(self.size)
                if port not in self.in_use:
                    break
        else:
            while True:
                port = self.low + self.cursor
                self.cursor = (self.cursor + 1) % self.size
                if port not in self.in_use:
                    break
        self.in_use.add(port)
        return self.public_ip, port

    def release(self, public: tuple[str, int], at: float) -> None:
        heapq.heappush(self.releases, (at, public[1]))
