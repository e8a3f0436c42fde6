"""Shared fixtures: real servers on loopback, started and stopped by PID."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from twload.kernel.procnet import time_wait_by_side
from twload.lab.nginx import LocalNginx, find_nginx, nginx_config
from twload.serve.embedded import EmbeddedServer


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Under pytest-xdist (`make test` runs two workers) every test is its own unit of work but the lab
    tests, which go to one worker together, in their order: test_zz_cleanup runs last and finds every
    namespace the others made gone, and a crashed lab's `twload lab clean` never meets another lab
    test's crash. (xdist's own --dist loadgroup marks tests by their node id, which pytest 9 no longer
    lets it change.)"""
    from xdist.scheduler import LoadScopeScheduling

    class LabTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "tests/lab" if nodeid.startswith("tests/lab/") else nodeid

    return LabTogether(config, log)


@pytest.fixture
def twload_server():
    """Factory: start `twload serve --port <a quiet port> ARGS...`; all are stopped at teardown."""
    servers = []

    def start(*args: str) -> EmbeddedServer:
        server = EmbeddedServer("--port", str(free_port()), *args).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# Test servers listen below the ephemeral range (32768-60999 here), on a port no socket on this
# host has used lately. A port taken from bind(0) comes from the ephemeral range, where earlier
# tests' client sockets and TIME_WAIT leftovers (60 s) may carry the same number, and the tests'
# TIME_WAIT counts by port (procnet.time_wait_by_side) would count them too.
# Under pytest-xdist (`make test` runs two workers) each worker cycles through its own slice, so two
# workers never pick the same port between one's check and its server's bind.
def _quiet_slice() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    size = (32000 - 20000) // max(workers, 1)
    return range(20000 + index * size, 20000 + (index + 1) * size)


QUIET_PORTS = _quiet_slice()
_next_quiet = [QUIET_PORTS.start + os.getpid() % len(QUIET_PORTS)]


def free_port() -> int:
    """A loopback port that no socket in any state uses now, from QUIET_PORTS, cycling."""
    from twload.kernel.procnet import read_socks

    busy = {p for s in read_socks() for p in (s.sport, s.dport)}
    for _ in range(len(QUIET_PORTS)):
        port = _next_quiet[0]
        _next_quiet[0] = QUIET_PORTS.start + (port + 1 - QUIET_PORTS.start) % len(QUIET_PORTS)
        if port in busy:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no quiet loopback port left in {QUIET_PORTS.start}-{QUIET_PORTS.stop - 1}")


class RawPeer:
    """A loopback TCP peer that answers every connection with a handler(conn)."""

    def __init__(self, handler) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", free_port()))
        self.sock.listen(512)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn) -> None:
        conn.settimeout(5)
        try:
            self.handler(conn, self.stopped)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()
        self.thread.join(timeout=2)


@pytest.fixture
def raw_peer():
    peers = []

    def start(handler) -> RawPeer:
        peer = RawPeer(handler)
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        peer.close()


def run_cli(*args: str, timeout: float = 60, cwd: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "twload", *args],
        capture_output=True, text=True, timeout=timeout, cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
    )


def time_wait_until(port: int, want, tries: int = 40, pause_s: float = 0.05) -> dict[str, int]:
    """time_wait_by_side(port), read again (bounded) until want(counts) holds; the last reading.

    A /proc/net/tcp read resumes by position, so it may skip or repeat a socket while other
    programs open and close theirs; a TIME_WAIT socket itself stays 60 s, so the true counts do
    not move between the reads, and a closing handshake still in progress settles meanwhile."""
    counts = time_wait_by_side(port)
    for _ in range(tries):
        if want(counts):
            break
        time.sleep(pause_s)
        counts = time_wait_by_side(port)
    return counts


NGINX = find_nginx()


