"""engine/request_set.py: each target of a request file made once into bytes, or into the ops the
core renders (core.h TPL_*)."""

import pytest

from twload.engine.request_set import (
    OP_CLEN,
    OP_LAST_LIT,
    OP_LIT,
    OP_SEQ,
    check_buffers,
    check_destinations,
    compile_target,
    cycle,
    request_set,
    slot_destinations,
)
from twload.kernel.resolve import parse_target
from twload.plan import Plan, PlanError
from twload.plan.targets import RequestTarget, split_connections


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


def test_destinations_in_the_order_the_file_names_them():
    targets = (RequestTarget("GET", "http://127.0.0.1:8081/x"), RequestTarget("GET", "/y"),
               RequestTarget("GET", "http://LOCALHOST:8081/z"), RequestTarget("GET", "http://127.0.0.1:8081/w"))
    assert check_destinations(targets, "http://127.0.0.1:8080/") == (
        "http://127.0.0.1:8081/", "http://127.0.0.1:8080/", "http://localhost:8081/")


def test_one_scheme_a_run_and_https_on_one_host():
    with pytest.raises(PlanError, match=r"^f:9: https://127.0.0.1:8080/ is https://, the file's first target "
                                        r"http://: the targets of a run share one scheme \(http or https\)$"):
        check_destinations((RequestTarget("GET", "/a"), RequestTarget("GET", "https://127.0.0.1:8080/", where="f:9")),
                           "http://127.0.0.1:8080/")
    check_destinations((RequestTarget("GET", "https://a.test:1/"), RequestTarget("GET", "https://a.test:2/")), None)
    with pytest.raises(PlanError, match=r"^f:2: https://b.test:1/: https targets on a second host \(b.test, "
                                        r"after a.test\)"):
        check_destinations((RequestTarget("GET", "https://a.test:1/"),
                            RequestTarget("GET", "https://b.test:1/", where="f:2")), None)


def test_several_destinations_each_its_own_cycle_of_its_own_targets():
    a1 = RequestTarget("GET", "http://127.0.0.1:8081/a1")
    b1 = RequestTarget("GET", "http://127.0.0.1:8082/b1", weight=2)
    a2, b2 = RequestTarget("GET", "http://127.0.0.1:8081/a2"), RequestTarget("GET", "http://127.0.0.1:8082/b2")
    dests = (parse_target("http://127.0.0.1:8081/"), parse_target("http://127.0.0.1:8082/"))
    made = request_set(plan(a1, b1, a2, b2, destinations=dests, destination_weights=(2, 3)), close_line=False)
    assert [t[-1] for t in made.targets] == [0, 1, 0, 1]  # each target's destination, last in its tuple
    assert made.parts == ((0, 2), (2, 3)) and made.dest_weights == (2, 3)
    assert list(made.order) == [0, 2, 1, 3, 1]  # 8081: a1 a2; 8082: b1 b2 b1 (weights spread)


def test_slots_split_across_destinations_by_weight_and_across_workers():
    # 10 connections, weights 1 and 4: 2 and 8
    one = slot_destinations((1, 4), 10, 0, 1, 10)
    assert len(one) == 10 and list(one).count(0) == 2 and list(one).count(1) == 8
    # the same 10 over 3 workers (4, 3, 3 slots): together the same split
    parts = [slot_destinations((1, 4), n, w, 3, 10) for w, n in enumerate((4, 3, 3))]
    assert sorted(d for part in parts for d in part) == sorted(one)
    # as few connections as destinations: one each
    assert sorted(slot_destinations((1, 100, 1), 3, 0, 1, 3)) == [0, 1, 2]
    assert split_connections((1, 100, 1), 10) == [1, 8, 1]  # 0.1, 9.8, 0.1: each takes one from the largest
    assert split_connections((3, 3, 1), 7) == [3, 3, 1]


def test_render_buffers_are_bounded_per_worker():
    t = RequestTarget("POST", "/a", (), b"{{seq}}" + b"x" * 100_000, where="f:1")
    made = request_set(plan(t), close_line=False)
    assert 100_000 < made.render_bytes < 100_300
    check_buffers(made, 2000)
    with pytest.raises(PlanError, match=r"for 3,000 connections of a worker need 286 MiB of buffers; at most 256"):
        check_buffers(made, 3000)
    assert request_set(plan(RequestTarget("GET", "/a")), close_line=False).render_bytes == 0
