"""twload --http2 against h2load (Debian nghttp2-client), side by side, against one nginx (issue #31).

h2c (prior knowledge, `listen ... http2`) and h2 over TLS (ALPN), each at `-c 10 --streams 10` (h2load
`-c10 -m10`) and `-c 50 --streams 1` (h2load `-c50 -m1`); nginx with 1 worker pinned to CPU 1, the
generator to CPU 0; each round runs both tools, which one goes first turning each round (rounds.py);
req/s, generator CPU per request (user + sys; twload's less that of a one-request run: start-up,
imports, the worker's spawn), latency (twload's p50 and mean, h2load's mean "time for request"), the
medians of each tool and the ratios paired by round.
nginx's keepalive_requests is raised: at its default (1000) h2load's connections end at the GOAWAY
(h2load does not reconnect) while twload's retry and reconnect, so the two would not run the same load.

Not a test: numbers on a noisy 2-core machine vary; compare the ratios in one run.
    python benchmarks/vs_h2load.py [--duration 5] [--repeat 3] [--only h2c|h2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from rounds import rotated

from twload.lab.nginx import LocalNginx, find_nginx, nginx_config

TWLOAD = [sys.executable, "-m", "twload"]
PIN_GEN, PIN_SERVER = ["taskset", "-c", "0"], "1"
CASES = ((10, 10), (50, 1))  # (connections, streams per connection)


def certificate(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate for 127.0.0.1 (trustme, from the test extras)."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    return folder / "cert.pem", folder / "key.pem", folder / "ca.pem"


class Nginx(LocalNginx):
    def __init__(self, tls: tuple[Path, Path] | None) -> None:
        super().__init__("twload-bench-h2-")
        ssl = f" ssl; ssl_certificate {tls[0]}; ssl_certificate_key {tls[1]}" if tls else ""
        self.start(nginx_config(
            str(self.dir), workers=1, connections=30000, http="access_log off; keepalive_requests 100000000;",
            error_level="crit",
            server=f"listen 127.0.0.1:{self.port} reuseport backlog=8192 http2{ssl}; "
                   'location / { return 200 "hello from nginx\\n"; }'), scheme="https" if tls else "http",
            cpus=PIN_SERVER)


def timed(cmd: list[str]) -> tuple[str, float]:
    """Run to the end; stdout and the CPU seconds (user + sys) of it and its children."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return out, usage.ru_utime + usage.ru_stime


def h2load(url: str, conns: int, streams: int, secs: int) -> tuple[float, int, float, float]:
    """req/s, requests done, CPU s, mean latency µs"""
    out, cpu = timed([*PIN_GEN, "h2load", "-t1", f"-c{conns}", f"-m{streams}", "-D", str(secs), url])
    rps = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", out)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done", out)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1.0, "ms": 1e3, "s": 1e6}
    return (float(rps.group(1)) if rps else 0.0, int(done.group(1)) if done else 0, cpu,
            float(mean.group(1)) * scale[mean.group(2)] if mean else 0.0)


STARTUP: dict[str, float] = {}


def twload(url: str, conns: int, streams: int, secs: int,
           cacert: Path | None) -> tuple[float, int, float, float, float]:
    """req/s, requests, CPU s (less start-up), latency p50 µs, mean µs"""
    extra = ["--cacert", str(cacert)] if cacert else []
    if url not in STARTUP:
        STARTUP[url] = min(timed([*PIN_GEN, *TWLOAD, "run", url, "--http2", "-n", "1", "-c", "1", "-w", "1",
                                  *extra, "--json", "--out", tempfile.mkdtemp(prefix="twb-")])[1] for _ in range(3))
    out, cpu = timed([*PIN_GEN, *TWLOAD, "run", url, "--http2", "-c", str(conns), "--streams", str(streams),
                      "-w", "1", "-d", f"{secs}s", *extra, "--json", "--out", tempfile.mkdtemp(prefix="twb-")])
    s = json.loads(out)
    return s["rps"], s["requests"], max(0.0, cpu - STARTUP[url]), s["latency_us"]["p50"], s["latency_us"]["mean"]


def median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2] if values else 0.0


def compare(duration: int, repeat: int, only: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="twload-bench-certs-") as folder:
        cert, key, ca = certificate(Path(folder))
        for scheme, tls in (("h2c", None), ("h2", (cert, key))):
            if only and only != scheme:
                continue
            nginx = Nginx(tls)
            try:
                for conns, streams in CASES:
                    ours, theirs = [], []
                    for r in range(repeat):
                        for tool in rotated(("h2load", "twload"), r):
                            if tool == "h2load":
                                theirs.append(h2load(nginx.url, conns, streams, duration))
                            else:
                                ours.append(twload(nginx.url, conns, streams, duration, ca if tls else None))
                    report(scheme, conns, streams, ours, theirs)
            finally:
                nginx.stop()


def report(scheme, conns, streams, ours, theirs) -> None:
    print(f"{scheme}, -c {conns} --streams {streams} (h2load -t1 -c{conns} -m{streams}), {len(ours)} rounds:")
    t_rps, h_rps = median([r[0] for r in ours]), median([r[0] for r in theirs])
    t_cpu = median([r[2] / max(r[1], 1) * 1e6 for r in ours])
    h_cpu = median([r[2] / max(r[1], 1) * 1e6 for r in theirs])
    p50, mean = median([r[3] for r in ours]), median([r[4] for r in ours])
    print(f"  twload  {t_rps:>10.0f} req/s  {t_cpu:6.2f} us CPU/req  latency p50 {p50:.0f} us, mean {mean:.0f} us")
    h_mean = median([r[3] for r in theirs])
    print(f"  h2load  {h_rps:>10.0f} req/s  {h_cpu:6.2f} us CPU/req  latency mean {h_mean:.0f} us")
    pairs = [(t[0] / h[0], (t[2] / max(t[1], 1)) / (h[2] / max(h[1], 1)))
             for t, h in zip(ours, theirs, strict=True) if h[0] and h[1] and h[2] and t[1]]
    if pairs:
        print(f"  paired by round: {median([p[0] for p in pairs]):.2f}x req/s, "
              f"{median([p[1] for p in pairs]):.2f}x CPU per request (twload / h2load)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=("h2c", "h2"))
    args = parser.parse_args()
    if not shutil.which("h2load") or not find_nginx():
        sys.exit("needs h2load (Debian nghttp2-client) and nginx")
    compare(args.duration, args.repeat, args.only)


if __name__ == "__main__":
    main()
