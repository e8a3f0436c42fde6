"""engine/request_set.py: each target of a request file made once into bytes, or into the ops the
core renders (core.h TPL_*)."""

import pytest

from twload.engine.request_set import (
    OP_CLEN,
    OP_LAST_LIT,
    OP_LIT,
    OP_SEQ,
    check_buffers,
    check_one_destination,
    compile_target,
    cycle,
    request_set,
)
from twload.kernel.resolve import parse_target
from twload.plan import Plan, PlanError
from twload.plan.targets import RequestTarget


def plan(*targets: RequestTarget, **kw) -> Plan:
    return Plan(target=parse_target("http://127.0.0.1:8080/"), url="http://127.0.0.1:8080/", targets=targets, **kw)


def test_a_plain_target_is_its_bytes():
    t = RequestTarget("POST", "http://127.0.0.1:8080/a?b=1", (("X-A", "1"), ("X-A", "2")), b"hi", where="f:1")
    defaults = plan(t, headers=(("x-a", "d"), ("X-D", "e")))
    group, head, upgrade, plain, last, ops, body_start = compile_target(t, defaults, 3, close_line=True)
    assert (group, head, upgrade, ops, body_start) == (3, False, False, (), 0)
    assert plain == (b"POST /a?b=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: twload\r\nX-D: e\r\n"
                     b"X-A: 1\r\nX-A: 2\r\nContent-Length: 2\r\n\r\nhi")
    assert last == plain.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")


def test_a_templated_target_is_ops_with_the_body_after_body_start():
    t = RequestTarget("PUT", "/u/{{seq}}", (("Host", "example"), ("Upgrade", "x")), b"{{seq}}!", where="f:1")
    group, head, upgrade, plain, last, ops, body_start = compile_target(t, plan(t), 0, close_line=True)
    assert upgrade and plain == last == b""
    assert ops[:3] == [(OP_LIT, b"PUT /u/", 0), (OP_SEQ, b"", 0),
                       (OP_LIT, b" HTTP/1.1\r\nUser-Agent: twload\r\nHost: example\r\nUpgrade: x\r\n"
                                b"Content-Length: ", 0)]
    assert ops[3:body_start] == [(OP_CLEN, b"", 0), (OP_LIT, b"\r\n", 0),
                                 (OP_LAST_LIT, b"Connection: close\r\n", 0), (OP_LIT, b"\r\n", 0)]
    assert ops[body_start:] == [(OP_SEQ, b"", 0), (OP_LIT, b"!", 0)]


def test_a_templated_body_with_a_fixed_content_length_is_refused():
    t = RequestTarget("POST", "/a", (("Content-Length", "3"),), b"{{seq}}", where="f:4")
    with pytest.raises(PlanError, match=r"^f:4: a templated body's length varies"):
        compile_target(t, plan(t), 0, close_line=False)


def test_a_templated_request_over_the_bound_is_refused():
    t = RequestTarget("POST", "/a", (), b"{{uuid}}" + b"x" * (1 << 20), where="f:2")
    with pytest.raises(PlanError, match=r"^f:2: the templated request may reach 1,048,"):
        compile_target(t, plan(t), 0, close_line=False)


def test_cycle_spreads_weights():
    assert list(cycle([3, 1])) == [0, 0, 1, 0]
    assert list(cycle([1, 1, 1])) == [0, 1, 2]
    assert sorted(cycle([5, 2, 1])) == [0] * 5 + [1] * 2 + [2]


def test_names_group_targets():
    a = RequestTarget("GET", "/a", name="n")
    b = RequestTarget("GET", "/b", name="n")
    c = RequestTarget("GET", "/c")
    made = request_set(plan(a, b, c), close_line=False)
    assert made.labels == ("n", "GET /c")
    assert [t[0] for t in made.targets] == [0, 0, 1]


def test_one_destination():
    check_one_destination((RequestTarget("GET", "http://127.0.0.1:8080/x"), RequestTarget("GET", "/y")),
                          "http://127.0.0.1:8080/")
    with pytest.raises(PlanError, match=r"^f:9: https://127.0.0.1:8080/ is not on http://127.0.0.1:8080"):
        check_one_destination((RequestTarget("GET", "https://127.0.0.1:8080/", where="f:9"),), "http://127.0.0.1:8080/")


def test_render_buffers_are_bounded_per_worker():
    t = RequestTarget("POST", "/a", (), b"{{seq}}" + b"x" * 100_000, where="f:1")
    made = request_set(plan(t), close_line=False)
    assert 100_000 < made.render_bytes < 100_300
    check_buffers(made, 2000)
    with pytest.raises(PlanError, match=r"for 3,000 connections of a worker need 286 MiB of buffers; at most 256"):
        check_buffers(made, 3000)
    assert request_set(plan(RequestTarget("GET", "/a")), close_line=False).render_bytes == 0
