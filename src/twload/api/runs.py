"""`twload.run()`: a load run from Python, the `twload run` way (same defaults, checks, run folder), its
Summary returned.

The run happens in this process's thread, as on the command line: the workers are processes, the
thread only collects their seconds, so a running asyncio loop in the caller's thread (a notebook, a
coroutine) is no obstacle (it waits, as for any blocking call). Ctrl-C stops the run; the partial
summary comes back in RunInterrupted, a KeyboardInterrupt.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from twload import thresholds as gates
from twload.api.building import build_plan
from twload.api.running import execute
from twload.engine import core
from twload.engine.supervisor import RunError, StartInterrupted
from twload.merge.summary import Summary

# what `twload.run()` takes as its first argument: a URL; a request file (a Path); or the targets
# themselves, each as a request file's entry ("GET http://host/path", headers below it) or a bare URL
UrlOrTargets = str | os.PathLike[str] | Sequence[str]
Duration = str | float  # "10s", "1m", "500ms", or seconds


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM, or the `stop` event, ended the run early. `summary` is the partial run's
    (its summary.json is in `folder` too). A KeyboardInterrupt: left uncaught, it ends a script or a test
    session as Ctrl-C would; caught, it gives what was measured until then."""

    def __init__(self, summary: Summary, folder: Path) -> None:
        super().__init__(f"the run was interrupted ({summary.interrupted}); partial results in {folder}: {summary!r}")
        self.summary = summary
        self.folder = folder

    def __reduce__(self) -> tuple[type[RunInterrupted], tuple[Summary, Path]]:
        return RunInterrupted, (self.summary, self.folder)  # pickled whole (a process pool hands it back)


def _seconds(value: Duration | None) -> str | None:
    return None if value is None else str(value)


def _header_lines(headers: Mapping[str, str] | Sequence[str]) -> list[str]:
    if isinstance(headers, Mapping):
        return [f"{name}: {value}" for name, value in headers.items()]
    if isinstance(headers, str):  # one header given alone, not a list of them
        return [headers]
    return list(headers)


def _targets_text(entries: Sequence[str], fmt: str) -> bytes:
    """A request file's content from its entries; a bare URL is a GET (format http)."""
    if fmt == "json":
        return "\n".join(entries).encode() + b"\n"
    blocks = [entry if any(c.isspace() for c in entry.strip()) else f"GET {entry.strip()}" for entry in entries]
    return "\n\n".join(block.strip("\n") for block in blocks).encode() + b"\n"


def command_line(url: str | None, targets: str | None, options: Mapping[str, Any]) -> list[str]:
    """The `twload run` command that does what this call does, for plan.json's `command` (a run folder
    written by the API says how to run it again from a shell)."""
    argv = ["twload", "run"] + ([url] if url else [])
    if targets is not None:
        argv += ["--targets", targets]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is None or value is False or (name in DEFAULTS and DEFAULTS[name] == value):
            continue
        if name == "headers":
            for line in value:
                argv += ["-H", line]
        elif name == "thresholds":
            for text in value:
                argv += ["--threshold", text]
        elif value is True:
            argv.append(flag)
        elif isinstance(value, bytes):
            argv += [flag, f"<{len(value)} bytes>"]
        else:
            argv += [flag, str(value)]
    return argv


DEFAULTS: dict[str, Any] = {
    "connections": 50, "method": "GET", "timeout": "10s", "connect_timeout": "5s", "close": "keepalive",
    "max_connections": 10_000, "tls_min": "1.2", "io": "epoll", "streams": 10, "targets_format": "http",
    "targets_order": "round-robin", "headers": [], "thresholds": [],
}


