"""twload against wrk (and ab, hey when installed), side by side, against one nginx.

Prints req/s, generator CPU time per request (user + sys) and the ratio to wrk in the same
run, for twload's compiled core (epoll, and io_uring where the kernel allows it; its one engine
since issue #30 retired the asyncio one), and py-floor, the least a uvloop + httptools client can do
(benchmarks/floor_client.py), for keep-alive and short connections (wrk: `Connection: close`;
twload: --close server; plus the core with --close rst, which wrk cannot do: compared with the
core's own --close server, target rst >= server), with 1 process (generator and nginx pinned to different cores) and
with 2. twload's CPU is that of the run less that of a one-request run (interpreter start-up,
imports, spawning workers), measured apart; its supervisor is included. Then syscalls per short
connection (`strace -c -f` on separate short runs: strace slows the tools, so only its counts
are used) and the generator's memory per open keep-alive connection with 10,000 connections.

https:// (issue #30): nginx with TLS (RSA 2048, 1 worker pinned to core 1, session cache off), the
generator pinned to core 0, 50 connections: wrk against the core (-k: wrk does not verify either) for
keep-alive, short connections with full handshakes (nginx's tickets off) and short connections resumed
(tickets on: wrk resumes by itself, the core with --tls-resume); and the RSS per open TLS keep-alive
connection, twload's worker beside wrk (both with N connections less 1, per connection established).

Each ratio is given twice: of the median runs (each tool's run with the median req/s), and
paired by round (the median, and the range, of each run's ratio to wrk's run of the same round):
on this shared host a minute can be 20 % slower than the next, which moves the median runs of
two tools apart more than the paired ratios. A round runs every tool once, in an order that turns by
one each round (rounds.py).

Not a test: numbers on a noisy 2-core machine vary; compare the ratios in one run.
    python benchmarks/vs_wrk.py [--duration 5] [--repeat 3] [--only keepalive|short] [--procs 1|2|both]
        [--no-memory] [--no-syscalls] [--scheme http|https|both] [--memory-connections 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rounds import rotated

from twload.lab.nginx import LocalNginx, nginx_config

TWLOAD = [sys.executable, "-m", "twload"]
TWLOAD_ENGINES = {"core-epoll": ("core", "epoll"), "core-uring": ("core", "uring")}


def uring_available() -> bool:
    from twload.engine import core

    return core.uring_available()


def rsa_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed RSA 2048 certificate for 127.0.0.1 (the clients run with -k, as wrk, which verifies nothing)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


class Nginx(LocalNginx):
    def __init__(self, workers: int, cpus: str | None, tls: bool = False, tickets: bool = False) -> None:
        """tls: session cache off; tickets: the only way left to resume, on or off."""
        super().__init__("twload-bench-nginx-")
        listen = f"listen 127.0.0.1:{self.port} reuseport backlog=8192"
        if tls:
            cert, key = rsa_certificate(self.dir)
            listen += (f" ssl; ssl_certificate {cert}; ssl_certificate_key {key}; ssl_session_cache off;"
                       f" ssl_session_tickets {'on' if tickets else 'off'}")
        self.start(nginx_config(
            str(self.dir), workers=workers, connections=30000, main="worker_rlimit_nofile 40000;",
            http="access_log off; keepalive_requests 1000000;", error_level="crit",
            server=f"{listen}; "
                   'location / { return 200 "hello from nginx\\n"; }'), scheme="https" if tls else "http", cpus=cpus)


def timed(cmd: list[str]) -> tuple[str, float]:
    """Run to the end; return stdout and the CPU seconds (user + sys) of it and its children."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read()
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return out, usage.ru_utime + usage.ru_stime


def wrk(url, conns, threads, secs, close, pin):
    cmd = [*pin, "wrk", f"-t{threads}", f"-c{conns}", f"-d{secs}s", url]
    if close:
        cmd[len(pin) + 1:len(pin) + 1] = ["-H", "Connection: close"]
    out, cpu = timed(cmd)
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    done = re.search(r"(\d+) requests in", out)
    return float(match.group(1)) if match else 0.0, int(done.group(1)) if done else 0, cpu


STARTUP_CPU: dict[tuple, float] = {}


