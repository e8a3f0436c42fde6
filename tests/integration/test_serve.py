"""`twload serve` as a user sees it: stats, close behaviour, workers sharing a port."""

import json
import socket
import time

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
