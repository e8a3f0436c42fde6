"""Where a distributed run goes: `--cluster local:N` or `--scheduler URL` with Dask's TLS (pure parsing)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from twload.plan import PlanError

MAX_LOCAL_WORKERS = 256
_LOCAL = re.compile(r"^local:(\d+)$")


@dataclass(frozen=True)
class ClusterSpec:
    local_workers: int | None = None  # --cluster local:N
    scheduler: str | None = None  # --scheduler tcp://HOST:PORT or tls://HOST:PORT
    tls_ca_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    @property
    def label(self) -> str:
        return f"local:{self.local_workers}" if self.local_workers else str(self.scheduler)

    @property
    def plain_beyond_loopback(self) -> bool:
        """A tcp:// scheduler not on loopback: anyone who reaches it can run code on its workers."""
        if not self.scheduler or not self.scheduler.startswith("tcp://"):
            return False
        host = urlsplit(self.scheduler).hostname or ""
        try:
            return not ipaddress.ip_address(host).is_loopback
        except ValueError:  # a name: only localhost is known to stay on this host
            return host != "localhost"


def parse_cluster(cluster: str | None, scheduler: str | None, tls_ca_file: str | None = None,
                  tls_cert: str | None = None, tls_key: str | None = None,
                  allow_insecure: bool = False) -> ClusterSpec | None:
    """None for a run on this host alone; PlanError (one line) for a bad combination.

    A plain tcp:// scheduler beyond loopback is refused unless `allow_insecure` (--allow-insecure-scheduler):
    a Dask scheduler runs whatever it is sent, on its workers, and the client deserializes what it
    answers, so whoever can reach it on that network can run code on every worker and on this host."""
    tls = (tls_ca_file, tls_cert, tls_key)
    if cluster is None and scheduler is None:
        if any(tls):
            raise PlanError("--tls-ca-file, --tls-cert and --tls-key go with --scheduler tls://HOST:PORT")
        return None
    if cluster is not None and scheduler is not None:
        raise PlanError("give --cluster local:N or --scheduler URL, not both")
    if cluster is not None:
        match = _LOCAL.match(cluster.strip())
        if not match or not 1 <= int(match.group(1)) <= MAX_LOCAL_WORKERS:
            raise PlanError(f"bad --cluster {cluster!r}: use local:N with N from 1 to {MAX_LOCAL_WORKERS}")
        if any(tls):
            raise PlanError("--tls-* options go with --scheduler tls://…; a local cluster stays on 127.0.0.1")
        return ClusterSpec(local_workers=int(match.group(1)))
    assert scheduler is not None
    parts = urlsplit(scheduler)
    if parts.scheme not in ("tcp", "tls") or not parts.hostname:
        raise PlanError(f"bad --scheduler {scheduler!r}: use tcp://HOST:PORT or tls://HOST:PORT")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise PlanError(f"bad port in --scheduler {scheduler!r}") from None
    if parts.scheme == "tls":
        if not tls_ca_file:
            raise PlanError("--scheduler tls://… needs --tls-ca-file (and --tls-cert/--tls-key for the client)")
        if bool(tls_cert) != bool(tls_key):
            raise PlanError("give --tls-cert and --tls-key together")
    elif any(tls):
        raise PlanError("--tls-* options need a tls:// scheduler address")
    spec = ClusterSpec(scheduler=scheduler, tls_ca_file=tls_ca_file, tls_cert=tls_cert, tls_key=tls_key)
    if spec.plain_beyond_loopback and not allow_insecure:
        raise PlanError(f"--scheduler {scheduler} is plain tcp:// beyond this host: whoever reaches it can run code "
                        "on its workers and on this host; use tls://HOST:PORT with --tls-ca-file, or say "
                        "--allow-insecure-scheduler on a network you trust")
    return spec
