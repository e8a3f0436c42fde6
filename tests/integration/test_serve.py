"""`twload serve` as a user sees it: stats, close behaviour, workers sharing a port."""

import json
import re
import select
import socket
import time

import pytest

from tests.conftest import time_wait_until


def http(port, request: bytes, read_to_eof=True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
            if not read_to_eof:
                break
        return b"".join(chunks)


def stats(port) -> dict:
    raw = http(port, b"GET /__twload/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])


def test_counts_across_workers_and_honours_connection_close(twload_server):
    server = twload_server("--workers", "2", "--body-size", "100")
    for _ in range(40):
        raw = http(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in raw
        assert len(raw.split(b"\r\n\r\n", 1)[1]) == 100
    assert stats(server.port) == {"requests": 40, "per_worker": stats(server.port)["per_worker"]}
    assert sum(stats(server.port)["per_worker"]) == 40
    tw = time_wait_until(server.port, lambda tw: tw["server"] >= 40 and tw["client"] == 0)
    assert tw["server"] >= 40 and tw["client"] == 0  # the server closed first every time
    assert server.stop() == 40


def test_keepalive_pipelined_and_close_after(twload_server):
    server = twload_server("--close-after", "3")
    req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    raw = http(server.port, req * 5)  # five pipelined; the server answers three, then closes
    assert raw.count(b"HTTP/1.1 200 OK") == 3
    assert raw.count(b"Connection: close") == 1
    assert server.stop() == 3


def test_bad_request_gets_400(twload_server):
    server = twload_server()
    raw = http(server.port, b"NOT HTTP AT ALL\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 400")


def test_delay(twload_server):
    server = twload_server("--delay", "200ms")
    started = time.monotonic()
    http(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert time.monotonic() - started >= 0.19


def close_all(acceptor, transports, clients) -> None:
    acceptor.close()
    for transport in transports:
        transport.close()
    for client in clients:
        client.close()


def test_one_wakeup_accepts_every_pending_connection():
    """A worker busy with thousands of connections turns its loop a few times a second; uvloop's own
    server accepted one connection per turn, so the accept queue overflowed and new SYNs were dropped.
    The Acceptor takes all the queue holds (up to its batch) in one turn."""
    import asyncio

    import uvloop

    from twload.serve.server import Acceptor, _listening_socket

    pending = 300
    made = []

    class Count(asyncio.Protocol):
        def connection_made(self, transport) -> None:
            made.append(transport)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        listener = _listening_socket("127.0.0.1", 0)
        listener.listen(1024)
        clients = [socket.create_connection(listener.getsockname()) for _ in range(pending)]  # queued
        acceptor = Acceptor(loop, listener, Count)
        turns = 0
        while len(made) < pending and turns < 50:
            await asyncio.sleep(0)
            turns += 1
        close_all(acceptor, made, clients)
        return turns

    turns = uvloop.run(main())
    assert len(made) == pending
    assert turns <= 5  # one turn accepts, the next runs the connections' set-up: not one per turn


def test_out_of_files_the_queue_waits_then_is_served():
    """accept() failing with EMFILE must neither spin (the listener stays readable) nor lose the
    connections: they wait in the kernel's queue and are accepted once files are free again."""
    import asyncio
    import os
    import resource

    import uvloop

    from twload.serve.server import Acceptor, _listening_socket

    made = []

    class Count(asyncio.Protocol):
        def connection_made(self, transport) -> None:
            made.append(transport)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        listener = _listening_socket("127.0.0.1", 0)
        listener.listen(64)
        clients = [socket.create_connection(listener.getsockname()) for _ in range(3)]
        acceptor = Acceptor(loop, listener, Count)
        calls = [0]
        accept_pending = acceptor.accept_pending

        def counted() -> None:
            calls[0] += 1
            accept_pending()

        acceptor.accept_pending = counted  # type: ignore[method-assign]
        loop.remove_reader(listener.fileno())
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(int(fd) for fd in os.listdir("/proc/self/fd")) + 16, hard))
        fillers: list[int] = []
        try:
            while True:  # every file this process may open is open
                try:
                    fillers.append(os.open("/dev/null", os.O_RDONLY))
                except OSError:
                    break
            loop.add_reader(listener.fileno(), counted)
            await asyncio.sleep(0.05)
            while_full = (len(made), calls[0])
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            for fd in fillers:
                os.close(fd)
        for _ in range(100):
            if len(made) == len(clients):
                break
            await asyncio.sleep(0.01)
        close_all(acceptor, made, clients)
        return while_full

    made_while_full, calls_while_full = uvloop.run(main())
    assert made_while_full == 0
    assert calls_while_full <= 2  # paused, not called again at every turn of the loop
    assert len(made) == 3  # served once files were free


# -- caps on a request's URL and head (nginx's large_client_header_buffers 4 8k) ------------------

def head_of(size: int, target: bytes = b"/") -> bytes:
    """A GET whose head (request line, fields, the blank line) is exactly `size` bytes; it asks to close."""
    start = b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    filler = size - len(start) - len(b"X-Fill: \r\n\r\n")
    assert filler >= 0
    return start + b"X-Fill: " + b"f" * filler + b"\r\n\r\n"


def answer_and_eof(port: int, request: bytes) -> tuple[bytes, bool]:
    """Send, then read until the server closes (bounded by the socket timeout): what came, and whether EOF did."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        chunks = []
        try:
            while data := s.recv(65536):
                chunks.append(data)
        except TimeoutError:
            return b"".join(chunks), False
        return b"".join(chunks), True


def test_a_url_longer_than_8k_gets_414_and_the_connection_closes(twload_server):
    server = twload_server()
    ok, eof = answer_and_eof(server.port, b"GET /" + b"u" * 8191 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200 OK") and eof  # a request-target of 8192 bytes: the cap itself
    raw, eof = answer_and_eof(server.port, b"GET /" + b"u" * 8192 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 414 URI Too Long\r\n") and b"Connection: close" in raw, raw[:200]
    assert eof and raw.count(b"HTTP/1.1") == 1
    assert stats(server.port)["requests"] == 1  # the refused one is not served


def test_a_head_larger_than_32k_gets_431_and_the_connection_closes(twload_server):
    server = twload_server()
    ok, eof = answer_and_eof(server.port, head_of(32768))
    assert ok.startswith(b"HTTP/1.1 200 OK") and eof  # exactly the cap: served
    raw, eof = answer_and_eof(server.port, head_of(32769))
    assert raw.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), raw[:200]
    assert eof and raw.count(b"HTTP/1.1") == 1
    assert stats(server.port)["requests"] == 1


@pytest.mark.parametrize("args", [(), ("--delay", "50ms")], ids=["at-once", "delayed"])
def test_pipelined_requests_before_a_refused_one_are_answered_in_order(twload_server, args):
    server = twload_server(*args)
    plain = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    raw, eof = answer_and_eof(server.port, plain * 2 + b"GET /" + b"u" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n" + plain)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)  # a body ends without a newline: not line by line
    assert statuses == [b"200", b"200", b"414"] and eof


def test_a_head_that_never_ends_is_refused_and_closed(twload_server):
    """A client that streams one header field forever: the server stops at the cap, says 431 and closes,
    instead of reading (and, for a URL, keeping) everything the client sends."""
    server = twload_server()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        sent, raw = 0, b""
        while sent < 8 << 20 and not raw:  # bounded: 8 MiB, far past the cap and any socket buffer
            try:
                sent += s.send(b"e" * 4096)
            except OSError:
                break
            readable, _, _ = select.select([s], [], [], 0)
            if readable:
                raw = s.recv(65536)
        s.settimeout(5)
        while not raw.endswith(b"\r\n\r\n"):
            more = s.recv(65536)
            if not more:
                break
            raw += more
    assert raw.startswith(b"HTTP/1.1 431 "), (sent, raw[:200])
    assert sent < 8 << 20


def test_the_caps_are_flags(twload_server):
    server = twload_server("--max-url", "100", "--max-head", "1024")
    assert answer_and_eof(server.port, head_of(1024, b"/" + b"u" * 99))[0].startswith(b"HTTP/1.1 200")
    assert answer_and_eof(server.port, head_of(1024, b"/" + b"u" * 100))[0].startswith(b"HTTP/1.1 414")
    assert answer_and_eof(server.port, head_of(1025))[0].startswith(b"HTTP/1.1 431")