def startup_cpu(url, workers, pin, engine, extra=()) -> float:
    """CPU of a twload run that makes one request: interpreter start-up, imports, spawning the
    workers, writing the run folder. Subtracted, so CPU per request is the load's own cost."""
    key = (url, workers, engine, tuple(extra))
    if key not in STARTUP_CPU:
        kind, io = TWLOAD_ENGINES[engine]
        cpus = [timed([*pin, *TWLOAD, "run", url, "-n", "1", "-c", "1", "-w", str(workers), "--engine", kind,
                       "--io", io, *extra, "--json", "--out", tempfile.mkdtemp(prefix="twb-")])[1] for _ in range(3)]
        STARTUP_CPU[key] = min(cpus)
    return STARTUP_CPU[key]


def twload(url, conns, workers, secs, close, pin, engine="core-epoll", strategy=None, extra=()):
    """strategy: a --close other than the case's (server when close, else keepalive), e.g. rst;
    extra: more options (https: -k, --tls-resume), given to the start-up run too."""
    kind, io = TWLOAD_ENGINES[engine]
    strategy = strategy or ("server" if close else "keepalive")
    cmd = [*pin, *TWLOAD, "run", url, "-c", str(conns), "-w", str(workers), "-d", f"{secs}s",
           "--engine", kind, "--io", io, "--close", strategy, *extra, "--json",
           "--out", tempfile.mkdtemp(prefix="twb-")]
    out, cpu = timed(cmd)
    summary = json.loads(out)
    if "tls_resumed" in summary and "--tls-resume" in extra:
        RESUMED.append((summary["tls_resumed"], summary["tls_handshakes"]))
    return summary["rps"], summary["requests"], max(0.0, cpu - startup_cpu(url, workers, pin, engine, extra))


RESUMED: list[tuple[int, int]] = []  # --tls-resume runs: (resumed, handshakes), to show resumption happened


def floor(url, conns, secs, close, pin):
    """The minimal uvloop + httptools client (benchmarks/floor_client.py): Python's floor."""
    here = Path(__file__).with_name("floor_client.py")
    cmd = [*pin, sys.executable, str(here), url, "--connections", str(conns), "--duration", str(secs)]
    out, cpu = timed(cmd + (["--close"] if close else []))
    rps = float(out.strip() or 0)
    return rps, int(rps * secs), cpu


def ab(url, conns, secs, close, pin):
    if not shutil.which("ab"):
        return None
    cmd = [*pin, "ab", "-q", "-t", str(secs), "-n", "10000000", "-c", str(conns), *([] if close else ["-k"]), url]
    out, cpu = timed(cmd)
    match = re.search(r"Requests per second:\s+([\d.]+)", out)
    done = re.search(r"Complete requests:\s+(\d+)", out)
    return float(match.group(1)) if match else 0.0, int(done.group(1)) if done else 0, cpu


def hey(url, conns, secs, close, pin):
    if not shutil.which("hey"):
        return None
    cmd = [*pin, "hey", "-z", f"{secs}s", "-c", str(conns), *(["-disable-keepalive"] if close else []), url]
    out, cpu = timed(cmd)
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    done = sum(int(n) for n in re.findall(r"\[\d+\]\s+(\d+) responses", out))
    return float(match.group(1)) if match else 0.0, done, cpu


def row(name, result):
    if result is None:
        return f"  {name:<15} (not run)"
    rps, done, cpu = result
    per = f"{cpu / done * 1e6:8.1f}" if done else "     n/a"
    return f"  {name:<15} {rps:>11.0f} req/s   {per} us CPU/req"


