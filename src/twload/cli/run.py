"""`twload run`: the plan from the arguments, then pre-flight, port budget, run folder, supervisor with live
progress, summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from twload import thresholds as gates
from twload.cli import EXIT_USAGE, app, err, fail, terminal_width
from twload.cli.progress import live_progress
from twload.distributed.spec import parse_cluster
from twload.engine import core
from twload.engine import preflight as pf
from twload.engine.limits import file_limit_problem
from twload.engine.sources import check_sources_local
from twload.engine.supervisor import RunError, exit_code_for, run_to_folder
from twload.engine.tls import tls_context
from twload.kernel.resolve import parse_target
from twload.kernel.sysctl import gather, sysctl_values
from twload.plan import (
    Plan,
    PlanError,
    default_workers,
    parse_duration,
    parse_header,
    parse_sources,
    parse_stages,
)
from twload.results import RunFolderError, check_fresh, claim_run_dir, plan_record

EXIT_STRICT = 2
EXIT_THRESHOLD = 1  # a failed --threshold: the run itself went fine, the target did not


def execute(plan: Plan, out: Path | None, show_progress: bool, console: Console,
            strict: bool = False, thresholds: list | None = None,
            keep_credentials: bool = False) -> tuple[dict, Path, int]:
    try:
        if out is not None:
            check_fresh(out)  # before the probe: a refused folder costs the target nothing
        info = pf.probe_target(plan)
    except (RunError, RunFolderError) as exc:
        console.print(f"[bold red]twload:[/] {exc}", soft_wrap=True)
        raise typer.Exit(1) from None
    kernel = gather()
    # before the first connection (the probe's own closed with RST): what earlier connections left
    start = pf.read_start(plan)
    in_use = start.ports_in_use  # the budget counts them as ports not free yet
    budget = pf.plan_budget(plan, kernel, info.timestamps, in_use)
    if pf.will_run_out(plan, budget):
        console.print(f"[yellow]{pf.warning(plan, budget, kernel, info.timestamps, in_use)}[/]", soft_wrap=True)
        if strict:
            console.print("[bold red]twload:[/] refusing to start (--strict)")
            raise typer.Exit(EXIT_STRICT)
    record = plan_record(plan, sysctl_values(),
                         {"target_timestamps": info.timestamps, "budget": pf.budget_block(budget),
                          "time_wait_at_start": start.time_wait, "ports_in_use_at_start": start.ports_in_use},
                         keep_credentials)

    def finish(summary: dict) -> None:
        summary["target_timestamps"] = info.timestamps
        summary["budget"] = pf.budget_block(budget)
        if "EADDRNOTAVAIL" in summary["errors"]:
            summary["wall"] = pf.wall_line(plan, budget, summary)
            summary["advice"] = pf.advice(plan, kernel, info.timestamps, in_use, start.time_wait)
        if thresholds:
            summary["thresholds"] = gates.evaluate(thresholds, summary)

    probe = pf.time_wait_probe(plan, start)
    try:
        path = out or claim_run_dir()  # claimed now: a probe that fails above leaves no empty folder
        with live_progress(console, show_progress, budget.ports, probe) as on_progress:
            summary = run_to_folder(plan, path, on_progress, probe, finish, record)
    except (RunError, RunFolderError) as exc:
        console.print(f"[bold red]twload:[/] {exc}", soft_wrap=True)
        raise typer.Exit(1) from None
    code = exit_code_for(summary)
    if code == 0 and any(not t["passed"] for t in summary.get("thresholds", [])):
        code = EXIT_THRESHOLD
    return summary, Path(path), code


def build_plan(
    url: str, connections: int, duration: str | None, requests: int | None, workers: int | None,
    method: str, header: list[str], body: str | None, body_file: Path | None, timeout: str,
    connect_timeout: str, close: str, requests_per_connection: int | None = None, source: str | None = None,
    rate: float | None = None, stages: str | None = None, open_loop: bool = False, max_connections: int = 10_000,
    insecure: bool = False, cacert: Path | None = None, max_errors: int | None = None, engine: str = "auto",
    io: str = "epoll", sources_here: bool = True, tls_min: str = "1.2", ciphers: str | None = None,
    ciphersuites: str | None = None, tls_resume: bool = False,
) -> Plan:
    if body is not None and body_file is not None:
        raise PlanError("give --body or --body-file, not both")
    try:
        payload = body_file.read_bytes() if body_file else (body or "").encode()
    except OSError as exc:
        raise PlanError(f"cannot read --body-file {body_file}: {exc.strerror}") from None
    target = parse_target(url)
    sources = parse_sources(source) if source else ()
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
        io=io,
        tls_min=tls_min,
        ciphers=ciphers,
        ciphersuites=ciphersuites,
        tls_resume=tls_resume,
    )
    problem = file_limit_problem(plan)
    if problem:
        raise PlanError(problem)
    if plan.engine_choice == "core" and plan.io == "uring" and not core.uring_available():
        raise PlanError("--io uring: io_uring is not usable here (not built with liburing, "
                        "or blocked by sysctl kernel.io_uring_disabled or seccomp); use --io epoll or auto")
    if plan.engine == "core" and not core.available():
        raise PlanError("--engine core: the compiled core is not built (pip install -e . builds it)")
    if target.scheme == "https":
        if plan.tls_min != "1.2" or plan.ciphers is not None or plan.ciphersuites is not None or plan.tls_resume:
            if not core.available():  # a worker would fall back to asyncio, which has none of them
                raise PlanError("--tls-min, --ciphers, --ciphersuites and --tls-resume need the compiled core, "
                                "which is not built (pip install -e . builds it)")
            problem = core.tls_options_problem(plan.tls_min, plan.ciphers, plan.ciphersuites)
            if problem:  # the workers' OpenSSL judges the names, before any request
                raise PlanError(problem)
        tls_context(plan)  # a bad --cacert is a usage error here, not a crash in a worker
    return plan


def execute_distributed(plan: Plan, spec, workers: int | None, out: Path | None, show_progress: bool,
                        checks: list, strict: bool, keep_credentials: bool = False) -> tuple[dict, Path, int]:
    from twload.cli.run_cluster import DistributedError  # imports dask: only here
    from twload.cli.run_cluster import execute as run_on_cluster

    try:
        return run_on_cluster(plan, spec, workers, out, show_progress, err, strict, checks, keep_credentials)
    except PlanError as exc:
        fail(str(exc), EXIT_USAGE)
    except DistributedError as exc:
        fail(str(exc), exc.exit_code)
    except RunError as exc:
        fail(str(exc))
    raise AssertionError("unreachable")


@app.command()
def run(
    url: Annotated[str, typer.Argument(help="Target, e.g. http://127.0.0.1:8080/")],
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
    engine: Annotated[str, typer.Option("--engine", help="auto (the compiled core when built, else asyncio) | core (C event loop; https:// on its epoll backend) | asyncio (uvloop).", rich_help_panel="Engine")] = "auto",
    io: Annotated[str, typer.Option("--io", help="The core's I/O: epoll (default) | auto (io_uring where the kernel allows it, else epoll) | uring.", rich_help_panel="Engine")] = "epoll",
    requests_per_connection: Annotated[int | None, typer.Option("--requests-per-connection", help="Keep-alive for N requests, then apply --close (default: 1 for fin/server/rst, unlimited for keepalive).", rich_help_panel="Connections")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder (default ./twload-runs/<UTC time>/).", rich_help_panel="Output")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print summary.json on stdout instead of text.", rich_help_panel="Output")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No live progress.", rich_help_panel="Output")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Refuse to start when the pre-flight says ports will run out.", rich_help_panel="Pass/fail")] = False,
    max_errors: Annotated[int | None, typer.Option("--max-errors", help="Stop the run once more than N errors were counted; exit 1.", rich_help_panel="Pass/fail")] = None,
    threshold: Annotated[list[str], typer.Option("--threshold", help="Pass/fail gate, e.g. 'p99<50ms', 'errors<0.1%', 'rps>1000' (repeatable); exit 1 if one fails.", rich_help_panel="Pass/fail")] = [],  # noqa: B006
    report: Annotated[bool, typer.Option("--report", help="Also write report.html (plots, verdict; works offline) into the run folder.", rich_help_panel="Output")] = False,
    cluster: Annotated[str | None, typer.Option("--cluster", help="Spread the run over a Dask LocalCluster of N worker processes on 127.0.0.1: local:N (-w then counts engine processes per Dask worker; default: its threads).", rich_help_panel="Cluster")] = None,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="Spread the run over an existing Dask cluster: tls://HOST:PORT (with --tls-*), or tcp://HOST:PORT on loopback (beyond it only with --allow-insecure-scheduler).", rich_help_panel="Cluster")] = None,
    allow_insecure_scheduler: Annotated[bool, typer.Option("--allow-insecure-scheduler", help="Allow a plain tcp:// --scheduler beyond loopback: whoever can reach it can run code on its workers and on this host.", rich_help_panel="Cluster")] = False,
    tls_ca_file: Annotated[str | None, typer.Option("--tls-ca-file", help="Dask TLS: CA certificate (PEM) for a tls:// scheduler.", rich_help_panel="Cluster")] = None,
    tls_cert: Annotated[str | None, typer.Option("--tls-cert", help="Dask TLS: this client's certificate (PEM).", rich_help_panel="Cluster")] = None,
    tls_key: Annotated[str | None, typer.Option("--tls-key", help="Dask TLS: this client's private key (PEM).", rich_help_panel="Cluster")] = None,
) -> None:
    """Generate load against URL; results stream to a run folder."""
    try:
        spec = parse_cluster(cluster, scheduler, tls_ca_file, tls_cert, tls_key, allow_insecure_scheduler)
        plan = build_plan(url, connections, duration, requests, workers, method, header, body,
                          body_file, timeout, connect_timeout, close, requests_per_connection, source,
                          rate, stages, open_loop, max_connections, insecure, cacert, max_errors, engine, io,
                          sources_here=spec is None, tls_min=tls_min, ciphers=ciphers, ciphersuites=ciphersuites,
                          tls_resume=tls_resume)
        checks = [gates.parse(t) for t in threshold]
    except PlanError as exc:
        fail(str(exc), EXIT_USAGE)
    if spec is not None:
        summary, folder, code = execute_distributed(plan, spec, workers, out, not quiet and not as_json, checks, strict,
                                                    keep_credentials)
    else:
        summary, folder, code = execute(plan, out, show_progress=not quiet and not as_json, console=err,
                                        strict=strict, thresholds=checks, keep_credentials=keep_credentials)
    if report:
        from twload.cli.report import write_html

        err.print(f"report: {write_html(folder)}", highlight=False)
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        from twload.report.text import render

        print(render(summary, terminal_width()))
        err.print(f"results: {folder}", highlight=False)
    raise typer.Exit(code)
