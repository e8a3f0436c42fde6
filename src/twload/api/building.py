"""The plan of a run from its settings: what `twload run`'s options and `twload.run()`'s arguments both
become, with the same defaults and the same checks (each mistake one PlanError line)."""

from __future__ import annotations

import io
import secrets
import sys
from pathlib import Path

from twload.engine import core
from twload.engine.limits import hard_file_limit
from twload.engine.request_set import absolute_url, check_buffers, check_destinations, destination, request_set
from twload.engine.spool import Defaults, read_whole_or_spool, streamed_problem
from twload.engine.spool import check_buffers as check_spool_buffers
from twload.engine.tls import tls_context
from twload.kernel.resolve import parse_target
from twload.kernel.sources import check_sources_local
from twload.plan import (
    Plan,
    PlanError,
    Target,
    default_workers,
    parse_duration,
    parse_header,
    parse_sources,
    parse_stages,
)
from twload.plan.close import asks_server_to_close
from twload.plan.limits import file_limit_problem
from twload.plan.targets import RequestTarget, Spool


def build_plan(
    url: str | None, connections: int, duration: str | None, requests: int | None, workers: int | None,
    method: str, header: list[str], body: str | bytes | None, body_file: Path | None, timeout: str,
    connect_timeout: str, close: str, requests_per_connection: int | None = None, source: str | None = None,
    rate: float | None = None, stages: str | None = None, open_loop: bool = False, max_connections: int = 10_000,
    insecure: bool = False, cacert: Path | None = None, max_errors: int | None = None, engine: str = "auto",
    io: str = "epoll", sources_here: bool = True, targets_file: str | None = None, targets_format: str = "http",
    targets_order: str = "round-robin", seed: int | None = None, http2: bool = False, streams: int = 10,
    tls_min: str = "1.2", ciphers: str | None = None, ciphersuites: str | None = None, tls_resume: bool = False,
    targets_data: bytes | None = None,
) -> Plan:
    """The plan of `twload run`'s options, checked. `targets_data`: a request file's content given in
    memory (the API's list of targets), `targets_file` then its name."""
    if body is not None and body_file is not None:
        raise PlanError("give --body or --body-file, not both")
    try:
        payload = body_file.read_bytes() if body_file else body.encode() if isinstance(body, str) else body or b""
    except OSError as exc:
        raise PlanError(f"cannot read --body-file {body_file}: {exc.strerror}") from None
    spool = None
    targets: tuple[RequestTarget, ...] = ()
    if targets_file is not None:  # held whole, or (a large file) streamed from its compiled spool
        defaults = Defaults(url, tuple(parse_header(h) for h in header), payload)
        targets, spool = read_targets(targets_file, targets_format, url, defaults, asks_server_to_close(close),
                                      targets_data)
    if url is None:
        if not targets:
            raise PlanError("give a URL, or a request file with --targets")
        url = absolute_url(targets[0], None)
    destinations: tuple[Target, ...] = ()
    dest_urls: tuple[str, ...] = ()
    destination_weights: tuple[int, ...] = ()
    if targets:
        dest_urls = check_destinations(targets, url)
        if spool is None and (len(dest_urls) > 1 or destination(dest_urls[0]) != destination(url)):
            # targets on several destinations (or on one that is not the URL's): a pool each (issue #32)
            if connections < len(dest_urls) and not (open_loop or rate is not None):
                raise PlanError(f"-c {connections}: fewer connections than the {len(dest_urls)} destinations "
                                "(host:port) of the targets; each needs one at least")
            destinations = tuple(parse_target(u) for u in dest_urls)
            where = {destination(u): i for i, u in enumerate(dest_urls)}
            weights = [0] * len(dest_urls)
            for t in targets:
                weights[where[destination(absolute_url(t, url))]] += t.weight
            destination_weights = tuple(weights)
        if seed is None:  # drawn here, so plan.json says which one ran
            seed = secrets.randbits(63)
    target = parse_target(spool.destination if spool is not None else url)  # a streamed file: its one destination
    if destinations and destination(url) not in {destination(u) for u in dest_urls}:
        target = destinations[0]  # the file sends the URL nothing (it is a base at most): probe the first one
    sources = parse_sources(source) if source else ()
    if sources and len({d.family for d in destinations}) > 1:
        raise PlanError("--source with targets on both IPv4 and IPv6 destinations: a source address has one family")
    staged = parse_stages(stages, parse_duration) if stages else ()
    open_loop = open_loop or rate is not None
    if staged:
        duration = None
        if not open_loop:
            connections = max(1, int(max(s.target for s in staged)))
    if sources_here:  # a distributed run checks them on each worker's host
        check_sources_local(sources, target)
    plan = Plan(
        target=target,
        url=url,
        connections=connections,
        workers=workers or default_workers(),
        duration_s=(sum(s.duration_s for s in staged) if staged
                    else parse_duration(duration) if duration else (None if requests else 10.0)),
        requests=requests,
        method=method.upper(),
        headers=tuple(parse_header(h) for h in header),
        body=payload,
        close=close,
        timeout_s=parse_duration(timeout),
        connect_timeout_s=parse_duration(connect_timeout),
        requests_per_connection=requests_per_connection,
        sources=sources,
        rate=rate,
        stages=staged,
        open_loop=open_loop,
        max_connections=max_connections,
        insecure=insecure,
        cacert=str(cacert) if cacert else None,
        max_errors=max_errors,
        engine=engine,
        io="epoll" if spool is not None and io == "auto" else io,  # a streamed file: epoll (engine/spool.py)
        targets=targets,
        targets_source=targets_file or "",
        targets_spool=spool,
        targets_order=targets_order,
        seed=seed,
        destinations=destinations,
        destination_weights=destination_weights,
        http2=http2,
        streams=streams,
        tls_min=tls_min,
        ciphers=ciphers,
        ciphersuites=ciphersuites,
        tls_resume=tls_resume,
    )
    if plan.targets and not core.available():  # the request set is made for the core
        raise PlanError(core.NOT_BUILT)
    if plan.targets and method.upper() != "GET":
        raise PlanError("-m has nothing to do with --targets: each target names its method")
    if plan.targets:  # each target's request made once here: its mistakes are usage errors
        slots = max(conns for conns, _ in plan.worker_shares())
        if plan.stages and not plan.open_loop:  # CoreWorker's capacity for the largest stage
            slots = max(slots, int(max(s.target for s in plan.stages) / len(plan.worker_shares()) + 1))
        if spool is not None:  # compiled already, as it was read
            problem = streamed_problem(plan.targets_order, plan.io, not sources_here)
            if plan.http2:
                problem = ("--http2 with a streamed request file (over 65,536 targets) is not built: "
                           "its spool holds HTTP/1.1 requests")
            if problem:
                raise PlanError(problem)
            check_spool_buffers(spool, slots)
        else:
            check_buffers(request_set(plan, close_line=True), slots, plan.streams if plan.http2 else 1)
    problem = file_limit_problem(plan, hard_file_limit())
    if problem:
        raise PlanError(problem)
    if plan.io == "uring" and not core.uring_available():
        raise PlanError("--io uring: io_uring is not usable here (not built with liburing, "
                        "or blocked by sysctl kernel.io_uring_disabled or seccomp); use --io epoll or auto")
    if target.scheme == "https":
        if plan.tls_min != "1.2" or plan.ciphers is not None or plan.ciphersuites is not None or plan.tls_resume:
            if not core.available():  # OpenSSL's judgement of the names is the core's
                raise PlanError(core.NOT_BUILT)
            problem = core.tls_options_problem(plan.tls_min, plan.ciphers, plan.ciphersuites)
            if problem:  # the workers' OpenSSL judges the names, before any request
                raise PlanError(problem)
        tls_context(plan)  # a bad --cacert is a usage error here, not a crash in a worker
    return plan


def read_targets(path: str, fmt: str, base: str | None, defaults: Defaults, close_line: bool,
                 data: bytes | None = None) -> tuple[tuple[RequestTarget, ...], Spool | None]:
    """--targets FILE (or -, standard input; or `data`, named `path`) read a line at a time and checked:
    (every target, None), or for a file too large to hold (its first target, its Spool)
    (engine/spool.py); or one PlanError line."""
    if data is not None:
        return read_whole_or_spool(io.BytesIO(data), path, fmt, base, defaults, close_line)
    if path == "-":
        return read_whole_or_spool(sys.stdin.buffer, "<stdin>", fmt, base, defaults, close_line)
    try:
        with open(path, "rb") as f:
            return read_whole_or_spool(f, path, fmt, base, defaults, close_line)
    except OSError as exc:
        raise PlanError(f"cannot read --targets {path}: {exc.strerror}") from None
