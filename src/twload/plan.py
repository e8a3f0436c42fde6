"""Plan: what a run does, validated once, frozen, passed to every worker.

Parsing helpers here are pure: they take strings and return values or raise
PlanError with a message meant for the user (one line, no traceback).
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

CLOSE_STRATEGIES = ("keepalive", "fin", "server", "rst")

MAX_HEADER_BYTES = 64 * 1024  # a response head larger than this is counted as an error


class PlanError(ValueError):
    """A user mistake: shown as one line on stderr, exit code 2."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as the user wrote it (for the Host header)
    port: int
    path: str  # path + query, never empty
    address: tuple  # resolved sockaddr, what connect() takes
    family: int

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class Plan:
    target: Target
    url: str
    connections: int = 50
    workers: int = 1
    duration_s: float | None = 10.0
    requests: int | None = None
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    close: str = "keepalive"
    timeout_s: float = 10.0
    connect_timeout_s: float = 5.0
    requests_per_connection: int | None = None  # None: 1 for fin/server/rst, unlimited for keepalive
    sources: tuple[str, ...] = ()  # local addresses to connect from, round-robin
    rate: float | None = None  # open loop: requests per second
    stages: tuple = ()  # schedule.Stage: ramps of the rate (open loop) or of the connections
    open_loop: bool = False  # set when rate is given; with stages, says what they ramp
    max_connections: int = 10_000  # open loop: connections are opened as needed, up to this
    insecure: bool = False  # TLS: do not verify the server's certificate
    cacert: str | None = None  # TLS: trust this CA bundle (PEM) instead of the system's

    def __post_init__(self) -> None:
        if self.close not in CLOSE_STRATEGIES:
            raise PlanError(f"--close must be one of {', '.join(CLOSE_STRATEGIES)}, not {self.close!r}")
        if self.connections < 1:
            raise PlanError("--connections must be at least 1")
        if self.workers < 1:
            raise PlanError("--workers must be at least 1")
        if self.duration_s is None and self.requests is None:
            raise PlanError("give a --duration or a number of --requests")
        if self.duration_s is not None and self.duration_s <= 0:
            raise PlanError("--duration must be positive")
        if self.requests is not None and self.requests < 1:
            raise PlanError("--requests must be at least 1")
        if self.timeout_s <= 0 or self.connect_timeout_s <= 0:
            raise PlanError("timeouts must be positive")
        if self.requests_per_connection is not None and self.requests_per_connection < 1:
            raise PlanError("--requests-per-connection must be at least 1")
        if self.rate is not None and self.rate <= 0:
            raise PlanError("--rate must be positive")
        if self.rate is not None and not self.open_loop:
            object.__setattr__(self, "open_loop", True)
        if self.open_loop and self.rate is None and not self.stages:
            raise PlanError("open loop needs --rate or --stages")
        if self.max_connections < 1:
            raise PlanError("--max-connections must be at least 1")

    def schedule(self, share: float = 1.0):
        """What one worker follows: its share of the rate or of the staged connections (None: -c fixed)."""
        from twload.engine.schedule import Schedule

        if self.stages:
            return Schedule(self.stages, share)
        if self.open_loop:
            return Schedule.constant(self.rate, self.duration_s, share)
        return None

    @property
    def per_connection(self) -> int | None:
        """Requests on one connection before the close strategy applies (None: no limit)."""
        if self.requests_per_connection is not None:
            return self.requests_per_connection
        return None if self.close == "keepalive" else 1

    def worker_shares(self) -> list[tuple[int, int | None]]:
        """(connections, request budget) for each worker; no worker gets nothing to do.

        Open loop: the connections are each worker's share of --max-connections, and the
        rate is split evenly (Worker.share). Staged closed loop: connections follow the
        stages, split evenly too.
        """
        scheduled = self.open_loop or bool(self.stages)
        pool = self.max_connections if scheduled else self.connections
        workers = min(self.workers, pool, self.requests or pool)
        shares = []
        for i in range(workers):
            reqs = None if self.requests is None else _part(self.requests, workers, i)
            if scheduled:
                conns = max(1, pool // workers)
            else:
                conns = _part(pool, workers, i)
                conns = conns if reqs is None else min(conns, reqs)
            shares.append((conns, reqs))
        return shares


def _part(total: int, parts: int, i: int) -> int:
    """Worker i's share of total split over parts, the remainder going to the first ones."""
    return total // parts + (1 if i < total % parts else 0)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """'10s', '1m', '500ms', '2h', bare '30' (seconds) -> seconds."""
    match = _DURATION.match(text)
    if not match:
        raise PlanError(f"bad duration {text!r}: use e.g. 10s, 1m, 500ms")
    value = float(match.group(1)) * _UNIT_S[match.group(2)]
    if value <= 0:
        raise PlanError(f"bad duration {text!r}: must be positive")
    return value


def parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name or any(c in name for c in " \t\r\n"):
        raise PlanError(f"bad header {text!r}: use 'Name: value'")
    if "\r" in value or "\n" in value:
        raise PlanError(f"bad header {text!r}: no line breaks in a value")
    return name, value.strip()


def parse_target(url: str, resolve=socket.getaddrinfo) -> Target:
    """Split and resolve a URL once, before any worker starts."""
    if "://" not in url:
        raise PlanError(f"bad URL {url!r}: give a scheme, e.g. http://127.0.0.1:8080/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise PlanError(f"unsupported scheme {parts.scheme!r} in {url!r}: use http:// or https://")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise PlanError(f"bad port in URL {url!r}") from None
    host = parts.hostname
    if not host:
        raise PlanError(f"bad URL {url!r}: no host")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise PlanError(f"cannot resolve host {host!r}: {getattr(exc, 'strerror', None) or exc}") from None
    family, _, _, _, address = infos[0]
    return Target(parts.scheme, host, port, path, address, family)


IP_BIND_ADDRESS_NO_PORT = 24  # include/uapi/linux/in.h
MAX_SOURCES = 4096


def parse_sources(text: str) -> tuple[str, ...]:
    """'10.0.0.2,10.0.0.5-10.0.0.9,10.0.1.0/30' -> each address once, in order."""
    out: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            if "/" in item:
                network = ipaddress.ip_network(item, strict=False)
                hosts = list(network.hosts()) or [network.network_address]
            elif "-" in item:
                first, last = (ipaddress.ip_address(x.strip()) for x in item.split("-", 1))
                if last < first or int(last) - int(first) >= MAX_SOURCES:
                    raise ValueError("empty or too large range")
                hosts = [ipaddress.ip_address(n) for n in range(int(first), int(last) + 1)]
            else:
                hosts = [ipaddress.ip_address(item)]
        except ValueError as exc:
            raise PlanError(f"bad --source {item!r}: {exc}") from None
        out.extend(str(h) for h in hosts if str(h) not in out)
        if len(out) > MAX_SOURCES:
            raise PlanError(f"--source: more than {MAX_SOURCES} addresses")
    if not out:
        raise PlanError("--source: no address given")
    return tuple(out)


def check_sources_local(sources: tuple[str, ...], target: Target) -> None:
    """Each source must be an address of this host, of the target's family: bind() says so."""
    for address in sources:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        if family != target.family:
            raise PlanError(f"--source {address} is not of the target's address family")
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            try:
                sock.bind((address, 0))
            except OSError:
                raise PlanError(f"--source {address} is not an address of this host") from None


def tls_context(plan: Plan) -> ssl.SSLContext:
    """Client TLS context: the system's trust store (or --cacert), SNI from the URL's host."""
    try:
        context = ssl.create_default_context(cafile=plan.cacert)
    except (OSError, ssl.SSLError) as exc:
        raise PlanError(f"cannot load --cacert {plan.cacert}: {exc}") from None
    if plan.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


def is_loopback(target: Target) -> bool:
    return ipaddress.ip_address(target.address[0]).is_loopback


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)
