"""`twload run`: the plan from the arguments, then pre-flight, port budget, run folder, supervisor with live
progress, summary."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from twload import thresholds as gates
from twload.api import running
from twload.api.building import build_plan
from twload.cli import EXIT_USAGE, app, err, fail, terminal_width
from twload.cli.progress import live_hooks, live_progress
from twload.distributed.spec import parse_cluster
from twload.doctor.preflight import Preflight
from twload.engine import core
from twload.engine.preflight import PortProbe
from twload.engine.supervisor import RunError
from twload.live.exposition import ListenError, MetricsEndpoint, parse_listen
from twload.live.feed import LiveRun, facts_of
from twload.merge.summary import Summary
from twload.plan import Plan, PlanError, parse_duration
from twload.results import RunFolderError

EXIT_STRICT = running.EXIT_STRICT
EXIT_THRESHOLD = running.EXIT_THRESHOLD  # a failed --threshold: the run itself went fine, the target did not


def execute(plan: Plan, out: Path | None, show_progress: bool, console: Console,
            strict: bool = False, thresholds: list | None = None,
            keep_credentials: bool = False, live: LiveRun | None = None,
            full_screen: bool = False) -> tuple[Summary, Path, int]:
    """The API's run (twload.api.running.execute, what `twload.run()` calls too), shown on the console."""
    def note(line: str, warning: bool) -> None:
        console.print(f"[yellow]{line}[/]" if warning else f"[dim]{line}[/]", soft_wrap=True)

    @contextmanager
    def watch(pre: Preflight, probe: PortProbe) -> Iterator[running.Hooks]:
        with live_progress(console, show_progress and not full_screen, pre.budget.ports, probe) as on_line, \
                live_hooks(live, console, full_screen, pre.budget_block(), on_line) as (on_progress, on_second):
            yield on_progress, on_second

    try:
        outcome = running.execute(plan, out, strict=strict, thresholds=thresholds or (),
                                  keep_credentials=keep_credentials, note=note, watch=watch)
    except running.StrictRefusal as exc:
        console.print(f"[bold red]twload:[/] {exc}")
        raise typer.Exit(EXIT_STRICT) from None
    except (RunError, RunFolderError) as exc:
        console.print(f"[bold red]twload:[/] {exc}", soft_wrap=True)
        raise typer.Exit(1) from None
    return outcome.summary, outcome.folder, outcome.code


def start_live(plan: Plan, listen: str | None, allow_remote: bool, linger: str) -> LiveRun:
    """The run's live outputs; the metrics endpoint listens from here on (a bad address: one line)."""
    endpoint = None
    facts = facts_of(plan)
    try:
        linger_s = 0.0 if linger.strip() in ("0", "0s") else parse_duration(linger)  # 0: no linger
        if listen is not None:
            host, port = parse_listen(listen, allow_remote)
            endpoint = MetricsEndpoint(host, port, facts)
    except PlanError as exc:
        fail(f"--metrics-linger: {exc}", EXIT_USAGE)
    except ListenError as exc:
        fail(str(exc), EXIT_USAGE)
    if endpoint is not None:
        err.print(f"metrics: {endpoint.url}", highlight=False)
    return LiveRun(facts, endpoint, linger_s)


def full_screen_wanted(show_progress: bool, no_tui: bool) -> bool:
    """The full-screen view: only when both stdout and stderr are a terminal (a pipe, a file, -q and
    --json keep today's output), and not with --no-tui or a dumb terminal."""
    return (show_progress and not no_tui and sys.stdout.isatty() and err.is_terminal
            and not err.is_dumb_terminal)


def execute_distributed(plan: Plan, spec, workers: int | None, out: Path | None, show_progress: bool,
                        checks: list, strict: bool, keep_credentials: bool = False, live: LiveRun | None = None,
                        full_screen: bool = False) -> tuple[Summary, Path, int]:
    from twload.cli.run_cluster import DistributedError  # imports dask: only here
    from twload.cli.run_cluster import execute as run_on_cluster

    try:
        return run_on_cluster(plan, spec, workers, out, show_progress, err, strict, checks, keep_credentials,
                              live, full_screen)
    except PlanError as exc:
        fail(str(exc), EXIT_USAGE)
    except DistributedError as exc:
        fail(str(exc), exc.exit_code)
    except RunError as exc:
        fail(str(exc))
    raise AssertionError("unreachable")


