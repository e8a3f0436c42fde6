"""engine/request_set.py under --http2: each target made into the ops core/h2.c renders, its header block
as name\\0value\\0 pairs (the pseudo-fields first, names in lower case, no connection fields), then its body."""

import pytest

from twload.engine.request_set import OP_CLEN, OP_LIT, OP_RAND, OP_SEQ, check_buffers, compile_target_h2, request_set
from twload.kernel.resolve import parse_target
from twload.plan import Plan, PlanError
from twload.plan.targets import RequestTarget


def plan(*targets: RequestTarget, **kw) -> Plan:
    return Plan(target=parse_target("http://127.0.0.1:8080/"), url="http://127.0.0.1:8080/", targets=targets,
                http2=True, **kw)


def pairs(block: bytes) -> list[tuple[str, str]]:
    items = block.decode().split("\0")
    assert items[-1] == ""
    return list(zip(items[:-1:2], items[1:-1:2], strict=True))


def test_a_plain_target_is_its_header_block_then_its_body():
    t = RequestTarget("POST", "http://127.0.0.1:8080/a?b=1", (("X-A", "1"), ("X-A", "2"), ("Connection", "close")),
                      b"hi", where="f:1")
    group, head, upgrade, plain, last, ops, body_start = compile_target_h2(t, plan(t, headers=(("X-D", "e"),)), 3)
    assert (group, head, upgrade, plain, last) == (3, False, False, b"", b"")
    assert all(kind == OP_LIT for kind, _, _ in ops) and body_start == 1
    assert pairs(ops[0][1]) == [(":method", "POST"), (":scheme", "http"), (":authority", "127.0.0.1:8080"),
                                (":path", "/a?b=1"), ("user-agent", "twload"), ("x-d", "e"), ("x-a", "1"),
                                ("x-a", "2"), ("content-length", "2")]
    assert ops[1:] == [(OP_LIT, b"hi", 0)]


def test_a_templated_target_renders_its_values_and_its_bodys_length():
    t = RequestTarget("PUT", "/u/{{seq}}", (("Host", "s{{rand 4}}.example"),), b"{{seq}}!", where="f:1")
    _, _, _, _, _, ops, body_start = compile_target_h2(t, plan(t), 0)
    assert ops[:body_start] == [
        (OP_LIT, b":method\0PUT\0:scheme\0http\0:authority\0s", 0), (OP_RAND, b"", 4),
        (OP_LIT, b".example\0:path\0/u/", 0), (OP_SEQ, b"", 0),
        (OP_LIT, b"\0user-agent\0twload\0content-length\0", 0), (OP_CLEN, b"", 0), (OP_LIT, b"\0", 0)]
    assert ops[body_start:] == [(OP_SEQ, b"", 0), (OP_LIT, b"!", 0)]


def test_a_nul_in_a_field_is_refused_with_its_place():
    t = RequestTarget("GET", "/a", (("X-A", "a\0b"),), where="f:7")
    with pytest.raises(PlanError, match=r"^f:7: header X-A holds a NUL byte"):
        compile_target_h2(t, plan(t), 0)


def test_templated_bodies_are_bounded_per_stream():
    t = RequestTarget("POST", "/a", (), b"{{seq}}" + b"x" * 100_000, where="f:1")
    made = request_set(plan(t), close_line=False)
    assert made.http2 and made.render_bytes == 0 and made.stream_body_bytes == 4 + 20 + 100_000
    check_buffers(made, slots=10, streams=100)  # ~95 MiB
    with pytest.raises(PlanError, match="connections x 1000 streams of a worker need"):
        check_buffers(made, slots=10, streams=1000)
    plain = request_set(plan(RequestTarget("POST", "/a", (), b"x" * 100_000)), close_line=False)
    assert plain.stream_body_bytes == 0
    check_buffers(plain, slots=1000, streams=1000)


def test_several_destinations_over_http2_are_refused():
    d = (parse_target("http://127.0.0.1:1/"), parse_target("http://127.0.0.1:2/"))
    with pytest.raises(PlanError, match="--http2 with targets on 2 destinations"):
        plan(RequestTarget("GET", "/a"), destinations=d)
