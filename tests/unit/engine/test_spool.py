"""engine/spool.py: a request file over the threshold is compiled, as it is read, into records that hold
exactly what engine/request_set.py compile_target makes (decoded back here the way core.c
spool_target reads them); a file under it is held whole; what a streamed file cannot do is one line."""

from __future__ import annotations

import os
import struct

import pytest

from twload.engine import spool as spool_module
from twload.engine.request_set import compile_target
from twload.engine.spool import Defaults, read_whole_or_spool, streamed_problem
from twload.plan import PlanError
from twload.plan.targets import iter_targets

HEAD = struct.Struct("=IHHBBBxII")
OP = struct.Struct("=B3xIQ")


def lines(text: str) -> list[bytes]:
    return [line.encode() + b"\n" for line in text.splitlines()]


def decode(data: bytes) -> list[tuple]:
    """The spool's records as (group, weight, head, upgrade, plain, last, ops, body_start)."""
    out, at = [], 0
    while at < len(data):
        size, group, weight, head, upgrade, templated, a, b = HEAD.unpack_from(data, at)
        rest = data[at + HEAD.size:at + 4 + size]
        if not templated:
            out.append((group, weight, bool(head), bool(upgrade), rest[:a], rest[a:a + b], (), 0))
        else:
            table = [OP.unpack_from(rest, j * OP.size) for j in range(a)]
            pool, ops = rest[a * OP.size:], []
            for kind, length, arg in table:
                ops.append((kind, pool[:length], arg))
                pool = pool[length:]
            assert pool == b""
            out.append((group, weight, bool(head), bool(upgrade), b"", b"", tuple(ops), b))
        at += 4 + size
    assert at == len(data)
    return out


FILE = ("# name: list\nGET http://127.0.0.1:8080/items?id={{seq}}\nX-Tag: a\nX-Tag: b\n\n"
        "# weight: 3\nHEAD http://127.0.0.1:8080/h\n\n"
        "POST http://127.0.0.1:8080/p\n@body\n\n"
        "GET /relative\n")
DEFAULTS = Defaults("http://127.0.0.1:8080/", (("X-Default", "d"),), b"")


@pytest.fixture
def small_threshold(monkeypatch):
    monkeypatch.setattr(spool_module, "SPOOL_OVER", 2)


def read(text: str, close_line: bool = False):
    return read_whole_or_spool(lines(text), "t", "http", DEFAULTS.url, DEFAULTS, close_line)


def test_a_file_over_the_threshold_is_compiled_into_records_as_it_is_read(small_threshold, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "body").write_bytes(b'{"n": {{rand 10}}}')
    held, spool = read(FILE, close_line=True)
    assert spool is not None and len(held) == 1 and held[0].url.endswith("/items?id={{seq}}")
    assert spool.count == 4 and spool.labels == ("list", "HEAD http://127.0.0.1:8080/h",
                                                 "POST http://127.0.0.1:8080/p", "GET /relative")
    assert spool.destination == "http://127.0.0.1:8080/" and oct(os.stat(spool.path).st_mode & 0o777) == "0o600"
    data = open(spool.path, "rb").read()
    assert len(data) == spool.size
    targets = list(iter_targets(lines(FILE), "t", "http", DEFAULTS.url))
    want = []
    for group, t in enumerate(targets):
        c = compile_target(t, DEFAULTS, group, True)
        want.append((c[0], t.weight, c[1], c[2], c[3] if not c[5] else b"", c[4] if not c[5] else b"",
                     tuple((k, d, a) for k, d, a in c[5]), c[6] if c[5] else 0))
    assert decode(data) == want
    assert want[1][1] == 3 and want[1][2] is True  # the weight, and HEAD (no body awaited)
    assert spool.render_max > 0  # two templated targets: their longest rendering sizes each slot's buffer


def test_a_file_under_the_threshold_is_held_whole():
    held, spool = read("GET http://127.0.0.1:8080/a\n\nGET http://127.0.0.1:8080/b\n")
    assert spool is None and [t.url for t in held] == ["http://127.0.0.1:8080/a", "http://127.0.0.1:8080/b"]


def test_a_streamed_file_goes_to_one_destination(small_threshold):
    with pytest.raises(PlanError, match=r"^t:7: 127.0.0.1:9 is a second destination \(host:port\)"):
        read("GET http://127.0.0.1:8080/a\n\nGET http://127.0.0.1:8080/b\n\nGET http://127.0.0.1:8080/c\n\n"
             "GET http://127.0.0.1:9/d\n")


def test_a_bad_line_late_in_a_streamed_file_is_its_one_line_and_leaves_no_spool(small_threshold, tmp_path,
                                                                               monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with pytest.raises(PlanError, match=r"^t:8: bad header 'nocolon'"):
        read("GET http://127.0.0.1:8080/a\n\nGET http://127.0.0.1:8080/b\n\nGET http://127.0.0.1:8080/c\n\n"
             "GET http://127.0.0.1:8080/d\nnocolon\n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("order, io, distributed, words", [
    ("random", "epoll", False, "--targets-order random draws from the whole file"),
    ("round-robin", "uring", False, "--io uring: a request file over 65,536 targets is streamed on the epoll"),
    ("round-robin", "epoll", True, "--cluster / --scheduler: a request file over 65,536 targets is streamed"),
])
def test_what_a_streamed_file_cannot_do_is_one_line(order, io, distributed, words):
    problem = streamed_problem(order, io, distributed)
    assert problem is not None and problem.startswith(words) and "\n" not in problem
    assert streamed_problem("round-robin", "epoll", False) is None
