"""Small measurements run inside a lab namespace: `python -m twload.lab.probes NAME ...` prints JSON.

Each one drives real sockets and reads the kernel's own view (sock_diag, /proc/net
counters); none of them is a model.
"""

from __future__ import annotations

import argparse
import errno
import json
import socket
import sys
import time

from twload.kernel import snmp, sockdiag
from twload.kernel.linger import LINGER_RST

REQUEST = b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n"


def counters() -> dict[str, int]:
    """Tcp and TcpExt counters of this namespace (what `nstat` shows)."""
    return snmp.tcp_counters()


def time_wait(dport: int | None = None, sport: int | None = None) -> int:
    socks, _ = sockdiag.sockets(1 << sockdiag.TIME_WAIT)
    return sum(1 for s in socks if (dport is None or s.dport == dport) and (sport is None or s.sport == sport))


def exchange(host: str, port: int, timeout: float = 5.0) -> socket.socket:
    """Connect, send one request, read the reply."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((host, port))
        sock.sendall(REQUEST)
        sock.recv(65536)
    except BaseException:
        sock.close()
        raise
    return sock


def tw_lifetime(host: str, port: int, limit: float) -> dict:
    """Close one connection first and time its TIME_WAIT socket until the kernel drops it."""
    sock = exchange(host, port)
    local_port = sock.getsockname()[1]
    sock.close()
    closed = time.monotonic()
    seen = False
    while time.monotonic() - closed < limit:
        present = time_wait(dport=port, sport=local_port) > 0
        seen = seen or present
        if seen and not present:
            return {"time_wait_s": round(time.monotonic() - closed, 3)}
        time.sleep(0.05)
    return {"time_wait_s": None, "seen": seen}


def reuse_delay(host: str, port: int, fill: int, limit: float) -> dict:
    """Fill every ephemeral port with a client TIME_WAIT, then retry connect() until a port is reused."""
    first_close = None
    for _ in range(fill):
        sock = exchange(host, port)
        sock.close()
        first_close = first_close or time.monotonic()
    failures: dict[str, int] = {}
    while time.monotonic() - first_close < limit:
        try:
            sock = exchange(host, port)
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
            failures[name] = failures.get(name, 0) + 1
            time.sleep(0.005)
            continue
        delay = time.monotonic() - first_close
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
        sock.close()
        return {"reused_after_s": round(delay, 3), "failures": failures}
    return {"reused_after_s": None, "failures": failures}


def connect_and_close(host: str, port: int, count: int) -> dict:
    """Open `count` connections one after the other and close each (FIN) without a byte sent: a listener
    that does not accept keeps them in its accept queue until it does."""
    for _ in range(count):
        socket.create_connection((host, port), timeout=5.0).close()
    return {"connected": count}


RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"


def slow_accept(host: str, port: int, backlog: int, every: float, limit: float, start_after_drops: int) -> dict:
    """A listener with a tiny accept queue whose application accepts one connection every `every` seconds:
    answers it (closing after the response) and waits again. Prints a line once listening; ends after
    `limit` seconds (or SIGTERM, which ends the process). With start_after_drops, it accepts nothing until
    this namespace's ListenDrops has grown by that many (SYNs dropped while its queue is full). Counts
    what it accepted and answered."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, port))
    server.listen(backlog)
    server.settimeout(0.5)
    drops_at_start = snmp.tcp_counters().get("TcpExtListenDrops", 0)
    print(f"listening on {host}:{server.getsockname()[1]}", flush=True)
    accepted = answered = 0
    end = time.monotonic() + limit
    while (time.monotonic() < end and
           snmp.tcp_counters().get("TcpExtListenDrops", 0) - drops_at_start < start_after_drops):
        time.sleep(0.01)
    while time.monotonic() < end:
        time.sleep(every)
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        accepted += 1
        with conn:
            conn.settimeout(2.0)
            try:
                if conn.recv(65536):
                    conn.sendall(RESPONSE)
                    answered += 1
            except OSError:
                pass
    server.close()
    return {"accepted": accepted, "answered": answered}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m twload.lab.probes")
    sub = parser.add_subparsers(dest="probe", required=True)
    sub.add_parser("counters")
    p = sub.add_parser("time-wait")
    p.add_argument("--dport", type=int)
    p.add_argument("--sport", type=int)
    for name in ("tw-lifetime", "reuse-delay"):
        p = sub.add_parser(name)
        p.add_argument("host")
        p.add_argument("port", type=int)
        p.add_argument("--limit", type=float, default=70.0)
        p.add_argument("--fill", type=int, default=2)
    p = sub.add_parser("slow-accept")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--backlog", type=int, default=1)
    p.add_argument("--every", type=float, default=0.1)
    p.add_argument("--limit", type=float, default=30.0)
    p.add_argument("--start-after-drops", type=int, default=0)
    p = sub.add_parser("connect")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--count", type=int, default=1)
    args = parser.parse_args(argv)
    if args.probe == "counters":
        result = counters()
    elif args.probe == "time-wait":
        result = {"time_wait": time_wait(args.dport, args.sport)}
    elif args.probe == "slow-accept":
        result = slow_accept(args.host, args.port, args.backlog, args.every, args.limit, args.start_after_drops)
    elif args.probe == "connect":
        result = connect_and_close(args.host, args.port, args.count)
    elif args.probe == "tw-lifetime":
        result = tw_lifetime(args.host, args.port, args.limit)
    else:
        result = reuse_delay(args.host, args.port, args.fill, args.limit)
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
