"""A request set for the compiled core (`--targets`): each target of a request file made, once, into
the bytes it sends, or, when templated, into ops the core renders per request (core.h TPL_*), so no
request costs a call into Python.

A target's request is its method and path, then Host (its own `Host` header if it gives one),
User-Agent, the command line's -H headers whose names the target does not give, the target's
headers in the file's order (a repeated name kept), Content-Length when there is a body, and on the
last request of a connection whose strategy asks the server to close, Connection: close (as
engine/http1.py build_request for one URL).

Under --http2 a target's request is its header block as name\0value\0 pairs, then its body
(compile_target_h2): the same fields as HTTP/2 carries them (engine/http2.py header_block for one URL).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from urllib.parse import urlsplit

from twload.engine.http1 import USER_AGENT
from twload.engine.http2 import DROPPED
from twload.plan import Plan, PlanError, split_url
from twload.plan.targets import (
    MAX_NAMES,
    RAND,
    SEQ,
    UUID,
    WORKER,
    Piece,
    RequestTarget,
    labels,
    split_connections,
    template_pieces,
)

# core.h: enum { TPL_LIT, TPL_LAST_LIT, TPL_SEQ, TPL_RAND, TPL_UUID, TPL_WORKER, TPL_CLEN }
OP_LIT, OP_LAST_LIT, OP_SEQ, OP_RAND, OP_UUID, OP_WORKER, OP_CLEN = range(7)
_KIND = {SEQ: OP_SEQ, RAND: OP_RAND, UUID: OP_UUID, WORKER: OP_WORKER}
# the most bytes an op renders to (core.c op_width), for the bound checked before the run
WIDTH = {OP_SEQ: 20, OP_RAND: 20, OP_UUID: 36, OP_WORKER: 10, OP_CLEN: 10}
MAX_RENDER = 1 << 20  # core.h MAX_RENDER
MAX_RENDER_TOTAL = 256 << 20  # core.h MAX_RENDER_TOTAL

Op = tuple[int, bytes, int]


@dataclass(frozen=True)
class RequestSet:
    targets: list[tuple]  # what _core.Core(targets=...) takes
    order: array  # int32 target indexes: one cycle, a target as many times as its weight
    labels: tuple[str, ...]  # per-target results: group index -> its name
    # several destinations (plan.destinations): each one's (order start, order length) in `order`, which
    # holds their cycles one after the other, and its weight (its targets' weights added up); empty with one
    parts: tuple[tuple[int, int], ...] = ()
    dest_weights: tuple[int, ...] = ()
    http2: bool = False  # targets compiled by compile_target_h2

    @property
    def render_bytes(self) -> int:
        """The most bytes one templated request renders to (0: none is templated): the core keeps a
        buffer this large for each connection slot (HTTP/1.1; HTTP/2 renders a stream's own)."""
        if self.http2:
            return 0
        return max((_longest(t[5]) for t in self.targets if t[5]), default=0)

    @property
    def stream_body_bytes(self) -> int:
        """HTTP/2: the most bytes a templated body renders to, with its length (0: none is templated): the
        core keeps a buffer this large for each stream of each connection slot (core/h2.c bodies)."""
        if not self.http2:
            return 0
        return max((4 + _longest(t[5][t[6]:]) for t in self.targets if any(op[0] != OP_LIT for op in t[5][t[6]:])),
                   default=0)


def destination(url: str) -> tuple[str, str, int]:
    scheme, host, port, _ = split_url(url)
    return scheme, host.lower(), port


def absolute_url(target: RequestTarget, base: str | None) -> str:
    """The target's URL, a path joined to the command line's URL."""
    if target.url.startswith("/"):
        assert base is not None  # plan/targets.py refuses a path without one
        parts = urlsplit(base)
        return f"{parts.scheme}://{parts.netloc}{target.url}"
    return target.url


MAX_DESTINATIONS = 256  # core.h MAX_DESTS


def destination_url(dest: tuple[str, str, int]) -> str:
    scheme, host, port = dest
    return f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}/"


