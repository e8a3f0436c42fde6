"""`twload.serve()`: the embedded target (`twload serve`) in a child process, for a test, an example or a
notebook: its URL for as long as the `with` block runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from twload.engine.supervisor import RunError
from twload.plan import PlanError, parse_duration
from twload.serve.embedded import EmbeddedServer


@contextmanager
def serve(*, host: str = "127.0.0.1", port: int = 0, body_size: int = 12, delay: str | None = None,
          close_after: int = 0, workers: int = 1, http2: bool = False) -> Iterator[str]:
    """`twload serve --port 0 ...` (a free port): yields the URL it listens on, and stops the server (by its
    PID) when the block ends. Each keyword is the `twload serve` option of that name; RunError when it
    does not start, PlanError for a bad option (the command's line)."""
    if workers < 1 or body_size < 0 or close_after < 0 or not 0 <= port <= 65535:
        raise PlanError("--workers >= 1, --body-size >= 0, --close-after >= 0, 0 <= --port <= 65535")
    if delay is not None:
        parse_duration(delay)  # a bad one: PlanError here, not a child that does not start
    args = ["--host", host, "--port", str(port), "--body-size", str(body_size), "--close-after", str(close_after),
            "--workers", str(workers)]
    if delay is not None:
        args += ["--delay", delay]
    if http2:
        args.append("--http2")
    server = EmbeddedServer(*args)
    try:
        server.__enter__()
    except RuntimeError as exc:
        raise RunError(str(exc)) from None
    try:
        yield server.url
    finally:
        server.stop()
