"""Command line: parses arguments into plans and options, hands them on, shows results.

User mistakes and unreachable targets end with one line on stderr and a non-zero
exit code; a traceback is a bug (set TWLOAD_DEBUG=1 to see one).
"""

from __future__ import annotations

import json
import os
import ssl
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from twload.engine.schedule import parse_stages
from twload.plan import (
    CLOSE_STRATEGIES,
    Plan,
    PlanError,
    check_sources_local,
    default_workers,
    parse_duration,
    parse_header,
    parse_sources,
    parse_target,
    tls_context,
)

app = typer.Typer(
    help="Load generator and TCP diagnostics for short-connection load tests (TIME_WAIT, ephemeral ports).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False)

EXIT_USAGE = 2
EXIT_RUN = 1


def fail(message: str, code: int = EXIT_RUN) -> None:
    err.print(f"[bold red]twload:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


def build_plan(
    url: str, connections: int, duration: str | None, requests: int | None, workers: int | None,
    method: str, header: list[str], body: str | None, body_file: Path | None, timeout: str,
    connect_timeout: str, close: str, requests_per_connection: int | None = None, source: str | None = None,
    rate: float | None = None, stages: str | None = None, open_loop: bool = False, max_connections: int = 10_000,
    insecure: bool = False, cacert: Path | None = None,
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
    )
    if target.scheme == "https":
        tls_context(plan)  # a bad --cacert is a usage error here, not a crash in a worker
    return plan


@app.command()
def run(
    url: Annotated[str, typer.Argument(help="Target, e.g. http://127.0.0.1:8080/")],
    connections: Annotated[int, typer.Option("-c", "--connections", help="Concurrent connections.")] = 50,
    duration: Annotated[str | None, typer.Option("-d", "--duration", help="How long: 10s, 1m, 500ms. Default 10s unless -n is given.")] = None,
    requests: Annotated[int | None, typer.Option("-n", "--requests", help="Stop after this many requests.")] = None,
    workers: Annotated[int | None, typer.Option("-w", "--workers", help="Worker processes (default: CPU count).")] = None,
    method: Annotated[str, typer.Option("-m", "--method", help="HTTP method.")] = "GET",
    header: Annotated[list[str], typer.Option("-H", "--header", help="Extra header 'Name: value' (repeatable).")] = [],  # noqa: B006
    body: Annotated[str | None, typer.Option("--body", help="Request body.")] = None,
    body_file: Annotated[Path | None, typer.Option("--body-file", help="Request body from a file.")] = None,
    timeout: Annotated[str, typer.Option("--timeout", help="Per-request timeout.")] = "10s",
    connect_timeout: Annotated[str, typer.Option("--connect-timeout", help="Connect timeout.")] = "5s",
    close: Annotated[str, typer.Option("--close", help="keepalive | fin (client closes) | server (Connection: close, server closes) | rst (SO_LINGER 0).")] = "keepalive",
    rate: Annotated[float | None, typer.Option("--rate", help="Open loop: requests per second, sent on schedule whatever the responses do (latency then counts from the intended send time).")] = None,
    stages: Annotated[str | None, typer.Option("--stages", help="Ramps, k6 style: '30s:100,1m:1000,30s:0' — of the rate with --rate/--open-loop, else of the connections. Sets the duration.")] = None,
    open_loop: Annotated[bool, typer.Option("--open-loop", help="With --stages: the targets are rates.")] = False,
    max_connections: Annotated[int, typer.Option("--max-connections", help="Open loop: most connections opened.")] = 10_000,
    insecure: Annotated[bool, typer.Option("-k", "--insecure", help="https: do not verify the certificate.")] = False,
    cacert: Annotated[Path | None, typer.Option("--cacert", help="https: trust this CA bundle (PEM).")] = None,
    source: Annotated[str | None, typer.Option("--source", help="Local addresses to connect from, round-robin: 10.0.0.2,10.0.0.3 or 10.0.0.2-10.0.0.9 or 10.0.0.0/29. Each adds a port range.")] = None,
    requests_per_connection: Annotated[int | None, typer.Option("--requests-per-connection", help="Keep-alive for N requests, then apply --close (default: 1 for fin/server/rst, unlimited for keepalive).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder (default ./twload-runs/<UTC time>/).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print summary.json on stdout instead of text.")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No live progress.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Refuse to start when the pre-flight says ports will run out.")] = False,
    threshold: Annotated[list[str], typer.Option("--threshold", help="Pass/fail gate, e.g. 'p99<50ms', 'errors<0.1%', 'rps>1000' (repeatable); exit 1 if one fails.")] = [],  # noqa: B006
) -> None:
    """Generate load against URL; results stream to a run folder."""
    from twload import thresholds as gates
    from twload.engine.runner import execute

    try:
        plan = build_plan(url, connections, duration, requests, workers, method, header, body,
                          body_file, timeout, connect_timeout, close, requests_per_connection, source,
                          rate, stages, open_loop, max_connections, insecure, cacert)
        checks = [gates.parse(t) for t in threshold]
    except PlanError as exc:
        fail(str(exc), EXIT_USAGE)
    summary, folder, code = execute(plan, out, show_progress=not quiet and not as_json, console=err, strict=strict,
                                    thresholds=checks)
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        from twload.report.text import render

        print(render(summary))
        err.print(f"results: {folder}", highlight=False)
    raise typer.Exit(code)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one and prints it.")] = 8080,
    workers: Annotated[int, typer.Option("-w", "--workers", help="Processes sharing the port (SO_REUSEPORT).")] = 1,
    body_size: Annotated[int, typer.Option("--body-size", help="Response body bytes.")] = 12,
    delay: Annotated[str | None, typer.Option("--delay", help="Delay before each response, e.g. 5ms.")] = None,
    close_after: Annotated[int, typer.Option("--close-after", help="Close after N requests on a connection (0: never).")] = 0,
    stall: Annotated[str | None, typer.Option("--stall", help="Once, stop answering for this long (e.g. 1s), like a GC pause.")] = None,
    stall_after: Annotated[int, typer.Option("--stall-after", help="With --stall: after this many requests.")] = 0,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="Serve https with this certificate chain (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="The certificate's private key (PEM).")] = None,
) -> None:
    """An embedded HTTP/1.1 target (uvloop + httptools). Stats at GET /__twload/stats."""
    from twload.serve import ServeOptions
    from twload.serve import serve as serve_forever

    try:
        if workers < 1 or body_size < 0 or close_after < 0 or not 0 <= port <= 65535:
            raise PlanError("--workers >= 1, --body-size >= 0, --close-after >= 0, 0 <= --port <= 65535")
        if (tls_cert is None) != (tls_key is None):
            raise PlanError("give both --tls-cert and --tls-key")
        options = ServeOptions(host, port, workers, body_size, parse_duration(delay) if delay else 0.0, close_after,
                               parse_duration(stall) if stall else 0.0, stall_after,
                               str(tls_cert) if tls_cert else None, str(tls_key) if tls_key else None)
    except PlanError as exc:
        fail(str(exc), EXIT_USAGE)
    try:
        serve_forever(options, announce=lambda line: print(line, flush=True))
    except ssl.SSLError as exc:
        fail(f"cannot use --tls-cert/--tls-key: {exc.reason or exc}")
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


@app.command()
def demo(
    duration: Annotated[str, typer.Option("-d", "--duration", help="Length of each strategy's run.")] = "5s",
    connections: Annotated[int, typer.Option("-c", "--connections", help="Connections per run.")] = 20,
    workers: Annotated[int, typer.Option("-w", "--workers", help="Load worker processes per run.")] = 1,
) -> None:
    """Start `twload serve`, run each close strategy against it, compare who keeps TIME_WAIT."""
    from twload.demo import run_demo

    try:
        seconds = parse_duration(duration)
    except PlanError as exc:
        fail(str(exc), EXIT_USAGE)
    code = run_demo(seconds, connections, workers, console=err)
    raise typer.Exit(code)


@app.command()
def doctor(
    url: Annotated[str | None, typer.Argument(help="Target to probe (optional): timestamps, who closes first, keep-alive.")] = None,
    close: Annotated[str, typer.Option("--close", help="The close strategy you plan to use.")] = "fin",
    rate: Annotated[float | None, typer.Option("--rate", help="Planned new connections per second.")] = None,
    connections: Annotated[int, typer.Option("-c", "--connections", help="Planned concurrent connections.")] = 50,
    sources: Annotated[int, typer.Option("--sources", help="Source addresses you plan to use.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    fix: Annotated[bool, typer.Option("--fix", help="Apply the suggested sysctl changes (asks first).")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="With --fix: do not ask.")] = False,
    restore: Annotated[bool, typer.Option("--restore", help="Put back the sysctls an earlier --fix changed.")] = False,
) -> None:
    """Say what will fail in a short-connection load test, why, and what to change."""
    from twload.doctor_cli import run_doctor

    try:
        if close not in CLOSE_STRATEGIES:
            raise PlanError(f"--close must be one of {', '.join(CLOSE_STRATEGIES)}, not {close!r}")
        if sources < 1 or connections < 1 or (rate is not None and rate <= 0):
            raise PlanError("--sources and --connections must be at least 1, --rate positive")
        target = parse_target(url) if url else None
    except PlanError as exc:
        fail(str(exc), EXIT_USAGE)
    code = run_doctor(target, url, close, rate, connections, sources, as_json, fix, yes, restore, err)
    raise typer.Exit(code)


@app.command()
def watch(
    dst: Annotated[str | None, typer.Option("--dst", help="Only this destination, HOST:PORT.")] = None,
    interval: Annotated[str, typer.Option("--interval", help="Time between readings.")] = "1s",
    count: Annotated[int | None, typer.Option("--count", help="Stop after N readings.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per reading.")] = False,
) -> None:
    """Live TCP states per destination, TIME_WAIT first, with the share of the port budget in use."""
    from twload.watch import parse_dst
    from twload.watch import watch as watch_loop

    try:
        seconds = parse_duration(interval)
        parse_dst(dst)
        if count is not None and count < 1:
            raise PlanError("--count must be at least 1")
    except (PlanError, ValueError):
        fail("bad --dst (HOST:PORT), --interval or --count", EXIT_USAGE)
    watch_loop(dst, seconds, count, as_json, Console(highlight=False))


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (twload-runs/<time>/).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print summary.json instead of text.")] = False,
) -> None:
    """Show a run folder's summary; rebuilds it from the streamed samples if the run never finished."""
    from twload.report.rebuild import rebuild_summary
    from twload.report.text import render
    from twload.results import SAMPLES, SUMMARY, read_summary

    if (run_dir / SUMMARY).exists():
        summary = read_summary(run_dir)
    elif (run_dir / SAMPLES).exists():
        summary = rebuild_summary(run_dir)
        err.print("no summary.json (the run did not finish): rebuilt from samples.jsonl and latency.hdr")
    else:
        fail(f"{run_dir} is not a twload run folder (no summary.json, no samples.jsonl)", EXIT_USAGE)
    print(json.dumps(summary, indent=2) if as_json else render(summary))


simulate_app = typer.Typer(help="A deterministic model of TIME_WAIT, PAWS, tw_reuse and tw_recycle across kernels and NAT.",
                           no_args_is_help=True)
app.add_typer(simulate_app, name="simulate")


@simulate_app.command("list")
def simulate_list() -> None:
    """The named scenarios, one line each."""
    from twload.sim.scenarios import COMMON, SCENARIOS

    width = max(len(name) for name in SCENARIOS)
    for scenario in SCENARIOS.values():
        print(f"{scenario.name:<{width}}  {scenario.summary}")
    print(f"\ncommon --set keys: {', '.join(COMMON)}; kernels: 2.6.32 4.4 4.10 4.11 4.12 6.x")


@simulate_app.command("run")
def simulate_run(
    name: Annotated[str, typer.Argument(help="Scenario name (twload simulate list).")],
    kernel: Annotated[str | None, typer.Option("--kernel", help="2.6.32 | 4.4 | 4.10 | 4.11 | 4.12 | 6.x")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="key=value (repeatable), e.g. --set ports=10 --set rate=1")] = [],  # noqa: B006
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same result.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    trace: Annotated[bool, typer.Option("--trace", help="Packet-level timeline (first 400 lines).")] = False,
) -> None:
    """Run one scenario and explain the rules that fired."""
    from twload.sim.run import run_scenario
    from twload.sim.scenarios import SCENARIOS

    try:
        if name not in SCENARIOS:
            raise PlanError(f"unknown scenario {name!r}: see `twload simulate list`")
        overrides = {}
        for item in set_:
            key, sep, value = item.partition("=")
            if not sep:
                raise PlanError(f"bad --set {item!r}: use key=value")
            overrides[key.strip()] = value.strip()
        result = run_scenario(name, overrides, kernel, seed, trace)
    except (PlanError, ValueError) as exc:
        fail(str(exc), EXIT_USAGE)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    from twload.report.sim_text import render_simulation

    print(render_simulation(result))


lab_app = typer.Typer(help="Prove each TIME_WAIT claim on the real kernel, in network namespaces (root).",
                      no_args_is_help=True)
app.add_typer(lab_app, name="lab")


@lab_app.command("list")
def lab_list() -> None:
    """The lab scenarios, one line each."""
    from twload.lab.scenarios import SCENARIOS

    width = max(len(name) for name in SCENARIOS)
    for s in SCENARIOS.values():
        print(f"{s.name:<{width}}  ~{s.seconds:>2}s  {s.summary}")


@lab_app.command("run")
def lab_run(
    name: Annotated[str | None, typer.Argument(help="Scenario name (twload lab list).")] = None,
    run_all: Annotated[bool, typer.Option("--all", help="Run every scenario.")] = False,
    compare_sim: Annotated[bool, typer.Option("--compare-sim", help="Show the simulator's prediction beside each measurement.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
) -> None:
    """Build the scenario's namespaces, measure, print claim / expected / measured / verdict."""
    from twload.lab_cli import run_lab

    code = run_lab(name, run_all, compare_sim, as_json, err)
    raise typer.Exit(code)


@lab_app.command("clean")
def lab_clean() -> None:
    """Remove `twl-` namespaces left behind by an earlier crash."""
    from twload.lab import topology

    try:
        topology.require_root()
        removed = topology.clean()
    except topology.LabError as exc:
        fail(str(exc))
    print("removed: " + (", ".join(removed) if removed else "nothing"))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("twload: interrupted")
        sys.exit(130)
    except Exception as exc:  # the promise: no tracebacks for users
        if os.environ.get("TWLOAD_DEBUG"):
            raise
        err.print(f"[bold red]twload: internal error:[/] {type(exc).__name__}: {exc} (TWLOAD_DEBUG=1 shows more)")
        sys.exit(EXIT_RUN)


__all__ = ["app", "main", "CLOSE_STRATEGIES"]