def median_run(runs):
    """The run with the median req/s (runs of one tool, alternated with the others')."""
    runs = [r for r in runs if r is not None]
    return sorted(runs, key=lambda r: r[0])[len(runs) // 2] if runs else None


def per_request(result) -> float:
    rps, done, cpu = result
    return cpu / max(done, 1)


def paired(runs, base_runs) -> str:
    """The ratios of each run to the base tool's run of the same round (the two ran seconds
    apart, so a slow minute of this shared host hits both): their median and range. The
    median runs' ratios compare runs up to a round apart."""
    pairs = [(t, b) for t, b in zip(runs, base_runs, strict=True) if t and b and t[0] and b[0] and t[1] and b[1]]
    if not pairs:
        return ""
    rps = sorted(t[0] / b[0] for t, b in pairs)
    cpu = sorted(per_request(t) / per_request(b) for t, b in pairs)
    mid = len(pairs) // 2
    return (f"paired by round: {rps[mid]:.2f}x req/s ({rps[0]:.2f}-{rps[-1]:.2f}),"
            f" {cpu[mid]:.2f}x CPU per request ({cpu[0]:.2f}-{cpu[-1]:.2f})")


def compare(duration: int, only: str | None, repeat: int, procs_list: tuple[int, ...] = (1, 2)) -> None:
    cases = [("keepalive", False), ("short", True)]
    for procs in procs_list:
        nginx = Nginx(workers=procs, cpus="1" if procs == 1 else None)
        pin = ["taskset", "-c", "0"] if procs == 1 else []
        one = procs == 1
        try:
            for label, close in cases:
                if only and only != label:
                    continue
                conns = 50
                print(f"\n{label}, {procs} process(es), {conns} connections, {duration}s, median of {repeat}"
                      + (" (generator on core 0, nginx on core 1)" if one else ""))
                url = nginx.url
                uring = uring_available()
                tools = {  # name -> (function, its arguments); None: not run in this case
                    "wrk": (wrk, (url, conns, procs, duration, close, pin)),
                    "core-epoll": (twload, (url, conns, procs, duration, close, pin, "core-epoll")),
                    "core-uring": (twload, (url, conns, procs, duration, close, pin, "core-uring")) if uring else None,
                    # --close rst (SO_LINGER {1,0}): short case only; wrk has no such mode
                    "core-epoll-rst": (twload, (url, conns, procs, duration, close, pin, "core-epoll", "rst"))
                    if close else None,
                    "core-uring-rst": (twload, (url, conns, procs, duration, close, pin, "core-uring", "rst"))
                    if close and uring else None,
                    "py-floor": (floor, (url, conns, duration, close, pin)) if one else None,
                    "ab": (ab, (url, conns, duration, close, pin)) if one else None,
                    "hey": (hey, (url, conns, duration, close, pin)),
                }
                runs = {name: [] for name in tools}
                for r in range(repeat):
                    for name in rotated(list(tools), r):
                        tool = tools[name]
                        runs[name].append(tool[0](*tool[1]) if tool else None)
                results = {name: median_run(r) for name, r in runs.items()}
                for name, result in results.items():
                    print(row(name, result))
                w = results["wrk"]
                for name in ("core-epoll", "core-uring", "py-floor"):
                    t = results[name]
                    if w and w[0] and t:
                        print(f"  ratio {name} / wrk: {t[0] / w[0]:.2f}x req/s,"
                              f" {per_request(t) / per_request(w):.2f}x CPU per request;"
                              f" {paired(runs[name], runs['wrk'])}")
                for name in ("core-epoll", "core-uring"):
                    server, rst = results[name], results.get(f"{name}-rst")
                    if server and rst and server[0]:
                        print(f"  ratio {name} rst / server: {rst[0] / server[0]:.2f}x req/s,"
                              f" {per_request(rst) / per_request(server):.2f}x CPU per request;"
                              f" {paired(runs[f'{name}-rst'], runs[name])}")
        finally:
            nginx.stop()


def compare_https(duration: int, repeat: int) -> None:
    """https, 1 process: nginx (TLS, RSA 2048, 1 worker) on core 1, the generator on core 0.

    wrk resumes: it reconnects with SSL_clear on the connection's own SSL, which keeps its session
    (SSL_clear(3)), so against a server with tickets its short connections are resumed handshakes
    (measured here: 2,319 req/s with nginx's tickets on, 532 off). Hence two short cases: full
    handshakes (tickets off: neither can resume), wrk against the core's default; and resumed (tickets
    on), wrk against the core with --tls-resume."""
    insecure = ("-k",)
    cases = [  # label, Connection: close, nginx's tickets, twload's options
        ("keepalive", False, False, insecure),
        ("short, full handshakes (tickets off)", True, False, insecure),
        ("short, resumed (tickets on; twload --tls-resume)", True, True, (*insecure, "--tls-resume")),
    ]
    pin = ["taskset", "-c", "0"]
    conns = 50
    for label, close, tickets, extra in cases:
        nginx = Nginx(workers=1, cpus="1", tls=True, tickets=tickets)
        try:
            print(f"\nhttps {label}, 1 process, {conns} connections, {duration}s, median of {repeat}"
                  " (generator on core 0, nginx on core 1; RSA 2048, session cache off)")
            url = nginx.url
            tools = {
                "wrk": (wrk, (url, conns, 1, duration, close, pin)),
                "core-epoll": (twload, (url, conns, 1, duration, close, pin, "core-epoll", None, extra)),
            }
            runs: dict[str, list] = {name: [] for name in tools}
            RESUMED.clear()
            for r in range(repeat):
                for name in rotated(list(tools), r):
                    tool = tools[name]
                    runs[name].append(tool[0](*tool[1]))
            results = {name: median_run(r) for name, r in runs.items()}
            for name, result in results.items():
                print(row(name, result))
            w, t = results["wrk"], results["core-epoll"]
            if w and w[0] and t:
                print(f"  ratio core-epoll / wrk: {t[0] / w[0]:.2f}x req/s,"
                      f" {per_request(t) / per_request(w):.2f}x CPU per request;"
                      f" {paired(runs['core-epoll'], runs['wrk'])}")
            if RESUMED:
                print("  twload --tls-resume resumed " + ", ".join(f"{r} of {h}" for r, h in RESUMED) + " handshakes")
        finally:
            nginx.stop()


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def worker_rss(parent: int) -> int:
    kids = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout.split()
    return sum(rss_kb(int(k)) for k in kids if "spawn_main" in Path(f"/proc/{k}/cmdline").read_text())


def memory(conns: int = 10_000) -> None:
    """RSS of the worker process with N open connections, beyond the same worker with 1."""
    nginx = Nginx(workers=1, cpus=None)
    try:
        for engine in ("core-epoll",):
            kind, io = TWLOAD_ENGINES[engine]
            readings = {}
            for n in (1, conns):
                proc = subprocess.Popen([*TWLOAD, "run", nginx.url, "-c", str(n), "-w", "1", "-d", "8s", "-q",
                                         "--engine", kind, "--io", io, "--out", tempfile.mkdtemp(prefix="twb-")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(6)
                readings[n] = worker_rss(proc.pid)
                proc.wait()
            per = (readings[conns] - readings[1]) * 1024 / (conns - 1)
            print(f"\nmemory, {engine}: worker RSS {readings[1]} KB with 1 connection, {readings[conns]} KB with"
                  f" {conns}: {per / 1024:.2f} KB per open connection (target <= 1 KB)")
    finally:
        nginx.stop()


def established_to(port: int) -> int:
    out = subprocess.run(["ss", "-Htn", "state", "established", f"dport = :{port}"], capture_output=True, text=True)
    return out.stdout.count("\n")


def settled(port: int, conns: int, limit_s: float = 30.0) -> int:
    """Wait (at most limit_s) until conns connections towards port are established (each a full TLS
    handshake with a single nginx worker: seconds for thousands), then 2 s more; how many are."""
    deadline = time.monotonic() + limit_s
    while established_to(port) < conns and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2)
    return established_to(port)


def memory_tls(conns: int = 10_000) -> None:
    """RSS per open TLS keep-alive connection: twload's worker and wrk, each with N connections less the
    same with 1, divided by the connections established when read (nginx, 1 worker, TLS as above)."""
    nginx = Nginx(workers=1, cpus=None, tls=True)
    hold_s = 45  # longer than the handshakes of N connections take; each run is stopped once read
    try:
        tools = {
            # the same 30 s for a handshake as wrk's --timeout: with twload's default 5 s connect timeout,
            # connections queued behind thousands of full handshakes to one nginx worker time out and
            # retry, and fewer than N are open when the RSS is read
            "core-epoll": lambda n: ([*TWLOAD, "run", nginx.url, "-c", str(n), "-w", "1", "-d", f"{hold_s}s", "-q",
                                      "--connect-timeout", "30s", "--timeout", "30s",
                                      "-k", "--engine", "core", "--out", tempfile.mkdtemp(prefix="twb-")], worker_rss),
            "wrk": lambda n: (["wrk", "-t1", f"-c{n}", f"-d{hold_s}s", "--timeout", "30s", nginx.url], rss_kb),
        }
        print()
        for name, make in tools.items():
            readings, opened = {}, {}
            for n in (1, conns):
                cmd, rss = make(n)
                proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    opened[n] = settled(nginx.port, n)
                    readings[n] = rss(proc.pid)
                finally:
                    proc.send_signal(signal.SIGINT)
                    proc.wait(timeout=30)
            per = (readings[conns] - readings[1]) / max(opened[conns] - 1, 1)
            print(f"memory https, {name}: RSS {readings[1]} KB with 1 connection, {readings[conns]} KB with"
                  f" {opened[conns]} of {conns} established: {per:.2f} KB per open TLS connection")
    finally:
        nginx.stop()


def strace_calls(cmd: list[str]) -> tuple[int, str]:
    """Total syscalls of cmd and its children (strace -c -f), and cmd's stdout."""
    with tempfile.NamedTemporaryFile(prefix="twb-strace-", suffix=".txt") as summary:
        out = subprocess.run(["strace", "-c", "-f", "-o", summary.name, *cmd], capture_output=True, text=True,
                             timeout=300).stdout
        for line in Path(summary.name).read_text().splitlines():
            fields = line.split()
            if fields and fields[-1] == "total":
                return int(fields[3]), out
    return 0, out


def syscalls(short_n: int = 300, long_n: int = 3300) -> None:
    """Syscalls per short connection (--close server / Connection: close), 10 connections.

    twload: the difference of two runs of short_n and long_n requests, divided by the difference,
    so interpreter start-up and the supervisor cancel out. wrk: its total over the requests it made.
    """
    if not shutil.which("strace"):
        print("\nsyscalls: strace not installed (Debian package strace)")
        return
    nginx = Nginx(workers=1, cpus=None)
    try:
        print(f"\nsyscalls per short connection (strace -c -f; twload: runs of {long_n} minus {short_n} requests)")
        calls, out = strace_calls(["wrk", "-t1", "-c10", "-d2s", "-H", "Connection: close", nginx.url])
        done = re.search(r"(\d+) requests in", out)
        if done and int(done.group(1)):
            print(f"  {'wrk':<15} {calls / int(done.group(1)):6.2f}")
        runs = [(engine, strategy) for engine in TWLOAD_ENGINES for strategy in ("server", "rst")
                if strategy == "server" or engine.startswith("core")]
        for engine, strategy in runs:
            kind, io = TWLOAD_ENGINES[engine]
            if io == "uring" and not uring_available():
                continue
            totals = []
            for n in (short_n, long_n):
                calls, _ = strace_calls([*TWLOAD, "run", nginx.url, "-n", str(n), "-c", "10", "-w", "1", "-q",
                                         "--close", strategy, "--engine", kind, "--io", io,
                                         "--out", tempfile.mkdtemp(prefix="twb-")])
                totals.append(calls)
            name = engine + ("-rst" if strategy == "rst" else "")
            print(f"  {name:<15} {(totals[1] - totals[0]) / (long_n - short_n):6.2f}")
    finally:
        nginx.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--only", choices=["keepalive", "short"])
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool, alternated; the median is shown")
    parser.add_argument("--procs", choices=["1", "2", "both"], default="both",
                        help="1: generator on core 0, nginx on core 1 (issue #13's protocol); 2: both unpinned")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-syscalls", action="store_true")
    parser.add_argument("--scheme", choices=["http", "https", "both"], default="both",
                        help="http: the rows above; https: nginx with TLS (1 process), its memory row")
    parser.add_argument("--memory-connections", type=int, default=10_000, help="N of the memory rows")
    args = parser.parse_args()
    for tool in ("wrk", "nginx", "taskset", "openssl"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            sys.exit(f"benchmark needs {tool} (make bench installs the Debian packages)")
    plain, https = args.scheme in ("http", "both"), args.scheme in ("https", "both")
    if plain:
        compare(args.duration, args.only, args.repeat, (1, 2) if args.procs == "both" else (int(args.procs),))
    if https:
        compare_https(args.duration, args.repeat)
    if plain and not args.no_syscalls:
        syscalls()
    if not args.no_memory:
        if plain:
            memory(args.memory_connections)
        if https:
            memory_tls(args.memory_connections)


if __name__ == "__main__":
    main()
