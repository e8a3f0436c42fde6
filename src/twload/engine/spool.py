"""A request file too large to hold (issue #32): read once, a line at a time, and streamed to the core.

Up to SPOOL_OVER targets (and SPOOL_OVER_BYTES of compiled requests) a file is held whole, as
engine/request_set.py packs it: its order spreads each target's weight over the cycle, in any order,
to any number of destinations. A larger file is compiled, target by target as it is read, into a
spool: a private temporary file of records (the format core.c spool_target reads), and only the
names of its targets (at most plan/targets.py MAX_NAMES) and its one destination stay in memory.
Each worker's core then reads the spool a page at a time (core.c spool_page: at most PAGE targets or
core.c's PAGE_BYTES of records), walking one page while the other is loaded, and starts over at the end: the
file's order, round-robin, each target its weight times in a row. Memory is two pages a worker
however large the file; the disk holds the compiled file once.

What only a whole file can do is refused for a streamed one, each in one line: --targets-order
random (a draw from the whole file), targets on several destinations (each destination's pool
walks its own part of the order), --cluster / --scheduler (the spool is on this host's disk), and
--io uring (a page is loaded anew once no request of its own is in flight, and io_uring's kernel
may still read a request's bytes after its answer came).

Bad lines are refused before any request is sent, with file:line, so the whole file is read before
the run starts, standard input too (`--targets -`): a streamed file's run starts once its input has
ended, and stdin cannot be read twice, so it is compiled into the spool as it arrives and the run
walks the spool.
"""

from __future__ import annotations

import atexit
import os
import struct
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

from twload.engine.request_set import (
    MAX_RENDER_TOTAL,
    OP_LAST_LIT,
    OP_LIT,
    _longest,
    absolute_url,
    compile_target,
    destination,
)
from twload.plan import PlanError
from twload.plan.targets import MAX_NAMES, OTHER_TARGETS, RequestTarget, Spool, check_whole, iter_targets

SPOOL_OVER = 65_536  # a file with more targets than this is streamed
SPOOL_OVER_BYTES = 32 << 20  # or with more bytes of compiled requests than this
PAGE = 16_384  # targets a page in the core (two pages a worker)

_HEAD = struct.Struct("=IHHBBBxII")  # record length, group, weight, head, upgrade, templated, a, b
_OP = struct.Struct("=B3xIQ")  # kind, literal length, arg


@dataclass(frozen=True)
class Defaults:
    """What compile_target reads of the plan: the command line's URL (the base of paths), -H, --body."""

    url: str | None
    headers: tuple[tuple[str, str], ...]
    body: bytes


def record(compiled: tuple, weight: int) -> bytes:
    """One target as engine/request_set.py compile_target made it, as a spool record."""
    group, head, upgrade, plain, last, ops, body_start = compiled[:7]
    if not ops:
        rest = plain + last
        return _HEAD.pack(16 + len(rest), group, weight, head, upgrade, 0, len(plain), len(last)) + rest
    table = b"".join(_OP.pack(kind, len(data) if kind in (OP_LIT, OP_LAST_LIT) else 0, arg)
                     for kind, data, arg in ops)
    pool = b"".join(data for kind, data, _ in ops if kind in (OP_LIT, OP_LAST_LIT))
    size = 16 + len(table) + len(pool)
    return _HEAD.pack(size, group, weight, head, upgrade, 1, len(ops), body_start) + table + pool