def check_destinations(targets: tuple[RequestTarget, ...], base: str) -> tuple[str, ...]:
    """The destinations (scheme, host, port) a request file sends to, in the order they first appear, each as
    'scheme://host:port/'; one line for what a run cannot do: two schemes, or https on two hosts (the
    core has one TLS server name a run)."""
    seen: dict[tuple[str, str, int], RequestTarget] = {}
    for t in targets:
        url = absolute_url(t, base)
        dest = destination(url)
        first = next(iter(seen), None)
        if first is not None and dest[0] != first[0]:
            raise PlanError(f"{t.where}: {url} is {dest[0]}://, the file's first target {first[0]}://: the targets "
                            "of a run share one scheme (http or https)")
        if first is not None and dest[0] == "https" and dest[1] != first[1]:
            raise PlanError(f"{t.where}: {url}: https targets on a second host ({dest[1]}, after {first[1]}): "
                            "one TLS server name a run for now; give each host a run of its own")
        seen.setdefault(dest, t)
    if len(seen) > MAX_DESTINATIONS:
        raise PlanError(f"{len(seen)} destinations (host:port); at most {MAX_DESTINATIONS}")
    return tuple(destination_url(d) for d in seen)


def slot_destinations(weights: tuple[int, ...], slots: int, worker: int, workers: int, total: int) -> array:
    """Each of a worker's `slots` connection slots' destination (uint16 indexes), for good: the run's
    `total` connections split across the destinations by weight (plan/targets.py split_connections),
    spread out as the order's
    cycle is, and numbered across workers (worker w's slot i is the run's connection i * workers + w,
    as plan/schedule.py worker_part splits them)."""
    total = max(total, len(weights))
    spread = cycle(split_connections(weights, total))
    return array("H", [spread[(i * workers + worker) % total] for i in range(slots)])


def host_header(url: str) -> str:
    scheme, host, port, _ = split_url(url)
    return _host_header(scheme, host, port)


def _host_header(scheme: str, host: str, port: int) -> str:
    host = f"[{host}]" if ":" in host else host
    return host if port == (443 if scheme == "https" else 80) else f"{host}:{port}"


def _pieces(text: str, where: str, what: str) -> list[Piece]:
    return template_pieces(text.encode(), where, what)


def _ops(pieces: list[Piece]) -> list[Op]:
    """Pieces as ops, neighbouring literals joined."""
    out: list[Op] = []
    for piece in pieces:
        if isinstance(piece, bytes):
            if out and out[-1][0] == OP_LIT:
                out[-1] = (OP_LIT, out[-1][1] + piece, 0)
            else:
                out.append((OP_LIT, piece, 0))
        else:
            out.append((_KIND[piece[0]], b"", piece[1]))
    return out


def _merged(ops: list[Op]) -> list[Op]:
    """Neighbouring literals joined: one memcpy each in the core."""
    out: list[Op] = []
    for op in ops:
        if op[0] == OP_LIT and out and out[-1][0] == OP_LIT:
            out[-1] = (OP_LIT, out[-1][1] + op[1], 0)
        else:
            out.append(op)
    return out


def _longest(ops: list[Op]) -> int:
    return sum(len(op[1]) if op[0] in (OP_LIT, OP_LAST_LIT) else WIDTH[op[0]] for op in ops)


def check_buffers(made: RequestSet, slots: int, streams: int = 1) -> None:
    """The core's render buffers for `slots` connection slots of one worker (HTTP/2: of their `streams`
    streams each) stay within its bound (core.h MAX_RENDER_TOTAL), else a usage error now rather than a
    worker failing at its start."""
    if made.http2:
        stride = (made.stream_body_bytes + 7) // 8 * 8  # core/h2.c h2_targets_init: 8-byte entries
        if stride * slots * streams > MAX_RENDER_TOTAL:
            raise PlanError(f"templated bodies of up to {made.stream_body_bytes - 4:,} bytes for {slots:,} "
                            f"connections x {streams} streams of a worker need "
                            f"{stride * slots * streams / 2**20:.0f} MiB of buffers; at most "
                            f"{MAX_RENDER_TOTAL >> 20} MiB: fewer connections or streams, more workers, or a "
                            "smaller templated body")
        return
    need = made.render_bytes * slots
    if need > MAX_RENDER_TOTAL:
        raise PlanError(f"templated requests of up to {made.render_bytes:,} bytes for {slots:,} connections of a "
                        f"worker need {need / 2**20:.0f} MiB of buffers; at most {MAX_RENDER_TOTAL >> 20} MiB: "
                        "fewer connections, more workers, or a smaller templated body")