def run(
    url_or_targets: UrlOrTargets,
    *,
    connections: int = 50,
    duration: Duration | None = None,
    requests: int | None = None,
    close: str = "keepalive",
    rate: float | None = None,
    workers: int | None = None,
    out: str | os.PathLike[str] | None = None,
    method: str = "GET",
    headers: Mapping[str, str] | Sequence[str] = (),
    body: str | bytes | None = None,
    timeout: Duration = "10s",
    connect_timeout: Duration = "5s",
    requests_per_connection: int | None = None,
    stages: str | None = None,
    open_loop: bool = False,
    max_connections: int = 10_000,
    source: str | None = None,
    insecure: bool = False,
    cacert: str | os.PathLike[str] | None = None,
    tls_min: str = "1.2",
    ciphers: str | None = None,
    ciphersuites: str | None = None,
    tls_resume: bool = False,
    http2: bool = False,
    streams: int = 10,
    io: str = "epoll",
    base_url: str | None = None,
    targets_format: str = "http",
    targets_order: str = "round-robin",
    seed: int | None = None,
    max_errors: int | None = None,
    thresholds: Sequence[str] = (),
    strict: bool = False,
    keep_credentials: bool = False,
    on_second: Callable[[dict[str, Any]], None] | None = None,
    stop: threading.Event | None = None,
) -> Summary:
    """Load `url_or_targets` as `twload run` does, with its defaults and checks; the run's Summary.

    `url_or_targets`: a URL; a request file (a `pathlib.Path`, `--targets`); or a list of targets, each
    a request file's entry ("POST http://host/path" with header lines below it) or a bare URL (a GET).
    `base_url` is the base of a request file's relative paths. `duration`: "10s", "1m", "500ms" or
    seconds; 10 s unless `requests` is given. Each keyword is the `twload run` option of that name
    (`headers`: {"Name": "value"} or ["Name: value"]; `thresholds`: ["p99<50ms", "errors<0.1%"], judged
    into `summary.thresholds`). The run folder is `out`, or a new one under ./twload-runs/ (private,
    0700, never shared with another run): `summary.json`, `samples.jsonl`, the histograms.
    `on_second` gets each second's samples.jsonl row as it is written; `stop`, set from another thread,
    ends the run as Ctrl-C does.

    Raises PlanError (a mistake in the arguments: the command line's one line), RunError (the target
    cannot be reached, or the run cannot start), RunFolderError (`out` cannot hold the run), and
    RunInterrupted (a KeyboardInterrupt) when Ctrl-C, SIGTERM or `stop` ended the run: it carries the
    partial summary (a plain KeyboardInterrupt while the workers were still starting: nothing ran).
    A run that went wrong otherwise (errors, a lost worker, `max_errors` reached, thresholds failed)
    returns its summary: judge it.
    """
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        # spawn runs the parent's __main__ again in each worker process before the worker starts
        raise RunError("twload.run() was called while a worker process imported the script: put the call under "
                       "`if __name__ == \"__main__\":` (multiprocessing starts workers by importing the main module)")
    if not core.available():  # the one engine: no fallback, and nothing to plan without it
        raise RunError(core.NOT_BUILT)
    url: str | None
    targets_file: str | None = None
    targets_data: bytes | None = None
    if isinstance(url_or_targets, str):
        url = url_or_targets
    elif isinstance(url_or_targets, os.PathLike):
        url, targets_file = base_url, os.fspath(url_or_targets)
    else:
        entries = list(url_or_targets)
        url, targets_file = base_url, f"<{len(entries)} targets>"
        targets_data = _targets_text(entries, targets_format)
    lines = _header_lines(headers)
    plan = build_plan(
        url, connections, _seconds(duration), requests, workers, method, lines, body, None,
        str(timeout), str(connect_timeout), close, requests_per_connection, source, rate, stages, open_loop,
        max_connections, insecure, Path(cacert) if cacert is not None else None, max_errors, "auto", io,
        targets_file=targets_file, targets_format=targets_format, targets_order=targets_order, seed=seed,
        http2=http2, streams=streams, tls_min=tls_min, ciphers=ciphers, ciphersuites=ciphersuites,
        tls_resume=tls_resume, targets_data=targets_data)
    checks = [gates.parse(t) for t in thresholds]
    command = command_line(url, targets_file, {
        "connections": connections, "duration": duration, "requests": requests, "workers": workers,
        "close": close, "rate": rate, "method": method, "headers": lines, "body": body, "timeout": timeout,
        "connect_timeout": connect_timeout, "requests_per_connection": requests_per_connection,
        "stages": stages, "open_loop": open_loop, "max_connections": max_connections, "source": source,
        "insecure": insecure, "cacert": cacert, "tls_min": tls_min, "ciphers": ciphers,
        "ciphersuites": ciphersuites, "tls_resume": tls_resume, "http2": http2, "streams": streams, "io": io,
        "targets_format": targets_format, "targets_order": targets_order, "seed": seed,
        "max_errors": max_errors, "thresholds": list(thresholds), "strict": strict,
        "keep_credentials": keep_credentials, "out": out})
    try:
        outcome = execute(plan, Path(out) if out is not None else None, strict=strict, thresholds=checks,
                          keep_credentials=keep_credentials, command=command,
                          on_second=(on_second,) if on_second is not None else (), stop=stop)
    except StartInterrupted:  # Ctrl-C before any request: nothing measured, a KeyboardInterrupt as any other
        raise KeyboardInterrupt("interrupted before the run started") from None
    if outcome.summary.interrupted:
        raise RunInterrupted(outcome.summary, outcome.folder)
    return outcome.summary