class SpoolWriter:
    """Compiled records into a private temporary file, removed when this process ends."""

    def __init__(self, defaults: Defaults, close_line: bool) -> None:
        self.defaults = defaults
        self.close_line = close_line
        try:
            fd, self.path = tempfile.mkstemp(prefix="twload-targets-", suffix=".spool")  # mode 0600
        except OSError as exc:
            raise PlanError(f"cannot make a file for the compiled request file in {tempfile.gettempdir()}: "
                            f"{exc.strerror}") from None
        atexit.register(_remove, self.path)
        self.file = os.fdopen(fd, "wb", buffering=1 << 20)
        self.groups: dict[str, int] = {}
        self.render_max = 0
        self.size = 0

    def add(self, target: RequestTarget) -> None:
        label = target.label
        if label not in self.groups and len(self.groups) >= MAX_NAMES - 1:
            label = OTHER_TARGETS  # plan/targets.py check_whole: the rest counted together
        group = self.groups.setdefault(label, len(self.groups))
        compiled = compile_target(target, self.defaults, group, self.close_line)  # type: ignore[arg-type]
        if compiled[5]:
            self.render_max = max(self.render_max, _longest(compiled[5]))
        data = record(compiled, target.weight)
        try:
            self.file.write(data)
        except OSError as exc:  # not the request file's fault: say whose
            raise PlanError(f"cannot write the compiled request file {self.path}: {exc.strerror}") from None
        self.size += len(data)

    def close(self) -> None:
        try:
            self.file.close()
        except OSError as exc:
            raise PlanError(f"cannot write the compiled request file {self.path}: {exc.strerror}") from None

    def discard(self) -> None:
        try:
            self.file.close()
        except OSError:
            pass
        _remove(self.path)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def read_whole_or_spool(source: Iterable[bytes], name: str, fmt: str, base: str | None, defaults: Defaults,
                        close_line: bool) -> tuple[tuple[RequestTarget, ...], Spool | None]:
    """A request file read a line at a time (format `fmt`): held whole and checked as a whole, or spooled."""
    targets, spool = read_request_file(iter_targets(source, name, fmt, base), name, defaults, close_line)
    return (check_whole(targets, name) if spool is None else targets), spool


def read_request_file(targets: Iterable[RequestTarget], name: str, defaults: Defaults,
                      close_line: bool) -> tuple[tuple[RequestTarget, ...], Spool | None]:
    """Every target when the file is small enough to hold (spool None); else its first target and the
    spool its targets were compiled into as they were read."""
    held: list[RequestTarget] = []
    held_bytes = 0
    writer: SpoolWriter | None = None
    first: RequestTarget | None = None
    count = 0
    where: tuple[str, str, int] | None = None
    try:
        for target in targets:
            count += 1
            if writer is None:
                held.append(target)
                held_bytes += _size(target)
                if len(held) <= SPOOL_OVER and held_bytes <= SPOOL_OVER_BYTES:
                    continue
                writer = SpoolWriter(defaults, close_line)
                first = held[0]
                for t in held:
                    where = _one_destination(t, defaults, where)
                    writer.add(t)
                held = []
                continue
            where = _one_destination(target, defaults, where)
            writer.add(target)
    except BaseException:
        if writer is not None:
            writer.discard()
        raise
    if writer is None:
        if not held:
            raise PlanError(f"{name}: no targets")
        return tuple(held), None
    writer.close()
    assert first is not None and where is not None
    scheme, host, port = where
    shown = f"[{host}]" if ":" in host else host
    return (first,), Spool(writer.path, writer.size, count, tuple(writer.groups), writer.render_max,
                           f"{scheme}://{shown}:{port}/")


def _size(target: RequestTarget) -> int:
    """About the bytes the target's request holds (what a whole file in memory costs, less Python's share)."""
    return len(target.url) + len(target.body or b"") + sum(len(n) + len(v) + 4 for n, v in target.headers)


def _one_destination(target: RequestTarget, defaults: Defaults,
                     where: tuple[str, str, int] | None) -> tuple[str, str, int]:
    dest = destination(absolute_url(target, defaults.url))
    if where is not None and dest != where:
        raise PlanError(f"{target.where}: {dest[1]}:{dest[2]} is a second destination (host:port): a request file "
                        f"over {SPOOL_OVER:,} targets is streamed, to one destination a run; give each its own file")
    return dest


def streamed_problem(plan_order: str, io: str, distributed: bool) -> str | None:
    """What a streamed request file cannot do, as the one line that refuses it (None: nothing)."""
    if plan_order == "random":
        return (f"--targets-order random draws from the whole file: a request file over {SPOOL_OVER:,} targets is "
                "streamed, round-robin only")
    if io == "uring":
        return (f"--io uring: a request file over {SPOOL_OVER:,} targets is streamed on the epoll backend; "
                "use --io epoll")
    if distributed:
        return (f"--cluster / --scheduler: a request file over {SPOOL_OVER:,} targets is streamed from this host's "
                "disk; run it on one host, or split it into files of fewer targets")
    return None


def check_buffers(spool: Spool, slots: int) -> None:
    """As engine/request_set.py check_buffers, for a streamed set's longest templated request."""
    need = spool.render_max * slots
    if need > MAX_RENDER_TOTAL:
        raise PlanError(f"templated requests of up to {spool.render_max:,} bytes for {slots:,} connections of a "
                        f"worker need {need / 2**20:.0f} MiB of buffers; at most {MAX_RENDER_TOTAL >> 20} MiB: "
                        "fewer connections, more workers, or a smaller templated body")
