"""The asyncio engine takes IP_BIND_ADDRESS_NO_PORT from here; it goes with that engine
(the source addresses' check is twload.kernel.sources)."""

from twload.kernel.sources import IP_BIND_ADDRESS_NO_PORT

__all__ = ["IP_BIND_ADDRESS_NO_PORT"]