class Nginx(LocalNginx):
    """nginx from Debian's package, on a quiet loopback port (free_port), with its own temp prefix,
    logging each request it answers."""

    def __init__(self, workers: int = 1, tls: tuple | None = None, http2: bool = False, tls_extra: str = "",
                 server_extra: str = "") -> None:
        """tls: (certificate, key); tls_extra: more ssl_* directives for the server (ssl_protocols, ...);
        server_extra: more directives for the server block (keepalive_requests 50; ...), http or https."""
        super().__init__("twload-nginx-", port=free_port())
        self.access_log = self.dir / "access.log"
        tls_server = f'ssl_certificate {tls[0]}; ssl_certificate_key {tls[1]}; {tls_extra}' if tls else ""
        self.start(nginx_config(
            str(self.dir), workers=workers, connections=20000, http=f"access_log {self.access_log};",
            # http2: h2 by ALPN with ssl, else h2c with prior knowledge only (nginx 1.22's `listen ... http2`)
            server=f"listen 127.0.0.1:{self.port} reuseport backlog=4096{' ssl' if tls else ''}"
                   f"{' http2' if http2 else ''}; {tls_server} {server_extra} "
                   'location / { return 200 "hello from nginx\\n"; }'), scheme="https" if tls else "http")

    def access_lines(self) -> int:
        # nginx writes the access log line when the request finishes; give it a moment
        time.sleep(0.2)
        return sum(1 for _ in open(self.access_log)) if self.access_log.exists() else 0

    def quit_and_count(self) -> int:
        """Stop nginx gracefully (it finishes and logs every request it read), then count its log."""
        self.quit()
        return sum(1 for _ in open(self.access_log)) if self.access_log.exists() else 0


@pytest.fixture
def nginx():
    if NGINX is None:
        pytest.skip("SKIPPED LOUDLY: nginx is not installed (Debian package nginx; `make test` installs it as root)")
    server = Nginx()
    yield server
    server.stop()


class TlsCerts:
    """trustme certificates in a folder: `ca` (the CA file a client passes as --cacert); `good`, for
    127.0.0.1 and localhost; `wrong_name`, from the same CA for another name; `untrusted`, for
    127.0.0.1 from a CA nobody is given (as a self-signed one); `expired`, for 127.0.0.1 from the
    good CA, valid until yesterday. Each as (certificate chain PEM, key PEM)."""

    def __init__(self, root: Path) -> None:
        import datetime

        import trustme

        self.root = root
        ca, stranger = trustme.CA(), trustme.CA()
        yesterday = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
        issued = {"good": ca.issue_cert("127.0.0.1", "localhost"), "wrong_name": ca.issue_cert("wrong.example"),
                  "untrusted": stranger.issue_cert("127.0.0.1", "localhost"),
                  "expired": ca.issue_cert("127.0.0.1", "localhost", not_before=yesterday - datetime.timedelta(days=30),
                                           not_after=yesterday)}
        for name, cert in issued.items():
            cert.private_key_pem.write_to_path(str(root / f"{name}.key"))
            cert.cert_chain_pems[0].write_to_path(str(root / f"{name}.pem"))
            for extra in cert.cert_chain_pems[1:]:
                extra.write_to_path(str(root / f"{name}.pem"), append=True)
        ca.cert_pem.write_to_path(str(root / "ca.pem"))
        self.ca = root / "ca.pem"

    def pair(self, name: str = "good") -> tuple[Path, Path]:
        return self.root / f"{name}.pem", self.root / f"{name}.key"

    def serve_args(self, name: str = "good") -> tuple[str, ...]:
        """`twload serve`'s options to serve https:// with this certificate."""
        cert, key = self.pair(name)
        return "--tls-cert", str(cert), "--tls-key", str(key)


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory) -> TlsCerts:
    return TlsCerts(tmp_path_factory.mktemp("tls-certs"))


@pytest.fixture
def nginx_tls(tls_certs):
    """nginx serving https:// with the good certificate; clients trust tls_certs.ca."""
    if NGINX is None:
        pytest.skip("SKIPPED LOUDLY: nginx is not installed (Debian package nginx; `make test` installs it as root)")
    server = Nginx(tls=tls_certs.pair("good"))
    yield server
    server.stop()
