"""engine/http2.py: the request's header block as the core takes it."""

import pytest

from twload.engine.http2 import header_block
from twload.kernel.resolve import parse_target
from twload.plan import Plan, PlanError


def plan(url="http://127.0.0.1:8080/a?b=1", **kw):
    return Plan(target=parse_target(url), url=url, http2=True, **kw)


def pairs(block: bytes) -> list[tuple[str, str]]:
    items = block.decode().split("\0")
    assert items[-1] == ""
    return list(zip(items[:-1:2], items[1:-1:2], strict=True))


def test_pseudo_fields_first_then_lower_case_names_without_connection_fields():
    got = pairs(header_block(plan(method="POST", body=b"xyz",
                                  headers=(("X-Trace", "1"), ("Connection", "close"), ("Host", "example.test")))))
    assert got[:4] == [(":method", "POST"), (":scheme", "http"), (":authority", "example.test"), (":path", "/a?b=1")]
    assert ("x-trace", "1") in got and ("content-length", "3") in got and ("user-agent", "twload") in got
    assert not any(name in ("connection", "host") for name, _ in got)


def test_authority_is_the_host_header_of_the_url_by_default():
    assert (":authority", "127.0.0.1:8080") in pairs(header_block(plan()))
    assert (":scheme", "https") in pairs(header_block(plan("https://127.0.0.1/")))


@pytest.mark.parametrize("kw, words", [
    ({"streams": 0}, "--streams must be"), ({"streams": 1001}, "--streams must be"),
    ({"io": "uring"}, "epoll backend"), ({"engine": "asyncio"}, "compiled core"),
    ({"stages": ((1.0, 10),)}, "--stages only with"),
    ({"connections": 2000, "streams": 1000}, "over 1,000,000 streams"),
    ({"rate": 10.0, "streams": 200}, "--max-connections 10000 is over"),
])
def test_what_http2_does_not_do_is_a_plan_error(kw, words):
    with pytest.raises(PlanError, match=words):
        plan(**kw)


def test_every_close_strategy_is_a_plan():
    """--close server too: the server ends each connection, the client reads to its close (core/h2.c)."""
    for close in ("keepalive", "fin", "server", "rst"):
        assert plan(close=close, requests_per_connection=50).close == close


def test_streams_share_a_connection_so_close_strategies_end_it_only_by_requests_per_connection():
    assert plan(close="fin").per_connection is None
    assert plan(close="fin", requests_per_connection=5).per_connection == 5