def compile_target(target: RequestTarget, plan: Plan, group: int, close_line: bool) -> tuple:
    """One target as _core.Core takes it: (group, head, upgrade, plain, last, ops, body_start)."""
    url = absolute_url(target, plan.url)
    scheme, host, port, path = split_url(url)  # once: a streamed file compiles a million of them
    where = target.where
    given = {name.lower() for name, _ in target.headers}
    headers = [(n, v) for n, v in plan.headers if n.lower() not in given] + list(target.headers)
    names = {name.lower() for name, _ in headers}
    body = plan.body if target.body is None else target.body
    head: list[Piece] = [f"{target.method} ".encode(), *_pieces(path, where, "URL"), b" HTTP/1.1\r\n"]
    if "host" not in names:
        head.append(f"Host: {_host_header(scheme, host, port)}\r\n".encode())
    if "user-agent" not in names:
        head.append(f"User-Agent: {USER_AGENT}\r\n".encode())
    for name, value in headers:
        head += [f"{name}: ".encode(), *_pieces(value, where, f"header {name}"), b"\r\n"]
    body_pieces = template_pieces(body, where, "body") if body else []
    templated = any(not isinstance(p, bytes) for p in head + body_pieces)
    ops = _ops(head)
    if "content-length" in names and any(not isinstance(p, bytes) for p in body_pieces):
        raise PlanError(f"{where}: a templated body's length varies: leave Content-Length to twload")
    if body and "content-length" not in names:
        if templated and any(not isinstance(p, bytes) for p in body_pieces):
            ops += [(OP_LIT, b"Content-Length: ", 0), (OP_CLEN, b"", 0), (OP_LIT, b"\r\n", 0)]
        else:
            ops.append((OP_LIT, f"Content-Length: {len(body)}\r\n".encode(), 0))
    if close_line:
        ops.append((OP_LAST_LIT, b"Connection: close\r\n", 0))
    ops.append((OP_LIT, b"\r\n", 0))
    ops = _merged(ops)
    body_start = len(ops)
    ops += _ops(body_pieces)
    upgrade = "upgrade" in names
    if not templated:
        plain = b"".join(op[1] for op in ops if op[0] == OP_LIT)
        last = b"".join(op[1] for op in ops)
        return group, target.method == "HEAD", upgrade, plain, last, (), 0
    longest = _longest(ops)
    if longest > MAX_RENDER:
        raise PlanError(f"{where}: the templated request may reach {longest:,} bytes; at most {MAX_RENDER:,}")
    return group, target.method == "HEAD", upgrade, b"", b"", ops, body_start


def _no_nul(pieces: list[Piece], where: str, what: str) -> list[Piece]:
    """HTTP/2: the core takes the header block as NUL-separated pairs, and RFC 9113 section 8.2.1
    forbids NUL in a field value anyway."""
    if any(isinstance(p, bytes) and b"\0" in p for p in pieces):
        raise PlanError(f"{where}: {what} holds a NUL byte, which an HTTP/2 field cannot carry")
    return pieces


