"""The floor of a Python generator: the least a uvloop + httptools client can do.

No metrics, no timeouts, no errors, no progress: connections that write a request,
feed the response to httptools and write the next one (keep-alive), or that connect,
send `Connection: close`, read to the server's EOF and connect again (short). It
prints requests per second. benchmarks/vs_wrk.py runs it beside twload and wrk, so
each run shows how far twload is from what its engine's libraries allow, and how
far those are from wrk.

    python benchmarks/floor_client.py URL [--connections 50] [--duration 5] [--close]
"""

from __future__ import annotations

import argparse
import asyncio
from urllib.parse import urlsplit

import httptools
import uvloop


class Client(asyncio.Protocol):
    done = 0

    def __init__(self, request: bytes, reconnect) -> None:
        self.request = request
        self.reconnect = reconnect  # None: keep-alive
        self.parser = httptools.HttpResponseParser(self)
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        Client.done += 1
        if self.reconnect is None:
            self.transport.write(self.request)

    def eof_received(self):
        return False  # short: the server closed first; the transport closes our side

    def connection_lost(self, exc) -> None:
        if self.reconnect is not None:
            self.reconnect()


async def run(url: str, connections: int, seconds: float, close: bool) -> float:
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 80
    request = (f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
               + ("Connection: close\r\n" if close else "") + "\r\n").encode()
    loop = asyncio.get_running_loop()
    running = True

    def reconnect() -> None:
        if running:
            loop.create_task(connect())

    async def connect() -> None:
        try:
            await loop.create_connection(lambda: Client(request, reconnect if close else None), host, port)
        except OSError:
            reconnect()

    for _ in range(connections):
        await connect()
    await asyncio.sleep(seconds)
    running = False
    return Client.done / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--close", action="store_true", help="one request per connection, server closes")
    args = parser.parse_args()
    print(f"{uvloop.run(run(args.url, args.connections, args.duration, args.close)):.1f}")


if __name__ == "__main__":
    main()
