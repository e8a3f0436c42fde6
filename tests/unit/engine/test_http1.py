"""The request bytes the core writes, built once per run (engine/http1.py)."""

from twload.engine.http1 import build_request
from twload.kernel.resolve import parse_target
from twload.plan import Plan


def test_request_bytes():
    plan = Plan(target=parse_target("http://127.0.0.1:8080/x?y=1"), url="", method="POST",
                headers=(("X-A", "1"),), body=b"abc", close="server")
    req = build_request(plan, connection_close=True)
    assert req.startswith(b"POST /x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n")
    assert b"\r\nX-A: 1\r\n" in req and b"\r\nContent-Length: 3\r\n" in req
    assert b"\r\nConnection: close\r\n\r\nabc" in req