def compile_target_h2(target: RequestTarget, plan: Plan, group: int) -> tuple:
    """One target as _core.Core takes it under --http2: (group, head, upgrade, b"", b"", ops, body_start),
    its ops rendering the header block as name\0value\0 pairs, the pseudo-fields first (RFC 9113
    section 8.3.1), names in lower case (section 8.2.2), connection-specific fields left out and Host
    as :authority (section 8.2.2, 8.3.1), then its body; literal or templated, core/h2.c renders them."""
    url = absolute_url(target, plan.url)
    scheme, _, _, path = split_url(url)
    where = target.where
    given = {name.lower() for name, _ in target.headers}
    headers = [(n, v) for n, v in plan.headers if n.lower() not in given] + list(target.headers)
    names = {name.lower() for name, _ in headers}
    body = plan.body if target.body is None else target.body
    host = next((v for n, v in headers if n.lower() == "host"), None)
    authority = _no_nul(_pieces(host, where, "header Host"), where, "header Host") if host is not None \
        else [host_header(url).encode()]
    head: list[Piece] = [f":method\0{target.method}\0:scheme\0{scheme}\0:authority\0".encode(), *authority,
                         b"\0:path\0", *_no_nul(_pieces(path, where, "URL"), where, "URL"), b"\0"]
    if "user-agent" not in names:
        head.append(f"user-agent\0{USER_AGENT}\0".encode())
    for name, value in headers:
        if name.lower() not in DROPPED:
            what = f"header {name}"
            head += [f"{name.lower()}\0".encode(), *_no_nul(_pieces(value, where, what), where, what), b"\0"]
    body_pieces = template_pieces(body, where, "body") if body else []
    templated_body = any(not isinstance(p, bytes) for p in body_pieces)
    if "content-length" in names and templated_body:
        raise PlanError(f"{where}: a templated body's length varies: leave Content-Length to twload")
    ops = _ops(head)
    if body and "content-length" not in names:
        if templated_body:
            ops += [(OP_LIT, b"content-length\0", 0), (OP_CLEN, b"", 0), (OP_LIT, b"\0", 0)]
        else:
            ops.append((OP_LIT, f"content-length\0{len(body)}\0".encode(), 0))
    ops = _merged(ops)
    body_start = len(ops)
    ops += _ops(body_pieces)
    longest = _longest(ops)
    if longest > MAX_RENDER:
        raise PlanError(f"{where}: the templated request may reach {longest:,} bytes; at most {MAX_RENDER:,}")
    return group, target.method == "HEAD", False, b"", b"", ops, body_start


def cycle(weights: list[int]) -> array:
    """The order's cycle: target i appears weights[i] times, spread out (the j-th of w at (j + 0.5) / w
    of the way), so round-robin with weights 3 and 1 sends 0 0 1 0 rather than 0 0 0 1."""
    places = sorted(((j + 0.5) / w, i) for i, w in enumerate(weights) for j in range(w))
    return array("i", [i for _, i in places])


def request_set(plan: Plan, close_line: bool) -> RequestSet:
    names = labels(plan.targets)
    if len(names) > MAX_NAMES:  # plan/targets.py refuses it first
        raise PlanError(f"more than {MAX_NAMES} distinct targets")
    group = {name: i for i, name in enumerate(names)}
    if plan.http2:  # one destination (plan.model refuses more): no Connection: close, no parts
        compiled = [compile_target_h2(t, plan, group[t.label]) for t in plan.targets]
        return RequestSet(compiled, cycle([t.weight for t in plan.targets]), names, http2=True)
    compiled = [compile_target(t, plan, group[t.label], close_line) for t in plan.targets]
    if not plan.destinations:
        return RequestSet(compiled, cycle([t.weight for t in plan.targets]), names)
    # several destinations: each target knows its own, and each destination has its own cycle
    index = {destination(destination_url((d.scheme, d.host, d.port))): i for i, d in enumerate(plan.destinations)}
    dests = [index[destination(absolute_url(t, plan.url))] for t in plan.targets]
    compiled = [(*c, d) for c, d in zip(compiled, dests, strict=True)]
    order = array("i")
    parts: list[tuple[int, int]] = []
    weights: list[int] = []
    for d in range(len(plan.destinations)):
        mine = [i for i, dest in enumerate(dests) if dest == d]
        part = cycle([plan.targets[i].weight for i in mine])
        parts.append((len(order), len(part)))
        order.extend(mine[j] for j in part)
        weights.append(sum(plan.targets[i].weight for i in mine))
    return RequestSet(compiled, order, names, tuple(parts), tuple(weights))
