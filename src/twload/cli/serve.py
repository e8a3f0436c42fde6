"""`twload serve`: the embedded target."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Annotated

import typer

from twload.cli import EXIT_USAGE, app, fail
from twload.plan import PlanError, parse_duration
from twload.serve.limits import MAX_HEAD, MAX_URL


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.", rich_help_panel="Listen")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one and prints it.", rich_help_panel="Listen")] = 8080,
    workers: Annotated[int, typer.Option("-w", "--workers", help="Processes sharing the port (SO_REUSEPORT).", rich_help_panel="Listen")] = 1,
    body_size: Annotated[int, typer.Option("--body-size", help="Response body bytes.", rich_help_panel="Responses")] = 12,
    delay: Annotated[str | None, typer.Option("--delay", help="Delay before each response, e.g. 5ms.", rich_help_panel="Responses")] = None,
    close_after: Annotated[int, typer.Option("--close-after", help="Close after N requests on a connection (0: never).", rich_help_panel="Responses")] = 0,
    stall: Annotated[str | None, typer.Option("--stall", help="Once, stop answering for this long (e.g. 1s), like a GC pause.", rich_help_panel="Responses")] = None,
    stall_after: Annotated[int, typer.Option("--stall-after", help="With --stall: after this many requests.", rich_help_panel="Responses")] = 0,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="Serve https with this certificate chain (PEM).", rich_help_panel="TLS")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="The certificate's private key (PEM).", rich_help_panel="TLS")] = None,
    max_url: Annotated[int, typer.Option("--max-url", help="Longest request-target in bytes; longer: 414, then close. Default as nginx's (one 8k buffer).", rich_help_panel="Limits")] = MAX_URL,
    http2: Annotated[bool, typer.Option("--http2", help="Speak HTTP/2: h2c with prior knowledge, or h2 by ALPN with --tls-cert (python h2: correct, not fast). --close-after N sends GOAWAY after N requests.", rich_help_panel="Responses")] = False,
    max_head: Annotated[int, typer.Option("--max-head", help="Largest request head in bytes; larger: 431, then close. Default as nginx's (4 x 8k buffers).", rich_help_panel="Limits")] = MAX_HEAD,
) -> None:
    """An embedded HTTP/1.1 target (uvloop + httptools), or HTTP/2 with --http2. Stats at GET /__twload/stats."""
    from twload.serve.server import ServeOptions
    from twload.serve.server import serve as serve_forever

    try:
        if workers < 1 or body_size < 0 or close_after < 0 or not 0 <= port <= 65535:
            raise PlanError("--workers >= 1, --body-size >= 0, --close-after >= 0, 0 <= --port <= 65535")
        if (tls_cert is None) != (tls_key is None):
            raise PlanError("give both --tls-cert and --tls-key")
        if max_url < 1 or max_head < 1:
            raise PlanError("--max-url and --max-head are sizes in bytes, at least 1")
        options = ServeOptions(host, port, workers, body_size, parse_duration(delay) if delay else 0.0, close_after,
                               parse_duration(stall) if stall else 0.0, stall_after,
                               str(tls_cert) if tls_cert else None, str(tls_key) if tls_key else None,
                               max_url, max_head, http2)
    except PlanError as exc:
        fail(str(exc), EXIT_USAGE)
    try:
        serve_forever(options, announce=lambda line: print(line, flush=True))
    except ssl.SSLError as exc:
        fail(f"cannot use --tls-cert/--tls-key: {exc.reason or exc}")
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
