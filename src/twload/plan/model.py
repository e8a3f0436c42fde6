"""Plan: what a run does, validated once, frozen, passed to every worker (pure: no I/O)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from twload.plan.errors import PlanError
from twload.plan.schedule import Schedule
from twload.plan.targets import Spool

CLOSE_STRATEGIES = ("keepalive", "fin", "server", "rst")
ENGINES = ("auto", "core")  # both the compiled core: "auto" stays so that old scripts keep running
# the asyncio (uvloop) engine, retired by issue #30: named in one line, never run in its place
RETIRED_ENGINES = ("asyncio",)
IO_BACKENDS = ("auto", "epoll", "uring")
TLS_VERSIONS = ("1.2", "1.3")

MAX_HEADER_BYTES = 64 * 1024  # a response head larger than this is counted as an error
MAX_STREAMS = 1000  # --streams at most (core/h2.h H2_MAX_STREAMS: each connection's stream table)
# connections x --streams at most: the core keeps a stream table for every connection slot (40 bytes a
# stream with its place in the open loop's queue of refused requests, core/h2.c), so ~40 MB at this bound
MAX_STREAM_SLOTS = 1_000_000


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
    tls_min: str = "1.2"  # TLS: the lowest version offered (--tls-min 1.2 | 1.3)
    ciphers: str | None = None  # TLS 1.2 cipher list (OpenSSL's syntax); None: OpenSSL's default
    ciphersuites: str | None = None  # TLS 1.3 cipher suites (A:B); None: OpenSSL's default
    tls_resume: bool = False  # TLS: reuse sessions/tickets on a worker's next connections
    max_errors: int | None = None  # stop the run once more errors than this were counted
    engine: str = "auto"  # auto and core: the compiled core, the one engine (issue #30)
    # the core's I/O backend: epoll (default); auto (io_uring where the kernel allows it); uring.
    # epoll is the default: io_uring was faster on short connections but served far fewer requests
    # than epoll with tens of thousands of open connections (measured: benchmarks/RESULTS.md).
    io: str = "epoll"
    # a request set (--targets, plan/targets.py): the requests sent, in this order, instead of one
    # built from url / method / headers / body (which are then the targets' defaults)
    targets: tuple = ()  # of plan.targets.RequestTarget
    targets_source: str = ""  # the file's name, or "-" (standard input)
    # a request file too large to hold (plan.targets.Spool): streamed from its compiled records; `targets`
    # then holds its first target only
    targets_spool: Spool | None = None
    targets_order: str = "round-robin"
    seed: int | None = None  # --targets-order random and the templates' values: None draws one
    # a request file whose targets are on several destinations (host:port), or on one that is not the
    # URL's: each resolved, in the order the file names them (empty: every request goes to `target`)
    destinations: tuple[Target, ...] = ()
    destination_weights: tuple[int, ...] = ()  # each destination's targets' weights added up
    # a Dask shard's engine processes, numbered across the whole run: the first one's number, and how many
    # the run has in all (0: this plan's own, a local run), so {{seq}} and {{worker}} stay unique across shards
    worker_base: int = 0
    worker_total: int = 0
    http2: bool = False  # HTTP/2 on the core: h2c with prior knowledge for http://, ALPN h2 for https://
    streams: int = 10  # HTTP/2: concurrent streams per connection (the server's SETTINGS may cap them)

    def __post_init__(self) -> None:
        if self.targets_order not in ("round-robin", "random"):
            raise PlanError(f"--targets-order must be round-robin or random, not {self.targets_order!r}")
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
        if self.max_errors is not None and self.max_errors < 0:
            raise PlanError("--max-errors must be 0 or more")
        if self.engine in RETIRED_ENGINES:
            raise PlanError(f"--engine {self.engine} was retired (issue #30): the compiled core runs http:// "
                            "and https:// faster; leave --engine out (or say --engine core)")
        if self.engine not in ENGINES:
            raise PlanError(f"--engine must be one of {', '.join(ENGINES)}, not {self.engine!r}")
        if self.io not in IO_BACKENDS:
            raise PlanError(f"--io must be one of {', '.join(IO_BACKENDS)}, not {self.io!r}")
        if self.io == "uring" and self.target.scheme == "https":
            raise PlanError("--io uring: https:// runs on the epoll backend (TLS over io_uring is not built yet); "
                            "use --io epoll or auto")
        self._check_tls_options()
        if self.destinations and self.open_loop:
            self._check_lanes()
        if self.http2:
            self._check_http2()

    def _check_http2(self) -> None:
        """What --http2 does not do yet (issue #31), each refused in one line."""
        if not 1 <= self.streams <= MAX_STREAMS:
            raise PlanError(f"--streams must be 1..{MAX_STREAMS}")
        pool, flag = (self.max_connections, "--max-connections") if self.open_loop else (self.connections, "-c")
        if pool * self.streams > MAX_STREAM_SLOTS:
            raise PlanError(f"--streams {self.streams} x {flag} {pool} is over {MAX_STREAM_SLOTS:,} streams at once "
                            "(each takes memory in the core): lower one of them")
        if len(self.destinations) > 1:
            raise PlanError(f"--http2 with targets on {len(self.destinations)} destinations (host:port) is not built "
                            "yet: one destination a run over HTTP/2")
        if self.io == "uring":  # as https://: --io auto picks epoll for it (engine.core.choose_io)
            raise PlanError("--io uring: --http2 runs on the epoll backend (HTTP/2 over io_uring is not built yet); "
                            "use --io epoll or auto")
        if self.stages and not self.open_loop:
            raise PlanError("--http2 does not ramp connections yet: --stages only with --rate or --open-loop")

    def _check_lanes(self) -> None:
        """Open loop over several destinations: each worker process keeps a pool for each one (its share of
        --max-connections split by the weights), so each needs a connection of its own in every worker."""
        workers = len(self.worker_shares())
        if self.max_connections // workers < len(self.destinations):
            raise PlanError(f"--max-connections {self.max_connections} over {workers} worker processes leaves one "
                            f"fewer connections than the {len(self.destinations)} destinations (host:port) of the "
                            "targets; each needs one at least in every worker: raise --max-connections or lower -w")

    def _check_tls_options(self) -> None:
        """--tls-min, --ciphers, --ciphersuites, --tls-resume: their values and what they go with (the
        names in --ciphers and --ciphersuites are OpenSSL's to judge: twload.engine.core.tls_options_problem)."""
        if self.tls_min not in TLS_VERSIONS:
            raise PlanError(f"--tls-min must be one of {', '.join(TLS_VERSIONS)}, not {self.tls_min!r}")
        given = [name for name, on in (("--tls-min", self.tls_min != "1.2"), ("--ciphers", self.ciphers is not None),
                                       ("--ciphersuites", self.ciphersuites is not None),
                                       ("--tls-resume", self.tls_resume)) if on]
        if not given:
            return
        if self.target.scheme != "https":
            raise PlanError(f"{', '.join(given)}: for https:// URLs only")
        if self.ciphers is not None and self.tls_min == "1.3":
            raise PlanError("--ciphers sets TLS 1.2's ciphers, which --tls-min 1.3 never offers: use --ciphersuites")
        for name, value in (("--ciphers", self.ciphers), ("--ciphersuites", self.ciphersuites)):
            if value is not None and not value.strip():
                raise PlanError(f"{name} is empty")

    @property
    def engine_choice(self) -> str:
        """The engine this plan runs: the compiled core, for http:// and https:// (https on its epoll
        backend), with --engine auto or core alike. There is no fallback: a run without the built
        core stops before it starts (cli/run.py, engine/worker.py)."""
        return "core"

    def schedule(self, share: float = 1.0) -> Schedule | None:
        """What one worker follows: its share of the rate or of the staged connections (None: -c fixed)."""
        if self.stages:
            return Schedule(self.stages, share)
        if self.open_loop:
            assert self.rate is not None  # __post_init__: open loop without stages has a rate
            return Schedule.constant(self.rate, self.duration_s, share)
        return None

    @property
    def per_connection(self) -> int | None:
        """Requests on one connection before the close strategy applies (None: no limit)."""
        if self.requests_per_connection is not None:
            return self.requests_per_connection
        if self.http2:  # streams share the connection: it ends by --requests-per-connection alone
            return None
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


def is_loopback(target: Target) -> bool:
    return ipaddress.ip_address(target.address[0]).is_loopback