@app.command()
def run(
    url: Annotated[str | None, typer.Argument(help="Target, e.g. http://127.0.0.1:8080/ (with --targets: optional, the base of paths in the file)")] = None,
    connections: Annotated[int, typer.Option("-c", "--connections", help="Concurrent connections.", rich_help_panel="Load")] = 50,
    duration: Annotated[str | None, typer.Option("-d", "--duration", help="How long: 10s, 1m, 500ms. Default 10s unless -n is given.", rich_help_panel="Load")] = None,
    requests: Annotated[int | None, typer.Option("-n", "--requests", help="Stop after this many requests.", rich_help_panel="Load")] = None,
    workers: Annotated[int | None, typer.Option("-w", "--workers", help="Worker processes (default: CPU count).", rich_help_panel="Load")] = None,
    method: Annotated[str, typer.Option("-m", "--method", help="HTTP method.", rich_help_panel="Request")] = "GET",
    header: Annotated[list[str], typer.Option("-H", "--header", help="Extra header 'Name: value' (repeatable). Credentials (Authorization, Cookie, X-Api-Key, *-Token…) are sent as given but written to the run folder and report as <redacted, N bytes>.", rich_help_panel="Request")] = [],  # noqa: B006
    keep_credentials: Annotated[bool, typer.Option("--keep-credentials", help="Write credential headers' values verbatim into plan.json and the report (the run folder is still private: 0700, files 0600).", rich_help_panel="Request")] = False,
    body: Annotated[str | None, typer.Option("--body", help="Request body.", rich_help_panel="Request")] = None,
    body_file: Annotated[Path | None, typer.Option("--body-file", help="Request body from a file.", rich_help_panel="Request")] = None,
    timeout: Annotated[str, typer.Option("--timeout", help="Per-request timeout.", rich_help_panel="Request")] = "10s",
    connect_timeout: Annotated[str, typer.Option("--connect-timeout", help="Connect timeout.", rich_help_panel="Connections")] = "5s",
    close: Annotated[str, typer.Option("--close", help="keepalive | fin (client closes) | server (Connection: close, server closes) | rst (SO_LINGER 0).", rich_help_panel="Connections")] = "keepalive",
    rate: Annotated[float | None, typer.Option("--rate", help="Open loop: requests per second, sent on schedule whatever the responses do (latency then counts from the intended send time).", rich_help_panel="Load")] = None,
    stages: Annotated[str | None, typer.Option("--stages", help="Ramps, k6 style: '30s:100,1m:1000,30s:0' — of the rate with --rate/--open-loop, else of the connections. Sets the duration.", rich_help_panel="Load")] = None,
    open_loop: Annotated[bool, typer.Option("--open-loop", help="With --stages: the targets are rates.", rich_help_panel="Load")] = False,
    max_connections: Annotated[int, typer.Option("--max-connections", help="Open loop: most connections opened.", rich_help_panel="Connections")] = 10_000,
    insecure: Annotated[bool, typer.Option("-k", "--insecure", help="https: do not verify the certificate.", rich_help_panel="TLS")] = False,
    cacert: Annotated[Path | None, typer.Option("--cacert", help="https: trust this CA bundle (PEM).", rich_help_panel="TLS")] = None,
    tls_min: Annotated[str, typer.Option("--tls-min", help="https: the lowest TLS version offered: 1.2 | 1.3.", rich_help_panel="TLS")] = "1.2",
    ciphers: Annotated[str | None, typer.Option("--ciphers", help="https: TLS 1.2 ciphers, in OpenSSL's list syntax (ECDHE-RSA-AES128-GCM-SHA256:...).", rich_help_panel="TLS")] = None,
    ciphersuites: Annotated[str | None, typer.Option("--ciphersuites", help="https: TLS 1.3 cipher suites (TLS_AES_128_GCM_SHA256:...).", rich_help_panel="TLS")] = None,
    tls_resume: Annotated[bool, typer.Option("--tls-resume", help="https: resume TLS sessions (tickets) on each worker's next connections; default: a full handshake on every connection.", rich_help_panel="TLS")] = False,
    source: Annotated[str | None, typer.Option("--source", help="Local addresses to connect from, round-robin: 10.0.0.2,10.0.0.3 or 10.0.0.2-10.0.0.9 or 10.0.0.0/29. Each adds a port range.", rich_help_panel="Connections")] = None,
    engine: Annotated[str, typer.Option("--engine", help="auto | core: both the compiled core (C event loop; https:// on its epoll backend), the one engine. asyncio was retired.", rich_help_panel="Engine")] = "auto",
    io: Annotated[str, typer.Option("--io", help="The core's I/O: epoll (default) | auto (io_uring where the kernel allows it, else epoll; https:// and --http2 always epoll) | uring.", rich_help_panel="Engine")] = "epoll",
    http2: Annotated[bool, typer.Option("--http2", help="HTTP/2 on the compiled core: h2c with prior knowledge for http://, ALPN h2 for https://; -c connections x --streams. With --requests-per-connection N a connection ends after N streams as --close says: fin, our GOAWAY and FIN; server, read on to the server's GOAWAY and close (nginx: keepalive_requests N); rst, RST. Runs on the epoll backend (--io auto picks it; --io uring is refused, as for https://).", rich_help_panel="Request")] = False,
    streams: Annotated[int, typer.Option("--streams", help="HTTP/2: concurrent streams per connection (the server's SETTINGS_MAX_CONCURRENT_STREAMS may cap them).", rich_help_panel="Request")] = 10,
    requests_per_connection: Annotated[int | None, typer.Option("--requests-per-connection", help="Keep-alive for N requests, then apply --close (default: 1 for fin/server/rst, unlimited for keepalive).", rich_help_panel="Connections")] = None,
    targets: Annotated[str | None, typer.Option("--targets", help="Request file in vegeta's format (- reads standard input): many requests, round-robin; -H, --body are their defaults. Templates: {{seq}}, {{rand N}}, {{uuid}}, {{worker}}.", rich_help_panel="Request")] = None,
    targets_format: Annotated[str, typer.Option("--targets-format", help="http (METHOD URL, headers, @body file; blank line between) | json (one object a line, vegeta's).", rich_help_panel="Request")] = "http",
    targets_order: Annotated[str, typer.Option("--targets-order", help="round-robin | random (by the targets' weights).", rich_help_panel="Request")] = "round-robin",
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of --targets-order random and of {{rand N}}, {{uuid}} (default: drawn, and written to plan.json).", rich_help_panel="Request")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder (default ./twload-runs/<UTC time>/).", rich_help_panel="Output")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print summary.json on stdout instead of text.", rich_help_panel="Output")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No live progress.", rich_help_panel="Output")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Refuse to start when the pre-flight says ports will run out.", rich_help_panel="Pass/fail")] = False,
    max_errors: Annotated[int | None, typer.Option("--max-errors", help="Stop the run once more than N errors were counted; exit 1.", rich_help_panel="Pass/fail")] = None,
    threshold: Annotated[list[str], typer.Option("--threshold", help="Pass/fail gate, e.g. 'p99<50ms', 'errors<0.1%', 'rps>1000' (repeatable); exit 1 if one fails.", rich_help_panel="Pass/fail")] = [],  # noqa: B006
    no_tui: Annotated[bool, typer.Option("--no-tui", help="On a terminal, the one progress line instead of the full-screen view.", rich_help_panel="Output")] = False,
    metrics_listen: Annotated[str | None, typer.Option("--metrics-listen", help="Serve Prometheus / OpenMetrics metrics during the run on HOST:PORT (e.g. 127.0.0.1:9464; loopback only unless --metrics-allow-remote).", rich_help_panel="Output")] = None,
    metrics_allow_remote: Annotated[bool, typer.Option("--metrics-allow-remote", help="Allow --metrics-listen beyond loopback: the endpoint has no authentication and shows the target and its results.", rich_help_panel="Output")] = False,
    metrics_linger: Annotated[str, typer.Option("--metrics-linger", help="Keep the metrics endpoint answering this long after the run (a scraper's last look).", rich_help_panel="Output")] = "2s",
    report: Annotated[bool, typer.Option("--report", help="Also write report.html (plots, verdict; works offline) into the run folder.", rich_help_panel="Output")] = False,
    cluster: Annotated[str | None, typer.Option("--cluster", help="Spread the run over a Dask LocalCluster of N worker processes on 127.0.0.1: local:N (-w then counts engine processes per Dask worker; default: its threads).", rich_help_panel="Cluster")] = None,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="Spread the run over an existing Dask cluster: tls://HOST:PORT (with --tls-*), or tcp://HOST:PORT on loopback (beyond it only with --allow-insecure-scheduler).", rich_help_panel="Cluster")] = None,
    allow_insecure_scheduler: Annotated[bool, typer.Option("--allow-insecure-scheduler", help="Allow a plain tcp:// --scheduler beyond loopback: whoever can reach it can run code on its workers and on this host.", rich_help_panel="Cluster")] = False,
    tls_ca_file: Annotated[str | None, typer.Option("--tls-ca-file", help="Dask TLS: CA certificate (PEM) for a tls:// scheduler.", rich_help_panel="Cluster")] = None,
    tls_cert: Annotated[str | None, typer.Option("--tls-cert", help="Dask TLS: this client's certificate (PEM).", rich_help_panel="Cluster")] = None,
    tls_key: Annotated[str | None, typer.Option("--tls-key", help="Dask TLS: this client's private key (PEM).", rich_help_panel="Cluster")] = None,
) -> None:
    """Generate load against URL; results stream to a run folder."""
    if not core.available():  # the one engine: no fallback, and nothing to plan without it
        fail(core.NOT_BUILT)
    try:
        spec = parse_cluster(cluster, scheduler, tls_ca_file, tls_cert, tls_key, allow_insecure_scheduler)
        plan = build_plan(url, connections, duration, requests, workers, method, header, body,
                          body_file, timeout, connect_timeout, close, requests_per_connection, source,
                          rate, stages, open_loop, max_connections, insecure, cacert, max_errors, engine, io,
                          sources_here=spec is None, targets_file=targets, targets_format=targets_format,
                          targets_order=targets_order, seed=seed, http2=http2, streams=streams,
                          tls_min=tls_min, ciphers=ciphers, ciphersuites=ciphersuites, tls_resume=tls_resume)
        checks = [gates.parse(t) for t in threshold]
    except PlanError as exc:
        fail(str(exc), EXIT_USAGE)
    live = start_live(plan, metrics_listen, metrics_allow_remote, metrics_linger)
    show = not quiet and not as_json
    full_screen = full_screen_wanted(show, no_tui)
    try:
        if spec is not None:
            summary, folder, code = execute_distributed(plan, spec, workers, out, show, checks, strict,
                                                        keep_credentials, live, full_screen)
        else:
            summary, folder, code = execute(plan, out, show_progress=show, console=err, strict=strict,
                                            thresholds=checks, keep_credentials=keep_credentials, live=live,
                                            full_screen=full_screen)
        if report:
            from twload.cli.report import write_html

            err.print(f"report: {write_html(folder)}", highlight=False)
        if as_json:
            print(json.dumps(summary.to_dict(), indent=2), flush=True)
        else:
            from twload.report.text import render

            print(render(summary, terminal_width()), flush=True)
            err.print(f"results: {folder}", highlight=False)
    finally:
        live.close()  # after the summary is out: the endpoint lingers for a last scrape
    raise typer.Exit(code)
